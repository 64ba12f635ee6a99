"""What the chat's actions do: send, edit, regenerate, continue, alternatives, branches, receipts, context meter."""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction

from llamadesk.core.conversation.plan import OverflowPolicy
from llamadesk.core.conversation.tree import Tree
from llamadesk.core.engines.api import GenerationStats, Message
from llamadesk.core.errors import LlamaDeskError
from llamadesk.ui.chat.branch_dialog import BranchDialog
from llamadesk.ui.chat.receipt_dialog import ReceiptDialog
from llamadesk.ui.chat.render import MessageRenderer
from llamadesk.ui.shortcuts import MenuId

if TYPE_CHECKING:
    from llamadesk.ui.chat.compare import CompareDialog
    from llamadesk.ui.main_window import MainWindow

log = logging.getLogger(__name__)


class ChatController(QObject):
    """Turns the view's, composer's and shortcuts' requests into session calls; opens the chat's dialogs."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        self.receipt_dialog: ReceiptDialog | None = None
        self.branch_dialog: BranchDialog | None = None
        self.compare_dialog: CompareDialog | None = None
        self._counted: deque[list[Message]] = deque(maxlen=8)  # counts come back in the order asked
        window.chat_view.actionRequested.connect(self.on_action)
        window.window_actions.regenerate.triggered.connect(lambda: self.regenerate())
        window.window_actions.branches.triggered.connect(lambda: self.show_branches())
        window.window_actions.compare.triggered.connect(lambda: self.show_compare())
        window.session.replyEnded.connect(self._on_reply_ended)
        window.host.worker.tokenCount.connect(self._on_token_count)
        window.chat_view.token_records = window.session.token_records  # hovering a reply's token shows them
        self.probs_action = QAction("Record Token &Probabilities", self)
        self.probs_action.setObjectName("recordTokenProbs")
        self.probs_action.setCheckable(True)
        self.probs_action.setStatusTip("Keep each token's probability and alternatives; hover a reply to see them")
        self.probs_action.toggled.connect(self.set_record_probs)
        window.menus[MenuId.VIEW].addAction(self.probs_action)

    def set_record_probs(self, on: bool) -> None:
        """Off by default: recording costs a little speed (bench: token_probs)."""
        self.w.session.record_probs = on
        if self.probs_action.isChecked() != on:
            self.probs_action.setChecked(on)

    # --- state ---------------------------------------------------------------------------------------------
    def _ready(self) -> bool:
        w = self.w
        return w.model_info is not None and not w.is_loading and not w.is_generating and not w.closed

    def _model_name(self) -> str:
        w = self.w
        if w.loaded_model is not None:
            return w.loaded_model.name
        return w.model_info.file_name if w.model_info is not None else ""

    def _after_start(self) -> None:
        self.w.chat_view.follow()
        self.w.refresh_conversations()
        self.w.statusBar().showMessage("Generating…")

    # --- sending ---------------------------------------------------------------------------------------------
    def send(self, text: str) -> None:
        w = self.w
        text = text.strip()
        if not text or not self._ready():
            return
        editing = w.composer.editing_id
        try:
            cid = w.ensure_conversation()
            parent = w.history.get_message(editing).parent_id if editing is not None else None
        except LlamaDeskError as exc:
            w.warn("Message not sent", str(exc))
            return
        w.save_conversation_settings()
        kwargs = {"parent_id": parent} if editing is not None else {}
        if w.session.start(cid, text, w.panel.params(), w.panel.system_prompt(), self._model_name(), **kwargs):
            w.composer.clear()
            self._after_start()

    def last_reply_id(self) -> int | None:
        rows = self.w.chat_model.rows()
        for row in reversed(rows):
            if row.role == "assistant":
                return row.message_id
        return rows[-1].message_id if rows and rows[-1].role == "user" else None

    def regenerate(self, message_id: int | None = None) -> None:
        """Ctrl+R: another reply in place of the last (or the given) one; the old ones stay as alternatives."""
        w = self.w
        mid = message_id if message_id is not None else self.last_reply_id()
        if mid is None or w.current_cid is None or not self._ready():
            return
        w.save_conversation_settings()
        if w.session.regenerate(w.current_cid, mid, w.panel.params(), w.panel.system_prompt()):
            self._after_start()

    def continue_reply(self, message_id: int) -> None:
        w = self.w
        if w.current_cid is None or not self._ready():
            return
        if w.session.continue_reply(w.current_cid, message_id, w.panel.params(), w.panel.system_prompt()):
            self._after_start()

    def edit(self, message_id: int) -> None:
        row = self.w.chat_model.row_of(message_id)
        if row is not None and row.role == "user":
            self.w.composer.begin_edit(message_id, row.content)

    def switch(self, message_id: int, step: int) -> None:
        if self.w.current_cid is not None:
            self.w.session.switch_alternative(self.w.current_cid, message_id, step)
            self.refresh_context()

    def toggle_reasoning(self, message_id: int) -> None:
        """Shows a thinking model's reasoning in its bubble, or folds it back to one line."""
        row = self.w.chat_model.row_of(message_id)
        if row is not None:
            self.w.chat_model.update_row(message_id, show_reasoning=not row.show_reasoning)

    def on_action(self, action: str, message_id: int) -> None:
        handlers = {
            "prev": lambda: self.switch(message_id, -1),
            "next": lambda: self.switch(message_id, +1),
            "edit": lambda: self.edit(message_id),
            "regenerate": lambda: self.regenerate(message_id),
            "continue": lambda: self.continue_reply(message_id),
            "receipt": lambda: self.show_receipt(message_id),
            "reasoning": lambda: self.toggle_reasoning(message_id),
            "branches": lambda: self.show_branches(),
        }
        handler = handlers.get(action)
        if handler is not None:
            handler()

    # --- receipts ----------------------------------------------------------------------------------------------
    def reproduce_block(self, receipt: dict[str, object]) -> str:
        """Why Reproduce cannot run now, in one sentence ("" when it can)."""
        w = self.w
        if "seed" not in receipt or "sampling" not in receipt:
            return "This reply has no complete receipt, so it cannot be reproduced."
        info = w.model_info
        if info is None:
            return f"Load {receipt.get('model_file', 'the model')} to reproduce this reply."
        if receipt.get("engine") == "remote":
            if (receipt.get("endpoint"), receipt.get("model")) != (info.endpoint, info.file_name):
                return (f"This reply came from {receipt.get('model')} on {receipt.get('endpoint_name')}; "
                        "choose it in the model picker to reproduce it.")  # fmt: skip
            return "Wait for the current reply to end." if w.is_generating or w.is_loading else ""
        if receipt.get("sha256") and receipt.get("sha256") != info.sha256:
            return f"This reply was made with {receipt.get('model_file')}; load that exact file to reproduce it."
        if receipt.get("template") and receipt.get("template") != info.template_name:
            used, now = receipt.get("template"), info.template_name
            return f"This reply used the chat template {used}; the model is loaded with {now}."
        if w.is_generating or w.is_loading:
            return "Wait for the current reply to end."
        return ""

    def show_receipt(self, message_id: int) -> ReceiptDialog | None:
        try:
            message = self.w.history.get_message(message_id)
        except LlamaDeskError as exc:
            self.w.warn("Receipt not shown", str(exc))
            return None
        receipt = dict(message.receipt or {})
        if self.receipt_dialog is not None:
            self.receipt_dialog.close()
        dialog = ReceiptDialog(message_id, receipt, reproduce_block=self.reproduce_block(receipt), parent=self.w)
        dialog.reproduceRequested.connect(self.reproduce)
        self.receipt_dialog = dialog
        dialog.open()
        return dialog

    def reproduce(self, message_id: int) -> None:
        w = self.w
        if w.current_cid is None or not self._ready():
            return
        if w.session.reproduce(w.current_cid, message_id):
            self._after_start()

    # --- branches ----------------------------------------------------------------------------------------------
    def show_branches(self) -> BranchDialog | None:
        w = self.w
        if w.current_cid is None:
            return None
        try:
            tree = Tree.build(w.history.all_messages(w.current_cid))
            leaf = w.history.get_conversation(w.current_cid).leaf_message_id
        except LlamaDeskError as exc:
            w.warn("Branches not shown", str(exc))
            return None
        if self.branch_dialog is not None:
            self.branch_dialog.close()
        dialog = BranchDialog(tree, leaf, w)
        cid = w.current_cid
        dialog.branchChosen.connect(lambda mid: self._choose_branch(cid, mid))
        self.branch_dialog = dialog
        dialog.open()
        return dialog

    def _choose_branch(self, cid: int, message_id: int) -> None:
        if self.w.session.show_branch_of(cid, message_id):
            self.w.chat_view.follow()
            self.refresh_context()

    # --- A/B ----------------------------------------------------------------------------------------------------
    def show_compare(self) -> CompareDialog | None:
        """Your last message, answered with two settings or two models side by side (nothing is added to the
        history); B can run on another local model, loaded in a second engine while the dialog is open."""
        w = self.w
        rows = w.chat_model.rows()
        last_user = next((r for r in reversed(rows) if r.role == "user"), None)
        if w.current_cid is None or last_user is None or not self._ready():
            w.statusBar().showMessage("Send a message first; then compare two settings on it.", 5000)
            return None
        params = w.panel.params()
        plan = w.session.plan(w.current_cid, w.panel.system_prompt(), last_user.message_id, params.max_tokens)
        presets = {n: p for n in w.panel.presets.names() if (p := w.panel.presets.get(n)) is not None}
        renderer = w.chat_view.delegate.renderer
        from llamadesk.ui.chat.compare import CompareDialog  # on first use: it pulls in the fit estimates

        dialog = CompareDialog(
            w.host, plan.messages, params, presets,
            renderer if isinstance(renderer, MessageRenderer) else MessageRenderer(), w,
            models=w.picker.models(), current=w.model_info.path if w.model_info else None,
            load_options=w.load_options,
        )  # fmt: skip
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self.compare_dialog = dialog
        dialog.open()
        return dialog

    # --- context ------------------------------------------------------------------------------------------------
    def set_policy(self, value: str) -> None:
        policy = OverflowPolicy(value)
        self.w.session.policy = policy
        self.w.context_meter.set_policy(policy)

    def refresh_context(self) -> None:
        w = self.w
        w.prefill.schedule()  # the context changed: the next reply's prompt can be read ahead
        if w.model_info is None or w.closed:
            w.context_meter.clear()
            return
        w.session.n_ctx = w.model_info.n_ctx
        if w.current_cid is None:
            w.context_meter.set_usage(0, w.model_info.n_ctx)
            return
        try:
            messages = w.session.prompt_messages(w.current_cid, w.panel.system_prompt(), w.panel.params().max_tokens)
        except LlamaDeskError as exc:
            log.info("Context not counted: %s", exc)
            return
        self._counted.append(messages)
        w.host.count_tokens(messages)

    def forget_counts(self) -> None:
        """A model load or unload: counts asked for before it may never come back."""
        self._counted.clear()

    def _on_token_count(self, count: int) -> None:
        w = self.w
        if self._counted:
            w.session.calibrate(count, self._counted.popleft())
        w.context_meter.set_usage(count, w.model_info.n_ctx if w.model_info else 0)

    def _on_reply_ended(self, cid: int, stats: GenerationStats | None) -> None:
        w = self.w
        if stats is not None:
            w.figures.show_stats(stats)
            if cid == w.current_cid:
                w.context_meter.set_usage(stats.prompt_tokens + stats.generated_tokens, w.session.n_ctx)
            w.statusBar().showMessage("Stopped" if stats.finish_reason.value == "cancelled" else "Done", 3000)
        w.refresh_conversations()

"""What the chat's actions do: send, edit, regenerate, continue, alternatives, branches, receipts, context meter."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from llamadesk.core.conversation.lifecycle import name_new_conversation
from llamadesk.core.conversation.plan import OverflowPolicy
from llamadesk.core.conversation.tree import Tree
from llamadesk.core.engines.api import GenerationStats, Message
from llamadesk.core.errors import LlamaDeskError
from llamadesk.ui.chat.attachments import store_all
from llamadesk.ui.chat.branch_dialog import BranchDialog
from llamadesk.ui.chat.receipt_dialog import ReceiptDialog
from llamadesk.ui.chat.render import MessageRenderer
from llamadesk.ui.chat.source_viewer import SourceViewer, open_in_system_viewer
from llamadesk.ui.conversation_list import QUEUED, WRITING
from llamadesk.ui.shortcuts import MenuId

if TYPE_CHECKING:
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.history import History
    from llamadesk.core.library import LocalModel
    from llamadesk.core.sampling import SamplingParams
    from llamadesk.ui.chat.compare import CompareDialog
    from llamadesk.ui.chat.composer import Composer
    from llamadesk.ui.chat.context_meter import ReplyFigures
    from llamadesk.ui.chat.model import MessageListModel
    from llamadesk.ui.chat.session import ChatSession
    from llamadesk.ui.chat.view import ChatView
    from llamadesk.ui.model_picker import ModelPicker
    from llamadesk.ui.settings.sampling_panel import SamplingPanel
    from llamadesk.ui.shortcuts import WindowActions
    from llamadesk.ui.window_state import WindowState
    from llamadesk.ui.workers import EngineHost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueuedMessage:
    """Your message, saved, whose reply waits for the engine (busy with another conversation's reply)."""

    cid: int
    message_id: int
    params: SamplingParams
    system_prompt: str


class ChatController(QObject):
    """Turns the view's, composer's and shortcuts' requests into session calls; opens the chat's dialogs.

    One engine writes one reply at a time. While it writes one in conversation A, another conversation B stays
    usable: what you send in B is saved at once and its reply queued (the composer says so, the sidebar marks B
    "queued" and A with a turning marker); it starts when A's reply ends. Esc stops only the shown chat's reply (or
    takes back its queued request). Queueing, not refusing: a message typed is never lost nor silently dropped."""

    contextChanged = Signal()  # the prompt the next reply would get changed: it can be read ahead (prefill)
    activityChanged = Signal(object)  # a dict: conversation id → WRITING or QUEUED: the sidebar marks them

    def __init__(
        self, state: WindowState, *, session: ChatSession, history: History, host: EngineHost,
        chat_model: MessageListModel, chat_view: ChatView, composer: Composer, panel: SamplingPanel,
        picker: ModelPicker, figures: ReplyFigures, actions: WindowActions,
        load_options: Callable[[LocalModel], LoadOptions], parent: QWidget,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self._state, self._session, self._history, self._host = state, session, history, host
        self._model, self._view, self._composer, self._panel = chat_model, chat_view, composer, panel
        self._picker, self._figures, self._load_options, self._parent = picker, figures, load_options, parent
        self.receipt_dialog: ReceiptDialog | None = None
        self.branch_dialog: BranchDialog | None = None
        self.compare_dialog: CompareDialog | None = None
        self._counted: deque[list[Message]] = deque(maxlen=8)  # counts come back in the order asked
        self._actions = actions
        self.queue: list[QueuedMessage] = []  # oldest first; one per conversation
        self._activity: dict[int, str] = {}
        chat_view.actionRequested.connect(self.on_action)
        actions.regenerate.triggered.connect(lambda: self.regenerate())
        actions.branches.triggered.connect(lambda: self.show_branches())
        actions.compare.triggered.connect(lambda: self.show_compare())
        session.replyEnded.connect(self._on_reply_ended)
        session.busyChanged.connect(self._on_busy)  # a reply starts: the previous one's figures go
        state.conversationChanged.connect(self._on_conversation_changed)
        state.busyChanged.connect(self._on_engine_state)
        state.modelChanged.connect(self._on_engine_state)
        host.worker.tokenCount.connect(self._on_token_count)
        chat_view.token_records = session.token_records  # hovering a reply's token shows them
        self.probs_action = QAction("Record Token &Probabilities", self)
        self.probs_action.setObjectName("recordTokenProbs")
        self.probs_action.setCheckable(True)
        self.probs_action.setStatusTip("Keep each token's probability and alternatives; hover a reply to see them")
        self.probs_action.toggled.connect(self.set_record_probs)
        actions.menus[MenuId.VIEW].addAction(self.probs_action)

    def set_record_probs(self, on: bool) -> None:
        """Off by default: recording costs a little speed (bench: token_probs)."""
        self._session.record_probs = on
        if self.probs_action.isChecked() != on:
            self.probs_action.setChecked(on)

    # --- state ---------------------------------------------------------------------------------------------
    def _ready(self) -> bool:
        st = self._state
        return st.model_info is not None and not st.is_loading and not st.is_generating and not st.closed

    def _say_busy(self) -> None:
        """An action refused because the engine writes another chat's reply: says so (never silently ignored)."""
        busy = self._busy_elsewhere()
        if busy is not None:
            self._state.show_notice(f"Wait for the reply in “{self._title(busy)}” to end, or stop it there.", 6000)

    def _model_name(self) -> str:
        st = self._state
        if st.loaded_model is not None:
            return st.loaded_model.name
        return st.model_info.file_name if st.model_info is not None else ""

    def _after_start(self) -> None:
        self._view.follow()
        self._state.conversations_changed()
        self._state.show_notice("Searching your documents…" if self._session.is_retrieving else "Generating…")
        self._publish()

    # --- which conversation the engine works for ------------------------------------------------------------------
    def _title(self, cid: int) -> str:
        try:
            return self._history.get_conversation(cid).title or "Untitled"
        except LlamaDeskError:
            return "another chat"

    def _model_ready(self) -> bool:
        st = self._state
        return st.model_info is not None and not st.is_loading and not st.closed

    def _busy_elsewhere(self) -> int | None:
        """The conversation whose reply the engine writes, when it is not the one shown."""
        busy = self._session.busy_cid
        return busy if busy is not None and busy != self._state.current_cid else None

    def queued_for(self, cid: int | None) -> QueuedMessage | None:
        return next((q for q in self.queue if q.cid == cid), None) if cid is not None else None

    def update_composer(self) -> None:
        """Send, Stop, Esc and the composer's note for the conversation shown."""
        st, composer = self._state, self._composer
        busy, here = self._session.busy_cid, st.current_cid
        writing_here = busy is not None and busy == here
        queued = self.queued_for(here)
        hint = ""
        if not self._model_ready():
            can_send, reason = False, "The model is loading…" if st.is_loading else "Load a model first."
            if queued is not None:
                hint = "Your message is queued: its reply starts once a model is loaded."
        elif writing_here:
            can_send, reason = False, "The reply is still being written: wait for it, or press Esc to stop it."
        elif queued is not None:
            can_send = False
            reason = hint = (
                f"Queued: your message's reply starts when the reply in “{self._title(busy)}” ends. "
                "Esc takes the request back."
                if busy is not None
                else "Queued: the reply starts now."
            )
        elif busy is not None:
            can_send, reason = True, ""
            hint = f"A reply is being written in “{self._title(busy)}”; what you send here waits for it, then starts."
        else:
            can_send, reason = True, ""
        if st.closed:
            can_send, hint = False, ""
        composer.set_state(can_send=can_send, generating=writing_here, reason=reason, hint=hint)
        self._actions.stop.setEnabled(writing_here or queued is not None)

    def _publish(self) -> None:
        activity = {q.cid: QUEUED for q in self.queue}
        busy = self._session.busy_cid
        if busy is not None:
            activity[busy] = WRITING
        if activity != self._activity:
            self._activity = activity
            self.activityChanged.emit(dict(activity))

    def activity(self) -> dict[int, str]:
        """Conversation id → WRITING or QUEUED, as the sidebar shows it."""
        return dict(self._activity)

    def _on_engine_state(self, *_: object) -> None:
        self._publish()
        self.update_composer()
        if self.queue and self._session.busy_cid is None:
            # After the slot that ended the reply has written it (busyChanged comes before the reply is saved).
            QTimer.singleShot(0, self._start_queued)

    def _start_queued(self) -> None:
        """The engine is free: the oldest queued message gets its reply."""
        st = self._state
        if not self.queue or self._session.busy_cid is not None or not self._model_ready():
            return
        item = self.queue.pop(0)
        try:
            trashed = self._history.get_conversation(item.cid).deleted_at is not None
        except LlamaDeskError:
            trashed = True  # deleted for good meanwhile
        if trashed:  # moved to the trash while its message waited: no reply is written into it
            self._publish()
            self.update_composer()
            if self.queue:
                QTimer.singleShot(0, self._start_queued)
            return
        started = self._session.regenerate(item.cid, item.message_id, item.params, item.system_prompt)
        if started:
            if item.cid == st.current_cid:
                self._view.follow()
                st.show_notice("Generating…")
            else:
                st.show_notice(f"Writing the queued reply in “{self._title(item.cid)}”…")
            st.conversations_changed()
        self._publish()
        self.update_composer()

    def stop_here(self) -> None:
        """Esc or Stop in the shown chat: stops its reply, or takes back its queued request (your message stays;
        Regenerate asks for a reply later). A reply in another chat goes on."""
        st = self._state
        busy = self._session.busy_cid
        if busy is not None and busy == st.current_cid:
            self._session.stop()
            st.show_notice("Stopping…", 2000)
            return
        queued = self.queued_for(st.current_cid)
        if queued is not None:
            self.queue.remove(queued)
            st.show_notice("The queued reply was cancelled; your message stays (Regenerate asks for a reply).", 8000)
            self._publish()
            self.update_composer()

    def _queue_message(self, cid: int, text: str, kwargs: dict[str, object]) -> None:
        """Saves your message now and queues its reply for when the engine is free."""
        st, panel = self._state, self._panel
        try:
            user = self._history.add_message(cid, "user", text, **kwargs)  # type: ignore[arg-type]
            name_new_conversation(self._history, cid, text)
            self._history.update_conversation(cid, model=self._model_name())
        except LlamaDeskError as exc:
            st.warn("Message not sent", str(exc))
            return
        self._composer.clear()
        self.queue.append(QueuedMessage(cid, user.id, panel.params(), panel.system_prompt()))
        if cid == self._session.shown_cid:
            self._session.show(cid)
            self._view.follow()
        st.conversations_changed()
        busy = self._session.busy_cid
        st.show_notice(f"Queued: the reply starts when the reply in “{self._title(busy)}” ends."
                       if busy is not None else "Queued.", 8000)  # fmt: skip
        self._publish()
        self.update_composer()
        if busy is None:
            QTimer.singleShot(0, self._start_queued)

    # --- sending ---------------------------------------------------------------------------------------------
    def send(self, text: str) -> None:
        st, panel = self._state, self._panel
        text = text.strip()
        if not text or not self._model_ready():
            return
        busy = self._session.busy_cid
        if busy is not None and (busy == st.current_cid or self.queued_for(st.current_cid) is not None):
            return  # the composer refuses and says why
        attached = self._composer.images()
        if attached and not (st.model_info is not None and st.model_info.projector):
            self._composer.say(f"{self._model_name()} does not read images; load a vision model (a model with its "
                               "mmproj projector beside it), or remove the images to send the text.")  # fmt: skip
            return  # your text and images stay in the box
        editing = self._composer.editing_id
        try:
            cid = st.ensure_conversation()
            parent = self._history.get_message(editing).parent_id if editing is not None else None
        except LlamaDeskError as exc:
            st.warn("Message not sent", str(exc))
            return
        try:
            images = store_all(self._history.images, attached)
        except LlamaDeskError as exc:
            st.warn("Message not sent", str(exc))
            return
        st.save_conversation_settings()
        kwargs: dict[str, Any] = {"parent_id": parent} if editing is not None else {}
        if images:
            kwargs["images"] = images
        if busy is not None:
            self._queue_message(cid, text, kwargs)
            return
        if self._session.start(cid, text, panel.params(), panel.system_prompt(), self._model_name(), **kwargs):
            self._composer.clear()
            self._after_start()

    def last_reply_id(self) -> int | None:
        rows = self._model.rows()
        for row in reversed(rows):
            if row.role == "assistant":
                return row.message_id
        return rows[-1].message_id if rows and rows[-1].role == "user" else None

    def regenerate(self, message_id: int | None = None) -> None:
        """Ctrl+R: another reply in place of the last (or the given) one; the old ones stay as alternatives."""
        st, panel = self._state, self._panel
        mid = message_id if message_id is not None else self.last_reply_id()
        if mid is None or st.current_cid is None or not self._ready():
            self._say_busy()
            return
        st.save_conversation_settings()
        if self._session.regenerate(st.current_cid, mid, panel.params(), panel.system_prompt()):
            self._after_start()

    def continue_reply(self, message_id: int) -> None:
        cid = self._state.current_cid
        if cid is None or not self._ready():
            self._say_busy()
            return
        if self._session.continue_reply(cid, message_id, self._panel.params(), self._panel.system_prompt()):
            self._after_start()

    def edit(self, message_id: int) -> None:
        row = self._model.row_of(message_id)
        if row is not None and row.role == "user":
            self._composer.begin_edit(message_id, row.content)

    def switch(self, message_id: int, step: int) -> None:
        if self._state.current_cid is not None:
            self._session.switch_alternative(self._state.current_cid, message_id, step)
            self.refresh_context()

    def toggle_reasoning(self, message_id: int) -> None:
        """Shows a thinking model's reasoning in its bubble, or folds it back to one line."""
        row = self._model.row_of(message_id)
        if row is not None:
            self._model.update_row(message_id, show_reasoning=not row.show_reasoning)

    def toggle_tools(self, message_id: int) -> None:
        """Unfolds a reply's tool calls (arguments and results), or folds them back to one line each."""
        row = self._model.row_of(message_id)
        if row is not None:
            self._model.update_row(message_id, show_tools=not row.show_tools)

    def on_action(self, action: str, message_id: int) -> None:
        handlers = {
            "prev": lambda: self.switch(message_id, -1),
            "next": lambda: self.switch(message_id, +1),
            "edit": lambda: self.edit(message_id),
            "regenerate": lambda: self.regenerate(message_id),
            "continue": lambda: self.continue_reply(message_id),
            "receipt": lambda: self.show_receipt(message_id),
            "reasoning": lambda: self.toggle_reasoning(message_id),
            "tools": lambda: self.toggle_tools(message_id),
            "branches": lambda: self.show_branches(),
        }
        handler = handlers.get(action)
        if handler is not None:
            handler()
        elif action.startswith("source:") and action[len("source:") :].isdigit():
            self.show_source(message_id, int(action[len("source:") :]))

    def show_source(self, message_id: int, n: int) -> SourceViewer | None:
        """A citation [n] of a reply: the file it quoted, at the passage."""
        row = self._model.row_of(message_id)
        record = next((r for r in (row.sources if row else ()) if r.get("n") == n), None)
        if record is None or open_in_system_viewer(record):  # a PDF or DOCX: its own viewer, at the page
            return None
        viewer = SourceViewer(record, self._parent)
        viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        viewer.show()
        return viewer

    # --- receipts ----------------------------------------------------------------------------------------------
    def reproduce_block(self, receipt: dict[str, object]) -> str:
        """Why Reproduce cannot run now, in one sentence ("" when it can)."""
        st = self._state
        if "seed" not in receipt or "sampling" not in receipt:
            return "This reply has no complete receipt, so it cannot be reproduced."
        info = st.model_info
        if info is None:
            return f"Load {receipt.get('model_file', 'the model')} to reproduce this reply."
        if receipt.get("engine") == "remote":
            if (receipt.get("endpoint"), receipt.get("model")) != (info.endpoint, info.file_name):
                return (f"This reply came from {receipt.get('model')} on {receipt.get('endpoint_name')}; "
                        "choose it in the model picker to reproduce it.")  # fmt: skip
            return "Wait for the current reply to end." if st.is_generating or st.is_loading else ""
        if receipt.get("sha256") and receipt.get("sha256") != info.sha256:
            return f"This reply was made with {receipt.get('model_file')}; load that exact file to reproduce it."
        if receipt.get("template") and receipt.get("template") != info.template_name:
            used, now = receipt.get("template"), info.template_name
            return f"This reply used the chat template {used}; the model is loaded with {now}."
        if st.is_generating or st.is_loading:
            return "Wait for the current reply to end."
        return ""

    def show_receipt(self, message_id: int) -> ReceiptDialog | None:
        try:
            message = self._history.get_message(message_id)
        except LlamaDeskError as exc:
            self._state.warn("Receipt not shown", str(exc))
            return None
        receipt = dict(message.receipt or {})
        if self.receipt_dialog is not None:
            self.receipt_dialog.close()
        block = self.reproduce_block(receipt)
        dialog = ReceiptDialog(message_id, receipt, reproduce_block=block, parent=self._parent)
        dialog.reproduceRequested.connect(self.reproduce)
        self.receipt_dialog = dialog
        dialog.open()
        return dialog

    def reproduce(self, message_id: int) -> None:
        cid = self._state.current_cid
        if cid is None or not self._ready():
            return
        if self._session.reproduce(cid, message_id):
            self._after_start()

    # --- branches ----------------------------------------------------------------------------------------------
    def show_branches(self) -> BranchDialog | None:
        cid = self._state.current_cid
        if cid is None:
            return None
        try:
            tree = Tree.build(self._history.all_messages(cid))
            leaf = self._history.get_conversation(cid).leaf_message_id
        except LlamaDeskError as exc:
            self._state.warn("Branches not shown", str(exc))
            return None
        if self.branch_dialog is not None:
            self.branch_dialog.close()
        dialog = BranchDialog(tree, leaf, self._parent)
        dialog.branchChosen.connect(lambda mid: self._choose_branch(cid, mid))
        self.branch_dialog = dialog
        dialog.open()
        return dialog

    def _choose_branch(self, cid: int, message_id: int) -> None:
        if self._session.show_branch_of(cid, message_id):
            self._view.follow()
            self.refresh_context()

    # --- A/B ----------------------------------------------------------------------------------------------------
    def show_compare(self) -> CompareDialog | None:
        """Your last message, answered with two settings or two models side by side (nothing is added to the
        history); B can run on another local model, loaded in a second engine while the dialog is open."""
        st, panel = self._state, self._panel
        rows = self._model.rows()
        last_user = next((r for r in reversed(rows) if r.role == "user"), None)
        if st.current_cid is None or last_user is None or not self._ready():
            st.show_notice("Send a message first; then compare two settings on it.", 5000)
            return None
        params = panel.params()
        plan = self._session.plan(st.current_cid, panel.system_prompt(), last_user.message_id, params.max_tokens)
        presets = {n: p for n in panel.presets.names() if (p := panel.presets.get(n)) is not None}
        renderer = self._view.delegate.renderer
        from llamadesk.ui.chat.compare import CompareDialog  # on first use: it pulls in the fit estimates

        dialog = CompareDialog(
            self._host, plan.messages, params, presets,
            renderer if isinstance(renderer, MessageRenderer) else MessageRenderer(), self._parent,
            models=self._picker.models(), current=st.model_info.path if st.model_info else None,
            load_options=self._load_options,
        )  # fmt: skip
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self.compare_dialog = dialog
        dialog.open()
        return dialog

    # --- context ------------------------------------------------------------------------------------------------
    def set_policy(self, value: str) -> None:
        policy = OverflowPolicy(value)
        self._session.policy = policy
        self._figures.meter.set_policy(policy)

    def refresh_context(self) -> None:
        st, meter = self._state, self._figures.meter
        self.contextChanged.emit()  # the next reply's prompt can be read ahead
        self.show_last_figures()
        if st.model_info is None or st.closed:
            meter.clear()
            return
        self._session.n_ctx = st.model_info.n_ctx
        if st.current_cid is None:
            meter.set_documents(0)
            meter.set_usage(0, st.model_info.n_ctx)
            return
        try:
            system, max_tokens = self._panel.system_prompt(), self._panel.params().max_tokens
            meter.set_documents(self._session.documents_budget(st.current_cid, max_tokens))
            messages = self._session.prompt_messages(st.current_cid, system, max_tokens)
        except LlamaDeskError as exc:
            log.info("Context not counted: %s", exc)
            return
        self._counted.append(messages)
        self._host.count_tokens(messages)

    def forget_counts(self) -> None:
        """A model load or unload: counts asked for before it may never come back."""
        self._counted.clear()

    def _on_token_count(self, count: int) -> None:
        if self._counted:
            self._session.calibrate(count, self._counted.popleft())
        info = self._state.model_info
        self._figures.meter.set_usage(count, info.n_ctx if info else 0)

    # --- the last reply's figures --------------------------------------------------------------------------------
    def show_last_figures(self) -> None:
        """The status bar shows the shown branch's last reply's speed and wait (nothing while it streams, or when
        the conversation has no reply with figures)."""
        last = next((r for r in reversed(self._model.rows()) if r.role == "assistant"), None)
        if last is None or last.status == "streaming" or not last.stats:
            self._figures.clear_stats()
        else:
            self._figures.show_figures(last.stats.get("tokens_per_s"), last.stats.get("ttft_s"))

    def _on_conversation_changed(self, cid: int | None) -> None:
        """Another conversation is shown: no figures of the one before. Its last reply's come with its rows, its
        token count when the engine has counted it (refresh_context), which waits while another chat's reply runs.
        The status line says where the engine is busy: "Generating…" only where the reply is written."""
        self._figures.clear_stats()
        self._figures.meter.clear()
        busy = self._session.busy_cid
        if busy is not None:
            here = busy == cid
            self._state.show_notice("Generating…" if here else f"Writing a reply in “{self._title(busy)}”…")
        self.update_composer()

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self._figures.clear_stats()

    def _on_reply_ended(self, cid: int, stats: GenerationStats | None) -> None:
        if stats is not None:
            if cid == self._state.current_cid:  # a reply in another conversation leaves the shown one's figures
                self._figures.show_stats(stats)
                self._figures.meter.set_usage(stats.prompt_tokens + stats.generated_tokens, self._session.n_ctx)
            self._state.show_notice("Stopped" if stats.finish_reason.value == "cancelled" else "Done", 3000)
        self._state.conversations_changed()

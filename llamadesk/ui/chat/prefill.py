"""Preparing the reply while you type: the prompt is evaluated in the pauses of your typing, so Enter starts the
reply after reading only what changed since (on a CPU, a long pasted text otherwise costs seconds of waiting).

After a pause of PREFILL_DELAY_MS in the composer, and after a conversation is opened or a reply ends, the prompt
the next reply would get (the branch shown with the overflow policy applied, plus the composer's text as your
message) goes to EngineHost.prefill; in notebook mode, the notebook's text as raw text. Any request interrupts it:
sending, a load, the next prefill. Only the in-process llama.cpp engine prepares prompts; remote and RPC engines
ignore it. Chat → Prepare Replies While
Typing turns it off (kept in ui.ini), for laptops on battery.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from llamadesk.core.engines.api import Message
from llamadesk.core.errors import LlamaDeskError
from llamadesk.ui.shortcuts import MenuId

if TYPE_CHECKING:
    from llamadesk.ui.chat.composer import Composer
    from llamadesk.ui.chat.model import MessageListModel
    from llamadesk.ui.chat.notebook import NotebookController
    from llamadesk.ui.chat.session import ChatSession
    from llamadesk.ui.model_picker import ModelPicker
    from llamadesk.ui.settings.sampling_panel import SamplingPanel
    from llamadesk.ui.theme import UiPrefs
    from llamadesk.ui.window_state import WindowState
    from llamadesk.ui.workers import EngineHost

log = logging.getLogger(__name__)

PREFILL_DELAY_MS = 400  # a pause in typing this long sends the prompt ahead


class PromptPrefill(QObject):
    """Sends the next reply's prompt ahead to the engine of one window."""

    prepared = Signal(int)  # in the GUI thread: tokens the engine read ahead (0: it had them already)

    def __init__(
        self, state: WindowState, *, session: ChatSession, host: EngineHost, picker: ModelPicker,
        chat_model: MessageListModel, composer: Composer, panel: SamplingPanel, notebook: NotebookController,
        prefs: UiPrefs, menus: dict[MenuId, QMenu], parent: QObject,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self._state, self._session, self._host, self._picker = state, session, host, picker
        self._model, self._composer, self._panel, self._notebook = chat_model, composer, panel, notebook
        self._prefs = prefs
        self.sent: list[list[Message]] = []  # what was sent ahead, newest last (for tests and the log)
        self._planned: tuple[tuple[object, ...], list[Message]] | None = None
        self.mode = "chat"  # of the last prompt sent ahead: "chat", or "completion" for a notebook
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREFILL_DELAY_MS)
        self._timer.timeout.connect(self.run)
        self.action = QAction("Prepare Replies While &Typing", self)
        self.action.setObjectName("prefillWhileTyping")
        self.action.setCheckable(True)
        self.action.setStatusTip(
            "Read the conversation and your message into the model while you type, so replies start sooner"
        )
        self.action.setChecked(prefs.prefill_while_typing)
        self.action.toggled.connect(self._on_toggled)
        menus[MenuId.CHAT].addAction(self.action)
        composer.edit.textChanged.connect(self.schedule)
        notebook.panel.editor.textChanged.connect(self.schedule)
        host.worker.prefilled.connect(self.prepared)  # queued: the worker lives in the engine thread

    def _on_toggled(self, on: bool) -> None:
        self._prefs.prefill_while_typing = on
        if on:
            self.schedule()
        else:
            self._timer.stop()

    @property
    def enabled(self) -> bool:
        return self.action.isChecked()

    def schedule(self) -> None:
        """Prepares the prompt after the next pause (the composer changed, a conversation opened, a reply ended)."""
        if self.enabled and not self._state.closed:
            self._timer.start()

    def prompt(self) -> list[Message] | None:
        """The messages the next reply would get with the composer's text sent; None when nothing should be sent
        ahead (no local model ready, a reply running, notebook mode, an edit that starts a branch)."""
        if not self._engine_free():
            return None
        if self._composer.editing_id is not None or self._notebook.active:
            return None
        messages = self._branch_prompt()
        if messages is None:
            return None
        text = self._composer.text().strip()
        if text:
            messages.append({"role": "user", "content": text})
        return messages or None

    def _engine_free(self) -> bool:
        """A local model loaded and nothing running: a remote server's cache is not ours to fill."""
        st = self._state
        loaded = self._picker.loaded_choice
        if st.model_info is None or st.is_loading or st.is_generating or st.closed:
            return False
        return loaded is None or loaded.kind == "local"

    def notebook_prompt(self) -> list[Message] | None:
        """In notebook mode, the text the model would continue (raw text, "completion" mode)."""
        if not self._notebook.active or not self._engine_free():
            return None
        text = self._notebook.panel.editor.toPlainText()
        return [{"role": "user", "content": text}] if text.strip() else None

    def _branch_prompt(self) -> list[Message] | None:
        """[system prompt] + the branch shown with the policy applied; planned again only when the branch or the
        settings changed (planning a 10,000-message branch takes ~20 ms of the GUI thread, not at every pause)."""
        cid = self._state.current_cid
        params, system, session = self._panel.params(), self._panel.system_prompt().strip(), self._session
        rows = self._model.rows()
        key = (cid, system, params.max_tokens, session.policy, session.n_ctx, session.tokens_per_char,
               len(rows), max((r.revision for r in rows), default=0))  # fmt: skip
        if self._planned is not None and self._planned[0] == key:
            return list(self._planned[1])
        try:
            if cid is not None:
                messages = session.prompt_messages(cid, system, params.max_tokens)
            else:
                messages = [{"role": "system", "content": system}] if system else []
        except LlamaDeskError as exc:
            log.info("No prompt prepared: %s", exc)
            return None
        self._planned = (key, messages)
        return list(messages)

    def run(self) -> None:
        if not self.enabled:
            return
        mode, messages = "completion", self.notebook_prompt()
        if messages is None:
            mode, messages = "chat", self.prompt()
        if messages is None:
            return
        self.sent.append(messages)
        del self.sent[:-8]
        self.mode = mode
        self._host.prefill(messages, mode=mode)

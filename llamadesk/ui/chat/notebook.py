"""Notebook mode: one editable text the model continues as raw text (Generate / Stop / Continue), for base models.

A notebook is a conversation whose `sampling` JSON holds `"mode": "notebook"` (no schema change; it survives export
and import). Each Generate saves the whole text as a user message and streams the continuation into an assistant
reply under it (receipt `mode: "completion"`); Continue extends that reply in place while the text is unchanged.
The editor shows the last document followed by its continuation. New conversations start as notebooks while a
model without a chat template is loaded (`templates.prefers_completion`); the Chat menu's toggle works for any model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QTextCursor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from llamadesk.core.conversation.notebook import MODE_KEY, NOTEBOOK, is_notebook_sampling
from llamadesk.core.documents.context import DOCS_KEY
from llamadesk.core.engines.api import ModelInfo
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.structured import FORMAT_KEY
from llamadesk.core.templates import prefers_completion
from llamadesk.ui.shortcuts import MenuId

if TYPE_CHECKING:
    from llamadesk.core.history import History
    from llamadesk.ui.chat.composer import Composer
    from llamadesk.ui.chat.model import MessageListModel
    from llamadesk.ui.chat.session import ChatSession
    from llamadesk.ui.chat.view import ChatView
    from llamadesk.ui.model_picker import ModelPicker
    from llamadesk.ui.settings.sampling_panel import SamplingPanel
    from llamadesk.ui.window_state import WindowState



class NotebookPanel(QWidget):
    """The editor and its three buttons; knows nothing of history or engines."""

    generateRequested = Signal()
    continueRequested = Signal()
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notebookPanel")
        self.editor = QPlainTextEdit(self)
        self.editor.setObjectName("notebookEditor")
        self.editor.setAccessibleName("Notebook text")
        self.editor.setAccessibleDescription("The model continues this text from its end.")
        self.editor.setPlaceholderText("Write the beginning of a text; Generate lets the model continue it.")
        font = QFont(self.editor.font())
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        self.editor.setFont(font)
        self.generate_button = QPushButton("Generate", self)
        self.generate_button.setObjectName("notebookGenerate")
        self.generate_button.setToolTip("Continue the text as it is now (Ctrl+Enter)")
        self.generate_button.setShortcut("Ctrl+Return")
        self.continue_button = QPushButton("Continue", self)
        self.continue_button.setObjectName("notebookContinue")
        self.continue_button.setToolTip("Extend the last continuation further")
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("notebookStop")
        self.note = QLabel("", self)
        self.note.setObjectName("notebookNote")
        buttons = QHBoxLayout()
        buttons.addWidget(self.note, 1)
        for button in (self.generate_button, self.continue_button, self.stop_button):
            button.setAccessibleName(f"{button.text()} the notebook text")
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.editor, 1)
        layout.addLayout(buttons)
        self.generate_button.clicked.connect(self.generateRequested)
        self.continue_button.clicked.connect(self.continueRequested)
        self.stop_button.clicked.connect(self.stopRequested)
        self.set_state(can_run=False, generating=False, reason="Load a model first")

    def set_state(self, *, can_run: bool, generating: bool, reason: str = "") -> None:
        self.generate_button.setEnabled(can_run)
        self.continue_button.setEnabled(can_run)
        self.stop_button.setEnabled(generating)
        self.editor.setReadOnly(generating)
        self.note.setText("Generating…" if generating else ("" if can_run else reason))

    def append(self, text: str) -> None:
        """Adds streamed text at the end without moving your cursor or scroll position."""
        cursor = QTextCursor(self.editor.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)


class NotebookController(QObject):
    """Shows the notebook in place of the chat for notebook conversations and runs its requests via the session."""

    def __init__(
        self, state: WindowState, *, session: ChatSession, history: History, picker: ModelPicker,
        chat_model: MessageListModel, chat_view: ChatView, composer: Composer, sampling: SamplingPanel,
        column: QVBoxLayout, menus: dict[MenuId, QMenu], stop: Callable[[], None], parent: QObject,
    ) -> None:  # fmt: skip
        """`column` is the chat's layout (the notebook is shown in it instead of the view and composer); `stop` stops
        the reply streaming (the window's Stop)."""
        super().__init__(parent)
        self._state, self._session, self._history = state, session, history
        self._model, self._view, self._composer, self._sampling = chat_model, chat_view, composer, sampling
        self.panel = NotebookPanel()
        self.panel.hide()
        column.addWidget(self.panel, 1)
        self.default_on = False  # new conversations start as notebooks (a model without a chat template is loaded)
        self.active = False
        self.reply_id: int | None = None  # the reply shown after the document (Continue extends it)
        self.document = ""  # the document that reply continued
        self.action = QAction("&Notebook Mode", self)
        self.action.setObjectName("notebookModeAction")
        self.action.setCheckable(True)
        self.action.setShortcut("Ctrl+Shift+N")
        self.action.setStatusTip("Write a text the model continues, instead of chatting (for base models)")
        self.action.toggled.connect(self.set_notebook)
        menus[MenuId.CHAT].addAction(self.action)
        self.panel.generateRequested.connect(self.generate)
        self.panel.continueRequested.connect(self.continue_text)
        self.panel.stopRequested.connect(stop)
        session.textAppended.connect(self._on_text)
        state.busyChanged.connect(self.refresh_state)  # a reply or a load began or ended
        session.replyEnded.connect(self._on_reply_ended)
        picker.modelLoaded.connect(self._on_model_loaded)
        picker.modelUnloaded.connect(lambda: QTimer.singleShot(0, self.refresh_state))

    # --- which conversations are notebooks ---------------------------------------------------------------------
    def is_notebook(self, cid: int | None) -> bool:
        if cid is None:
            return self.default_on
        try:
            return is_notebook_sampling(self._history.get_conversation(cid).sampling)
        except LlamaDeskError:
            return False

    def sampling_for(self, cid: int | None, sampling: dict[str, Any]) -> dict[str, Any]:
        """A conversation's sampling JSON to store: the panel's values, plus the notebook mode when it is one, and
        the collections it uses as stored (the Documents pane chooses them; the panel knows nothing of them)."""
        stored: dict[str, Any] = {}
        if cid is not None:
            try:
                stored = self._history.get_conversation(cid).sampling
            except LlamaDeskError:
                stored = {}
        kept = {k: stored[k] for k in (DOCS_KEY, FORMAT_KEY, "tools") if k in stored}  # Documents pane, format, Tools
        return {**sampling, MODE_KEY: NOTEBOOK, **kept} if self.is_notebook(cid) else {**sampling, **kept}

    def set_notebook(self, on: bool) -> None:
        """The toggle: the conversation shown becomes a notebook (or a chat); with none shown, the next new one."""
        history = self._history
        cid = self._state.current_cid
        if cid is None:
            self.default_on = on
        elif on != self.is_notebook(cid):
            try:
                sampling = dict(history.get_conversation(cid).sampling)
                sampling.pop(MODE_KEY, None)
                history.update_conversation(cid, sampling={**sampling, MODE_KEY: NOTEBOOK} if on else sampling)
            except LlamaDeskError as exc:
                self._state.warn("Mode not changed", str(exc))
                return
        self.conversation_shown(cid)

    def _on_model_loaded(self, _model: object, info: ModelInfo) -> None:
        base = prefers_completion(info.has_chat_template, info.template_source)
        if base != self.default_on:
            self.default_on = base
            if base:
                self._state.show_notice(
                    f"{info.file_name} has no chat template: new conversations open in notebook mode.", 8000
                )
        cid = self._state.current_cid
        if base and cid is not None and not self.is_notebook(cid) and not self._model.rowCount():
            self.set_notebook(True)  # an empty chat becomes a notebook for a base model
        QTimer.singleShot(0, self.refresh_state)

    # --- showing ----------------------------------------------------------------------------------------------
    def conversation_shown(self, cid: int | None) -> None:
        """Called when the window shows a conversation: the notebook or the chat, and the notebook's text."""
        self.active = self.is_notebook(cid)
        self.action.blockSignals(True)
        self.action.setChecked(self.active)
        self.action.blockSignals(False)
        self._view.setVisible(not self.active)
        self._composer.setVisible(not self.active)
        self.panel.setVisible(self.active)
        self.reply_id, self.document = None, ""
        text = ""
        if self.active and cid is not None:
            text = self._text_of(cid)
        self.panel.editor.setPlainText(text)
        self.panel.editor.moveCursor(QTextCursor.MoveOperation.End)
        self.refresh_state()

    def _text_of(self, cid: int) -> str:
        """The last document on the branch shown, followed by its continuation."""
        history = self._history
        try:
            leaf = history.get_conversation(cid).leaf_message_id
            last = history.get_message(leaf) if leaf is not None else None
            if last is None:
                return ""
            if last.role == "user":
                return last.content
            parent = history.get_message(last.parent_id) if last.parent_id is not None else None
        except LlamaDeskError as exc:
            self._state.warn("Notebook not read", str(exc))
            return ""
        self.reply_id, self.document = last.id, parent.content if parent is not None else ""
        return self.document + last.content

    def refresh_state(self) -> None:
        st = self._state
        loading = st.is_loading
        can_run = st.model_info is not None and not loading and not st.is_generating
        reason = "Load a model first" if st.model_info is None or loading else ""
        self.panel.set_state(can_run=can_run, generating=st.is_generating, reason=reason)

    # --- running ----------------------------------------------------------------------------------------------
    def generate(self) -> None:
        """Saves the text as it is and streams the model's continuation after it."""
        st, session = self._state, self._session
        text = self.panel.editor.toPlainText()
        if not text.strip() or st.model_info is None or st.is_generating or st.is_loading:
            return
        try:
            cid = st.ensure_conversation()
        except LlamaDeskError as exc:
            st.warn("Text not sent", str(exc))
            return
        if not self.is_notebook(cid):
            self.set_notebook(True)
        st.save_conversation_settings()
        model = st.loaded_model.name if st.loaded_model is not None else st.model_info.file_name
        if session.complete(cid, text, self._sampling.params(), model):
            self.document = text
            self.reply_id = session.requests[session.active_request].reply.message_id  # type: ignore[index]
            st.conversations_changed()
        self.refresh_state()

    def continue_text(self) -> None:
        """Extends the last continuation in place; after an edit of the text, the same as Generate."""
        st = self._state
        cid = st.current_cid
        if cid is None or self.reply_id is None or st.model_info is None or st.is_generating:
            self.generate()
            return
        try:
            reply = self._history.get_message(self.reply_id)
        except LlamaDeskError:
            self.generate()
            return
        if self.panel.editor.toPlainText() != self.document + reply.content:
            self.generate()
            return
        self._session.continue_reply(cid, reply.id, self._sampling.params(), "")
        self.refresh_state()

    def _on_text(self, cid: int, message_id: int, text: str) -> None:
        if self.active and cid == self._state.current_cid and message_id == self.reply_id:
            self.panel.append(text)

    def _on_reply_ended(self, cid: int, _stats: object) -> None:
        self.refresh_state()
        if self.active and cid == self._state.current_cid and self.reply_id is not None:
            try:
                reply = self._history.get_message(self.reply_id)
            except LlamaDeskError:
                return
            if reply.status == "error" and reply.receipt and reply.receipt.get("error"):
                self.panel.note.setText(f"⚠ {reply.receipt['error']}")

"""What the window's parts share instead of the window itself.

The chat controller, the notebook, the prefill, the navigation, the settings and the file drop each need to know which
conversation is shown, which model is loaded and whether the engine is busy, and each needs to tell the window
something (a warning, a status line, "the list of conversations changed", "open this one"). They get this object and
the widgets they work on, never MainWindow: main_window.py imports them, so none of them may import it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from llamadesk.core.engines.api import ModelInfo
    from llamadesk.core.library import LocalModel
    from llamadesk.ui.chat.session import ChatSession
    from llamadesk.ui.model_picker import ModelPicker


class WindowState(QObject):
    """The shown conversation, the loaded model (read from the picker, which loads it: stored once) and whether a
    reply streams or a model loads, with a signal for each change; and the requests the parts make of the window."""

    conversationChanged = Signal(object)  # the id of the conversation now shown, or None
    modelChanged = Signal()  # a model was loaded or unloaded: model_info and loaded_model changed
    busyChanged = Signal()  # a reply or a load began or ended, or the window closed

    # The parts' requests; the window carries them out.
    problem = Signal(str, str)  # title, one sentence: a warning the user must see
    notice = Signal(str, int)  # a status line, for milliseconds (0: until the next one)
    conversationsChanged = Signal()  # a conversation was added, renamed or changed: the list reads itself again
    openRequested = Signal(object)  # show this conversation (an id, or None for none)
    settingsDue = Signal()  # save the panel's values to the shown conversation now (before it changes)

    def __init__(
        self, session: ChatSession, picker: ModelPicker, ensure_conversation: Callable[[], int],
        parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self._session, self._picker, self._ensure = session, picker, ensure_conversation
        self._cid: int | None = None
        self._closed = False
        picker.modelLoaded.connect(self.modelChanged)
        picker.modelUnloaded.connect(self.modelChanged)
        picker.busyChanged.connect(self.busyChanged)
        session.busyChanged.connect(self.busyChanged)

    # --- what is shown ---------------------------------------------------------------------------------------------
    @property
    def current_cid(self) -> int | None:
        return self._cid

    def set_current(self, cid: int | None) -> None:
        """The window shows `cid` now (only the window calls this; parts ask with `open`)."""
        if cid != self._cid:
            self._cid = cid
            self.conversationChanged.emit(cid)

    def ensure_conversation(self) -> int:
        """The shown conversation, made first when none is shown. Raises LlamaDeskError when it cannot be made."""
        return self._ensure()

    # --- the model and the engine --------------------------------------------------------------------------------
    @property
    def model_info(self) -> ModelInfo | None:
        return self._picker.model_info

    @property
    def loaded_model(self) -> LocalModel | None:
        return self._picker.loaded_model

    @property
    def is_generating(self) -> bool:
        return self._session.is_generating

    @property
    def is_loading(self) -> bool:
        return self._picker.is_loading

    @property
    def closed(self) -> bool:
        """The window was shut down: nothing may be sent to its engine any more."""
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.busyChanged.emit()

    # --- requests of the window -------------------------------------------------------------------------------------
    def warn(self, title: str, message: str) -> None:
        self.problem.emit(title, message)

    def show_notice(self, text: str, milliseconds: int = 0) -> None:
        self.notice.emit(text, milliseconds)

    def conversations_changed(self) -> None:
        self.conversationsChanged.emit()

    def open(self, cid: int | None) -> None:
        self.openRequested.emit(cid)

    def save_conversation_settings(self) -> None:
        self.settingsDue.emit()

"""A panel choice kept with each conversation, under one key of its sampling JSON (the response format, the tools):
shown again when the conversation is, stored when it changes, and a choice made while no conversation is shown goes
to the next new one (made for your first message)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

from llamadesk.core.errors import LlamaDeskError

if TYPE_CHECKING:
    from llamadesk.core.history import History
    from llamadesk.ui.window_state import WindowState


class ConversationChoice(QObject):
    """Subclasses say how the choice is stored (`encode`: None for the default, which is not stored) and shown
    (`show`, given the conversation's sampling dict), and call `changed` when the user changes it."""

    key = ""  # the sampling JSON's key
    what = ""  # for the warning when it cannot be saved: "Tools", "Response format"

    def __init__(self, state: WindowState, history: History, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.history = state, history
        self._pending: Any = None
        state.conversationChanged.connect(self._on_conversation)

    def encode(self, value: Any) -> Any:
        raise NotImplementedError

    def show(self, sampling: dict[str, Any]) -> None:
        raise NotImplementedError

    def changed(self, value: Any) -> None:
        """The user changed the choice: stored with the shown conversation, or kept for the next new one."""
        cid = self.state.current_cid
        if cid is None:
            self._pending = value
            return
        try:
            self._store(cid, value)
        except LlamaDeskError as exc:
            self.state.warn(f"{self.what} not saved", str(exc))

    def _on_conversation(self, cid: int | None) -> None:
        if cid is None:
            return
        try:
            sampling = self.history.get_conversation(cid).sampling
            pending, self._pending = self._pending, None
            if self.key not in sampling and pending is not None and not self.history.messages(cid):
                self._store(cid, pending)  # made for your first message: it takes what you chose
                return
        except LlamaDeskError:
            return
        self.show(sampling)

    def _store(self, cid: int, value: Any) -> None:
        sampling: dict[str, Any] = dict(self.history.get_conversation(cid).sampling)
        encoded = self.encode(value)
        if encoded is None:
            sampling.pop(self.key, None)
        else:
            sampling[self.key] = encoded
        self.history.update_conversation(cid, sampling=sampling)

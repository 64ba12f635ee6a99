"""Narrow windows: the side panels give way (each stays a toolbar button) before the chat gets too narrow to read."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

CHAT_MIN_WIDTH = 440  # px: a bubble with its footer (‹ 1/2 ›, Copy, Receipt, Regenerate) and ~45 columns of code
RESTORE_SLACK = 40  # px more than needed before a panel comes back: no open–close flicker at the threshold


class PanelFit(QObject):
    """Keeps the chat at least CHAT_MIN_WIDTH wide by closing side panels, in the order given (the settings first,
    the conversation list last), and reopens them, last closed first, when the window is wide again.

    Only panels the fit closed come back by themselves: one you closed stays closed. One you open while the window
    is narrow stays open, and the others give way to it. Each closed panel is one click away: its toggle action
    (the toolbar's "Settings", "Conversations") stays in the toolbar and the View menu.

    Qt's layouts have no "collapse this first" rule (a QMainWindow shrinks its central widget down to its minimum
    before any dock), so the chat's actual width is measured after each layout and the fit acts on it."""

    def __init__(
        self, window: QMainWindow, chat: QWidget, panels: list[QWidget], toggles: dict[QWidget, QAction] | None = None,
        parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent or window)
        self.window, self.chat, self.panels = window, chat, panels
        self.auto_closed: list[QWidget] = []  # closed by the fit, in the order it closed them
        self._widths: dict[QWidget, int] = {}  # a panel's width when last seen open
        self._kept: QWidget | None = None  # the panel you opened last: the others give way to it
        self._acting = False
        # Panels hidden by a call (not by the window hiding): a Show of one of these is an opening, not the window's.
        self._hidden = {panel for panel in panels if panel.isHidden()}
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self.fit)
        window.installEventFilter(self)
        chat.installEventFilter(self)
        toggles = dict(toggles or {})
        for panel in panels:
            panel.installEventFilter(self)
            toggle = toggles.get(panel) or (panel.toggleViewAction() if isinstance(panel, QDockWidget) else None)
            if toggle is not None:  # your click on its button or menu entry
                toggle.triggered.connect(lambda on, p=panel: self._chosen(p, on))

    # --- the panels ------------------------------------------------------------------------------------------------
    @staticmethod
    def _takes_room(panel: QWidget) -> bool:
        return panel.isVisible() and not (isinstance(panel, QDockWidget) and panel.isFloating())

    def _set_open(self, panel: QWidget, on: bool) -> None:
        self._acting = True
        try:
            panel.setVisible(on)
        finally:
            self._acting = False

    def _chosen(self, panel: QWidget, on: bool) -> None:
        """You opened or closed `panel`: it is yours from now on (an open one is kept while others give way)."""
        if panel in self.auto_closed:
            self.auto_closed.remove(panel)
        if on:
            self._kept = panel
        elif self._kept is panel:
            self._kept = None
        self._timer.start()

    def _tabbed(self, panel: QWidget) -> bool:
        return isinstance(panel, QDockWidget) and bool(self.window.tabifiedDockWidgets(panel))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Resize and watched in (self.window, self.chat):
            self._timer.start()
        elif watched in self.panels and isinstance(watched, QWidget):
            if kind == QEvent.Type.Resize and self._takes_room(watched):
                self._widths[watched] = watched.width()
            elif kind == QEvent.Type.Show and watched in self._hidden:
                self._hidden.discard(watched)
                if not self._acting and not self._tabbed(watched):
                    self._chosen(watched, True)  # opened by its own code (Ctrl+Shift+F shows the search)
            elif kind == QEvent.Type.Hide:
                if watched.isHidden():
                    self._hidden.add(watched)
                if not self._acting:
                    self._timer.start()
        return False

    def settled(self) -> bool:
        """No fit is due (tests wait for this after a resize)."""
        return not self._timer.isActive()

    # --- fitting ------------------------------------------------------------------------------------------------
    def fit(self) -> None:
        """Closes one panel when the chat is too narrow, or reopens one when there is room; the next layout calls
        this again until nothing changes."""
        if not self.window.isVisible():
            return
        width = self.chat.width()
        if width < CHAT_MIN_WIDTH:
            for panel in self.panels:
                if panel is not self._kept and self._takes_room(panel):
                    self._widths[panel] = panel.width()
                    self.auto_closed.append(panel)
                    self._set_open(panel, False)
                    return
            return
        if self.auto_closed:
            panel = self.auto_closed[-1]
            needed = self._widths.get(panel, panel.sizeHint().width()) + RESTORE_SLACK
            if width - needed >= CHAT_MIN_WIDTH:
                self.auto_closed.pop()
                self._set_open(panel, True)


def sidebar_toggle(sidebar: QWidget, parent: QObject) -> QAction:
    """A checkable "Conversations" action that shows or hides the conversation list and follows its visibility."""
    action = QAction("Conversations", parent)
    action.setObjectName("toggleConversations")
    action.setCheckable(True)
    action.setChecked(True)
    action.setIconText("☰")  # the toolbar button stays small: a narrow window keeps the model picker in sight
    action.setToolTip("Show or hide the list of conversations (Ctrl+Shift+L)")
    action.setShortcut("Ctrl+Shift+L")
    action.toggled.connect(lambda on: sidebar.setVisible(on) if sidebar.isVisible() != on else None)

    class _Follow(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() in (QEvent.Type.Show, QEvent.Type.Hide):
                action.setChecked(event.type() == QEvent.Type.Show)
            return False

    follow = _Follow(action)
    sidebar.installEventFilter(follow)
    return action

"""Finding things from the main window: the search panel (all conversations), the find bar (this one), the
model manager window and the history actions (export, import, titles, logs) — wired here so that the window
stays a composition of parts. Searches, Ctrl+F, export and import share one query thread with its own History."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, SignalInstance
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QBoxLayout, QDockWidget, QMainWindow, QMenu

from llamadesk.ui.find_bar import FindBar
from llamadesk.ui.history_actions import HistoryActions
from llamadesk.ui.search_panel import SearchPanel
from llamadesk.ui.search_worker import history_queries
from llamadesk.ui.shortcuts import MenuId

if TYPE_CHECKING:
    from llamadesk.core.history import History
    from llamadesk.paths import Paths
    from llamadesk.ui.chat.model import MessageListModel
    from llamadesk.ui.chat.session import ChatSession
    from llamadesk.ui.chat.view import ChatView
    from llamadesk.ui.model_picker import ModelPicker
    from llamadesk.ui.models import ModelManagerDialog
    from llamadesk.ui.sidebar import Sidebar
    from llamadesk.ui.window_state import WindowState
    from llamadesk.ui.workers import EngineHost


class Navigation(QObject):
    """Owns the search dock, the find bar and the model manager of one main window: the find bar goes at the top of
    `chat_column` (above the chat view), Ctrl+F comes as `find_requested`, the history actions are built here."""

    def __init__(
        self,
        state: WindowState,
        window: QMainWindow,
        *,
        history: History,
        host: EngineHost,
        session: ChatSession,
        chat_model: MessageListModel,
        chat_view: ChatView,
        chat_column: QBoxLayout,
        sidebar: Sidebar,
        picker: ModelPicker,
        menus: Mapping[MenuId, QMenu],
        paths: Paths,
        quit_action: QAction | None,
        find_requested: SignalInstance,
    ) -> None:
        super().__init__(window)
        self.state, self._window, self.paths, self.picker = state, window, paths, picker
        self.session, self.chat_model, self.chat_view = session, chat_model, chat_view
        self.model_manager: ModelManagerDialog | None = None
        self.queries = history_queries(history)  # ended in shutdown()
        # Its History is opened now, before any reply streams (opening marks replies left 'streaming' interrupted).
        self.queries.submit("open", lambda _history: None, lambda _none: None, lambda _sentence: None)

        self.find_bar = FindBar(history, runner=self.queries)
        self.find_bar.set_anchor(self._top_message)
        self.find_bar.set_counter(chat_view.hit_count)  # "n of m" counts the words highlighted, not the messages
        self.find_bar.hide()
        chat_column.insertWidget(0, self.find_bar)  # above the chat view

        self.search_panel = SearchPanel(history, runner=self.queries)
        self.search_dock = QDockWidget("Search", window)
        self.search_dock.setObjectName("searchDock")
        self.search_dock.setWidget(self.search_panel)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.search_dock)
        self.search_dock.hide()

        self.search_action = self._action("Search all conversations…", "Ctrl+Shift+F", self.show_search)
        self.models_action = self._action("Models…", "Ctrl+M", self.show_model_manager)
        self.models_action.setStatusTip("Find, download and manage models (Ctrl+M)")
        file_menu = menus[MenuId.FILE]
        existing = file_menu.actions()
        if len(existing) > 1:
            file_menu.insertAction(existing[1], self.models_action)  # after "New chat"
        else:
            file_menu.addAction(self.models_action)
        menus[MenuId.EDIT].addAction(self.search_action)

        sidebar.searchRequested.connect(self.show_search)
        find_requested.connect(lambda: self.find_bar.open_find())
        self.search_panel.openRequested.connect(self.open_search_hit)
        self.search_panel.closeRequested.connect(self.close_search)
        self.find_bar.scrollToMessage.connect(chat_view.scroll_to_message)
        self.find_bar.highlightChanged.connect(chat_view.set_highlight)
        self.find_bar.currentHitChanged.connect(chat_view.show_hit)  # the current hit marked, in view
        self.find_bar.closed.connect(chat_view.setFocus)
        session.replyEnded.connect(lambda *_: self.find_bar.refresh())  # the new reply may match
        self.history_actions = HistoryActions(
            state, window, self.queries,
            history=history, host=host, sidebar=sidebar, menus=menus, paths=paths, quit_action=quit_action,
        )  # fmt: skip

    def _action(self, text: str, shortcut: str, slot: object) -> QAction:
        action = QAction(text, self._window)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        self._window.addAction(action)
        return action

    def _top_message(self) -> int | None:
        """The message at the top of the chat view: Ctrl+F starts at the first match there or below."""
        row = self.chat_view.rowAt(0)
        return self.chat_model.row(row).message_id if row >= 0 else None

    def conversation_shown(self, cid: int | None) -> None:
        """Keeps the find bar on the conversation the window shows."""
        self.find_bar.set_conversation(cid)

    def show_search(self) -> None:
        self.search_dock.show()
        self.search_dock.raise_()
        self.search_panel.refresh()
        self.search_panel.focus_search()

    def close_search(self) -> None:
        self.search_dock.hide()
        self.chat_view.setFocus()

    def open_search_hit(self, cid: int, mid: int | None, query: str) -> None:
        """A hit: its conversation, on the branch that holds the message, scrolled to it."""
        state = self.state
        if cid != state.current_cid:
            state.open(cid)  # the window opens it now (a direct connection), or warns and shows none
        if state.current_cid != cid or mid is None:
            return  # not opened (already warned), or the title matched
        if self.chat_model.find(mid) < 0 and not self.session.show_branch_of(cid, mid):
            return
        self.find_bar.set_conversation(cid)
        self.find_bar.open_find(query, start_at=mid, focus=False)

    def show_model_manager(self) -> None:
        """The model manager, made on first use; its downloads go on while it is closed."""
        if self.model_manager is None:
            from llamadesk.ui.models import ModelManagerDialog  # on first use: it pulls in the Hub and gguf stacks

            self.model_manager = ModelManagerDialog(self.paths, self._window)
            self.model_manager.modelsChanged.connect(self.picker.refresh)
        self.model_manager.show()
        self.model_manager.raise_()
        self.model_manager.activateWindow()

    def shutdown(self) -> None:
        self.history_actions.shutdown()
        self.queries.shutdown()
        if self.model_manager is not None:
            self.model_manager.shutdown()

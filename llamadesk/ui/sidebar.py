"""The conversation list: lazy pages, pinned first, date headings, rename, pin, delete with undo."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QMenu,
    QMessageBox,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history import History
from llamadesk.ui.conversation_list import (
    PAGE_SIZE,
    WRITING,
    ConversationLike,
    ConversationList,
    ConversationListModel,
    Fetch,
    IdRole,
    PinnedRole,
    SidebarDelegate,
    SidebarItem,
)
from llamadesk.ui.undo_bar import UndoBar

BUSY_TICK_MS = 120  # the writing marker turns 30° per tick
SEEK_LIMIT = 5_000  # select()/set_current() load pages up to this many conversations to find one
UNDO_TIMEOUT_MS = 10_000


class Sidebar(QWidget):
    """The conversation list. Given a History (`set_history`), it pages through it and renames, pins, trashes and
    restores by itself, reporting each change; without one it shows the list it is given and asks the window."""

    conversationSelected = Signal(int)
    newChatRequested = Signal()
    searchRequested = Signal()
    renameRequested = Signal(int, str)  # without a history: the window renames
    deleteRequested = Signal(int)  # without a history: the window deletes (after the question)
    conversationRenamed = Signal(int, str)
    conversationPinned = Signal(int, bool)
    conversationTrashed = Signal(int)  # after the sidebar selected a neighbour (if it was the current one)
    conversationRestored = Signal(int)  # after the sidebar selected it again
    problem = Signal(str, str)  # (title, sentence) of a history error
    titleRequested = Signal(int)  # "Suggest title with the model" (or stop it, while `suggesting_title`)
    exportRequested = Signal()  # "Export…": the selected conversations

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        history: History | None = None,
        clock: Callable[[], float] = time.time,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.undo_timeout_ms = UNDO_TIMEOUT_MS
        self._history: History | None = None
        self._filling = False
        self._refresh_pending = False
        self._trashed: list[int] = []  # what Undo brings back
        self.suggesting_title = False  # the window says so: the menu then offers to stop it

        self.new_button = QPushButton("New chat", self)
        self.new_button.setObjectName("newChatButton")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.search_button = QToolButton(self)
        self.search_button.setObjectName("searchButton")
        self.search_button.setText("Search")
        self.search_button.setAccessibleName("Search conversations")
        self.search_button.setToolTip("Search all conversations (Ctrl+Shift+F)")
        self.model = ConversationListModel(self, page_size=page_size, clock=clock)
        self.list = ConversationList(self)
        self.list.setObjectName("conversationList")
        self.list.setAccessibleName("Conversations")
        self.list.setModel(self.model)
        self.delegate = SidebarDelegate(self.list)
        self.list.setItemDelegate(self.delegate)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        # Ctrl/Shift+click select several conversations (to export them); the current one is the one shown.
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.undo_bar = UndoBar(self)
        top = QHBoxLayout()
        top.setSpacing(4)
        top.addWidget(self.new_button, 1)
        top.addWidget(self.search_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.undo_bar)
        self.setMinimumWidth(150)
        self.undo_shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Undo), self)
        self.undo_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

        self.new_button.clicked.connect(self.newChatRequested)
        self.search_button.clicked.connect(self.searchRequested)
        self.list.selectionModel().currentChanged.connect(self._on_current_changed)
        self.list.customContextMenuRequested.connect(self._show_menu)
        self.list.menuRequested.connect(self._show_menu)
        self.list.deletePressed.connect(self.delete_current)
        self.delegate.closeEditor.connect(self._on_editor_closed)
        self.model.renameRequested.connect(self._on_renamed)
        self.model.failed.connect(lambda sentence: self.problem.emit("History not available", sentence))
        self.undo_bar.undoRequested.connect(self.undo_delete)
        self.undo_bar.expired.connect(self._trashed.clear)
        self.undo_shortcut.activated.connect(self.undo_delete)
        self._writing: list[int] = []  # conversations whose marker turns
        self._busy_timer = QTimer(self, interval=BUSY_TICK_MS)
        self._busy_timer.timeout.connect(self._turn_marker)
        if history is not None:
            self.set_history(history)

    # --- the list -------------------------------------------------------------------------------------------------
    @property
    def history(self) -> History | None:
        return self._history

    def set_history(self, history: History | None) -> None:
        """Pages through `history` from now on (None: back to lists given by `set_conversations`)."""
        self._history = history
        self.model.set_source(None)
        self.refresh()

    def refresh(self) -> None:
        """Reads the history again down to the bottom of the view (and the current row), keeping the current
        conversation and the scroll; deferred while a title is being edited."""
        if self._history is None:
            return
        if self.list.state() == QAbstractItemView.State.EditingState:
            self._refresh_pending = True  # after the editor closes: a reset now would throw your typing away
            return
        self._refresh_now()

    def _refresh_now(self) -> None:
        if self._history is None:
            return
        history = self._history
        # Read again what is on screen or above it and the current row, not every page ever loaded: a refresh comes
        # after each reply, and 5,000 rows take ~130 ms. A row count bounds the conversations (headings are rows).
        view = self.list
        bottom = view.indexAt(QPoint(1, view.viewport().height() - 1)).row()
        keep = max(bottom if bottom >= 0 else self.model.rowCount() - 1, view.currentIndex().row()) + 1
        self._reload(lambda limit, offset: history.list_conversations(limit, offset), keep)

    def _reload(self, fetch: Fetch, first: int, current: int | None = None, *, keep_current: bool = True) -> None:
        current = self.current_id() if keep_current else current
        bar = self.list.verticalScrollBar()
        scroll = bar.value()
        try:
            self.model.set_source(fetch, first=first)
        except LlamaDeskError as exc:
            self.problem.emit("History not available", str(exc))
            return
        self.list.doItemsLayout()  # the scroll range now, not at the next paint
        bar.setValue(scroll)
        self.set_current(current, seek=False)

    def set_conversations(self, conversations: Sequence[ConversationLike], current: int | None) -> None:
        """Shows `conversations` without emitting conversationSelected. With a history the list is ignored (it
        would be the same) and the history is read again, lazily."""
        self._refresh_pending = False
        if self._history is not None:
            self.refresh()
            self.set_current(current)
            return
        convs = list(conversations)
        self._reload(lambda limit, offset: convs[offset : offset + limit], len(convs), current, keep_current=False)

    def selected_ids(self) -> list[int]:
        """The conversations selected (Ctrl/Shift+click), in list order; the current one when none is."""
        rows = sorted(index.row() for index in self.list.selectionModel().selectedIndexes())
        ids = [int(cid) for row in rows if (cid := self.model.index(row, 0).data(IdRole)) is not None]
        current = self.current_id()
        return ids or ([] if current is None else [current])

    def current_id(self) -> int | None:
        cid = self.list.currentIndex().data(IdRole)
        return None if cid is None else int(cid)

    def first_id(self) -> int | None:
        """The conversation at the top of the list (pinned or the most recent), if any."""
        ids = self.model.ids()
        return ids[0] if ids else None

    def _seek(self, cid: int, seek: bool) -> int:
        row = self.model.row_of(cid)
        if row < 0 and seek and self._history is not None:
            self._refresh_now()  # new or just active: at the top now, not in a later page
            row = self.model.row_of(cid)
        while seek and row < 0 and self.model.canFetchMore() and self.model.conversation_count() < SEEK_LIMIT:
            self.model.fetchMore()
            row = self.model.row_of(cid)
        return row

    def set_current(self, cid: int | None, *, seek: bool = True) -> None:
        """Marks `cid` as the conversation shown, loading pages to reach it, without emitting conversationSelected."""
        row = -1 if cid is None else self._seek(cid, seek)
        self._filling = True
        try:
            if row < 0:
                self.list.selectionModel().clear()
            elif self.list.currentIndex().row() != row:
                # Only when it changes: during a Ctrl+click the view would read the modifier and toggle it off.
                self.list.setCurrentIndex(self.model.index(row, 0))
        finally:
            self._filling = False

    def select(self, cid: int) -> None:
        """Selects `cid` as if clicked: conversationSelected is emitted when it changes the selection."""
        row = self._seek(cid, True)
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row, 0))

    def item_for(self, cid: int) -> SidebarItem | None:
        r = self.model.conversation_at(self.model.row_of(cid))
        return None if r is None else SidebarItem(r.cid, r.title, r.pinned)

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        cid = current.data(IdRole)
        if not self._filling and cid is not None:
            self.conversationSelected.emit(int(cid))

    # --- what the engine works for ---------------------------------------------------------------------------------
    def set_activity(self, activity: dict[int, str]) -> None:
        """Marks the conversations whose reply is being written (a turning arc) or whose message is queued."""
        self.model.set_activity(activity)
        self._writing = [cid for cid, what in activity.items() if what == WRITING]
        writing = any(a == WRITING for a in activity.values())
        if writing and not self._busy_timer.isActive():
            self._busy_timer.start()
        elif not writing:
            self._busy_timer.stop()

    def activity(self, cid: int) -> str | None:
        """WRITING, QUEUED or None: what the list shows for `cid`."""
        return self.model.activity(cid)

    def _turn_marker(self) -> None:
        self.delegate.phase = (self.delegate.phase + 1) % 12
        for cid in self._writing:
            row = self.model.row_of(cid)
            if row >= 0:
                self.list.update(self.model.index(row, 0))

    # --- rename, pin ----------------------------------------------------------------------------------------------
    def rename_current(self) -> None:
        index = self.list.currentIndex()
        if index.isValid():
            self.list.edit(index)

    def _on_renamed(self, cid: int, title: str) -> None:
        if self._history is None:
            self.renameRequested.emit(cid, title)
            return
        try:
            self._history.rename_conversation(cid, title)
        except LlamaDeskError as exc:
            self._refresh_pending = True  # the old title comes back once the editor has closed
            self.problem.emit("Conversation not renamed", str(exc))
            return
        self.conversationRenamed.emit(cid, title)

    def _on_editor_closed(self, *_: object) -> None:
        if self._refresh_pending:
            self._refresh_pending = False
            QTimer.singleShot(0, self.refresh)  # after the view has left its editing state

    def set_pinned(self, cid: int, pinned: bool) -> None:
        if self._history is None:
            return
        try:
            self._history.set_pinned(cid, pinned)
        except LlamaDeskError as exc:
            self.problem.emit("Conversation not pinned" if pinned else "Conversation not unpinned", str(exc))
            return
        self._refresh_now()
        self.list.scrollTo(self.list.currentIndex())
        self.conversationPinned.emit(cid, pinned)

    # --- delete and undo --------------------------------------------------------------------------------------------
    def delete_current(self) -> None:
        index = self.list.currentIndex()
        cid = index.data(IdRole)
        if cid is None:
            return
        if self._history is not None:
            self.trash(int(cid))
            return
        answer = QMessageBox.question(
            self,
            "Delete conversation",
            f"Delete “{index.data()}” and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.deleteRequested.emit(int(cid))

    def trash(self, cid: int) -> None:
        """Moves `cid` to the history's trash; if it was current, the next one down (or up) becomes current."""
        if self._history is None:
            return
        was_current, row = cid == self.current_id(), self.model.row_of(cid)
        try:
            self._history.trash_conversation(cid)
        except LlamaDeskError as exc:
            self.problem.emit("Conversation not deleted", str(exc))
            return
        self._trashed.append(cid)
        self._refresh_now()
        if was_current:
            below = [self.model.conversation_at(r) for r in range(row, self.model.rowCount())]
            above = [self.model.conversation_at(r) for r in range(min(row, self.model.rowCount()) - 1, -1, -1)]
            neighbour = next((r for r in below + above if r is not None), None)
            if neighbour is None:
                self.set_current(None)
            else:
                self.select(neighbour.cid)
        n = len(self._trashed)
        self.undo_bar.show_message(
            "Conversation deleted" if n == 1 else f"{n} conversations deleted", self.undo_timeout_ms
        )
        self.conversationTrashed.emit(cid)

    def undo_delete(self) -> None:
        """Brings back what the undo bar offers and selects the first of it."""
        if self._history is None or not self._trashed:
            return
        trashed, self._trashed[:] = list(self._trashed), []
        self.undo_bar.dismiss()
        restored: list[int] = []
        for cid in reversed(trashed):
            try:
                self._history.restore_conversation(cid)
            except LlamaDeskError as exc:
                self.problem.emit("Conversation not restored", str(exc))
                continue
            restored.append(cid)
        self._refresh_now()
        if restored:
            self.select(restored[-1])
            self.list.scrollTo(self.list.currentIndex())
        for cid in restored:
            self.conversationRestored.emit(cid)

    # --- menu -------------------------------------------------------------------------------------------------------
    def _show_menu(self, pos: QPoint) -> None:
        index = self.list.indexAt(pos)
        cid = index.data(IdRole)
        if cid is None:
            return
        if not self.list.selectionModel().isSelected(index):
            self.list.setCurrentIndex(index)  # a click outside the selection: that one alone
        menu = QMenu(self)
        pinned = bool(index.data(PinnedRole))
        entries: list[tuple[str, QKeySequence | None, Callable[[], None]]] = [
            ("Rename", QKeySequence(Qt.Key.Key_F2), self.rename_current)
        ]
        if self._history is not None:
            entries.append(("Unpin" if pinned else "Pin to top", None, lambda: self.set_pinned(int(cid), not pinned)))
            suggest = "Stop suggesting the title" if self.suggesting_title else "Suggest title with the model"
            entries.append((suggest, None, lambda: self.titleRequested.emit(int(cid))))
            count = len(self.selected_ids())
            export = "Export…" if count < 2 else f"Export {count} conversations…"
            entries.append((export, None, self.exportRequested.emit))
        entries.append(("Delete" if self._history else "Delete…", QKeySequence(Qt.Key.Key_Delete), self.delete_current))
        for text, keys, slot in entries:
            action = menu.addAction(text)
            action.triggered.connect(slot)
            if keys is not None:  # shown as a hint; the list handles the keys itself
                action.setShortcut(keys)
                action.setShortcutVisibleInContextMenu(True)
        self._menu = menu  # for tests; replaced by the next one
        menu.exec(self.list.viewport().mapToGlobal(pos))

"""The conversation list: New chat, select, rename in place (F2 or the context menu), delete with a question."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

IdRole = Qt.ItemDataRole.UserRole + 1
TITLE_MAX = 200


class ConversationLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def title(self) -> str: ...


class ConversationList(QListWidget):
    """F2 renames, Delete asks and deletes; the widget edits titles in place."""

    deletePressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_F2 and self.currentItem() is not None:
            self.editItem(self.currentItem())
            event.accept()
            return
        if event.key() == Qt.Key.Key_Delete and self.currentItem() is not None:
            self.deletePressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class Sidebar(QWidget):
    """Shows conversations newest first and reports what you ask for; the window does the history work."""

    conversationSelected = Signal(int)
    newChatRequested = Signal()
    renameRequested = Signal(int, str)
    deleteRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.new_button = QPushButton("New chat", self)
        self.new_button.setObjectName("newChatButton")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.list = ConversationList(self)
        self.list.setObjectName("conversationList")
        self.list.setAccessibleName("Conversations")
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setUniformItemSizes(True)
        self.list.setStyleSheet("QListWidget::item { padding: 5px 4px; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.setSpacing(6)
        layout.addWidget(self.new_button)
        layout.addWidget(self.list, 1)
        self.setMinimumWidth(150)

        self._filling = False
        self.new_button.clicked.connect(self.newChatRequested)
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.customContextMenuRequested.connect(self._show_menu)
        self.list.deletePressed.connect(self.delete_current)

    def current_id(self) -> int | None:
        item: QListWidgetItem | None = self.list.currentItem()
        return None if item is None else int(item.data(IdRole))

    def set_conversations(self, conversations: Sequence[ConversationLike], current: int | None) -> None:
        """Fills the list without emitting conversationSelected."""
        self._filling = True
        try:
            self.list.clear()
            for conv in conversations:
                item = QListWidgetItem(conv.title or "Untitled")
                item.setData(IdRole, conv.id)
                item.setToolTip(conv.title)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self.list.addItem(item)
                if conv.id == current:
                    self.list.setCurrentItem(item)
        finally:
            self._filling = False

    def select(self, cid: int) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if int(item.data(IdRole)) == cid:
                self.list.setCurrentItem(item)
                return

    def item_for(self, cid: int) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if int(item.data(IdRole)) == cid:
                return item
        return None

    def rename_current(self) -> None:
        item: QListWidgetItem | None = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def delete_current(self) -> None:
        item: QListWidgetItem | None = self.list.currentItem()
        if item is None:
            return
        answer = QMessageBox.question(
            self,
            "Delete conversation",
            f"Delete “{item.text()}” and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.deleteRequested.emit(int(item.data(IdRole)))

    def _on_current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if not self._filling and current is not None:
            self.conversationSelected.emit(int(current.data(IdRole)))

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        title = " ".join(item.text().split())[:TITLE_MAX]
        cid = int(item.data(IdRole))
        if title and title != item.toolTip():
            self.renameRequested.emit(cid, title)
        else:  # empty or unchanged: put the old title back
            self._filling = True
            item.setText(item.toolTip())
            self._filling = False

    def _show_menu(self, pos: QPoint) -> None:
        item: QListWidgetItem | None = self.list.itemAt(pos)
        if item is None:
            return
        self.list.setCurrentItem(item)
        menu = QMenu(self)
        menu.addAction("Rename", self.rename_current)
        menu.addAction("Delete…", self.delete_current)
        menu.exec(self.list.viewport().mapToGlobal(pos))

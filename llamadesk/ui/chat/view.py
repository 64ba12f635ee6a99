"""The message list: per-pixel scrolling, follows a streaming reply unless you scrolled up, copy on demand."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QContextMenuEvent, QGuiApplication, QKeyEvent, QKeySequence, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QAbstractItemView, QFrame, QListView, QMenu, QWidget

from llamadesk.ui.chat.delegate import MessageDelegate
from llamadesk.ui.chat.model import ContentRole, MessageListModel

FOLLOW_SLACK_PX = 24  # this close to the bottom counts as "at the bottom"


class ChatView(QListView):
    """Shows a MessageListModel with MessageDelegate; lays out only rows whose text changed."""

    def __init__(self, model: MessageListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setAccessibleName("Conversation")
        self.setModel(model)
        self._chat_model = model
        self.delegate = MessageDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setUniformItemSizes(False)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMouseTracking(False)
        self.verticalScrollBar().setSingleStep(24)
        self.placeholder = "Load a model, then type a message below."
        self._follow = True
        bar = self.verticalScrollBar()
        bar.actionTriggered.connect(self._on_user_scroll)
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)
        model.dataChanged.connect(self._on_data_changed)
        model.rowsInserted.connect(self._on_rows_inserted)
        model.modelReset.connect(self._on_reset)

    def is_following(self) -> bool:
        return self._follow

    def follow(self) -> None:
        """Sticks to the bottom again (after you send a message, or switch conversation)."""
        self._follow = True
        self.scrollToBottom()

    def _on_user_scroll(self, _action: int) -> None:
        # Decided here, before the value changes: a relayout that runs inside that change (the streaming row
        # grew) must already see that you scrolled away, or it would pull you back to the bottom.
        bar = self.verticalScrollBar()
        self._follow = bar.sliderPosition() >= bar.maximum() - FOLLOW_SLACK_PX

    def _on_scrolled(self, value: int) -> None:
        if value >= self.verticalScrollBar().maximum() - FOLLOW_SLACK_PX:
            self._follow = True  # back at the bottom, by any means

    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)

    def _on_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, _roles: object = None) -> None:
        for row in range(top_left.row(), bottom_right.row() + 1):
            self.delegate.sizeHintChanged.emit(self._chat_model.index(row, 0))

    def _on_rows_inserted(self, *_: object) -> None:
        if self._follow:
            self.scrollToBottom()

    def _on_reset(self) -> None:
        self.delegate.clear_cache()
        self._follow = True
        self.scrollToBottom()

    # --- copy -------------------------------------------------------------------------------------------------
    def copy_row(self, index: QModelIndex | QPersistentModelIndex) -> None:
        if index.isValid():
            QGuiApplication.clipboard().setText(str(index.data(ContentRole) or ""))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_PageUp, Qt.Key.Key_Home):
            self._follow = False  # the move below re-enables following if it ends at the bottom
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_row(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        index = self.indexAt(event.pos())
        if not index.isValid():
            return
        menu = QMenu(self)
        menu.addAction("Copy message", lambda: self.copy_row(index))
        menu.exec(event.globalPos())

    def set_placeholder(self, text: str) -> None:
        if text != self.placeholder:
            self.placeholder = text
            self.viewport().update()

    # --- empty state ------------------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self._chat_model.rowCount() == 0 and self.placeholder:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            rect = self.viewport().rect().adjusted(24, 24, -24, -24)
            painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), self.placeholder)
            painter.end()

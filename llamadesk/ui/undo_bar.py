"""The "Conversation deleted — Undo" line under the sidebar's list, shown for a few seconds."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QTimer, Signal
from PySide6.QtGui import QEnterEvent, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget


class UndoBar(QFrame):
    """The "Conversation deleted — Undo" line under the list, shown for a few seconds."""

    undoRequested = Signal()
    expired = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("undoBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.setAutoFillBackground(True)
        self.label = QLabel(self)
        self.label.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.label.setWordWrap(True)  # a narrow sidebar wraps the sentence rather than cut it
        self.undo_button = QToolButton(self)
        self.undo_button.setText("Undo")
        font = self.undo_button.font()
        font.setBold(True)
        self.undo_button.setFont(font)
        self.undo_button.setAccessibleName("Undo delete")
        self.undo_button.setToolTip("Bring the conversation back (Ctrl+Z)")
        self.close_button = QToolButton(self)
        self.close_button.setText("×")
        self.close_button.setAutoRaise(True)
        self.close_button.setAccessibleName("Dismiss")
        self.close_button.setToolTip("Dismiss")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.undo_button)
        layout.addWidget(self.close_button)
        self.timer = QTimer(self, singleShot=True)
        self.timer.timeout.connect(self._expire)
        self._timeout_ms = 0
        self.undo_button.clicked.connect(self.undoRequested)
        self.close_button.clicked.connect(self._expire)
        self.hide()

    def show_message(self, text: str, timeout_ms: int) -> None:
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.show()
        self._timeout_ms = timeout_ms
        if not self.underMouse():
            self.timer.start(timeout_ms)

    # The time runs only while the pointer is elsewhere: reaching for Undo must not race the clock.
    def enterEvent(self, event: QEnterEvent) -> None:
        self.timer.stop()
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        if self.isVisible():
            self.timer.start(self._timeout_ms)
        super().leaveEvent(event)

    def dismiss(self) -> None:
        self.timer.stop()
        self.hide()

    def _expire(self) -> None:
        self.dismiss()
        self.expired.emit()

"""Where you type: Enter sends, Shift+Enter starts a new line, Esc stops; grows with its text."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QSizePolicy, QVBoxLayout, QWidget

MIN_LINES = 2
MAX_LINES = 10


class ComposerEdit(QPlainTextEdit):
    """A plain-text editor whose Enter submits instead of inserting a line break."""

    submitted = Signal()
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composerEdit")
        self.setAccessibleName("Message")
        self.setAccessibleDescription("Type a message. Enter sends it, Shift+Enter starts a new line.")
        self.setPlaceholderText("Type a message…")
        self.setToolTip("Enter sends, Shift+Enter starts a new line, Esc stops the reply")
        self.setTabChangesFocus(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            mods = event.modifiers()
            if mods & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.AltModifier):
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            event.accept()
            return
        if key == Qt.Key.Key_Escape:
            self.stopRequested.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def _height_for_lines(self, lines: int) -> int:
        margins = self.contentsMargins()
        doc_margin = self.document().documentMargin()
        line = self.fontMetrics().lineSpacing()
        return int(lines * line + 2 * doc_margin + margins.top() + margins.bottom() + 2)

    def _fit_height(self) -> None:
        lines = int(self.document().size().height())  # QPlainTextEdit's layout counts in lines
        lines = max(MIN_LINES, min(MAX_LINES, lines))
        height = self._height_for_lines(lines)
        if height != self.height():
            self.setFixedHeight(height)

    def sizeHint(self) -> QSize:
        return QSize(400, self._height_for_lines(MIN_LINES))


class Composer(QWidget):
    """The editor with its Send and Stop buttons. It only signals; the window decides what happens."""

    sendRequested = Signal(str)
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = ComposerEdit(self)
        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("sendButton")
        self.send_button.setToolTip("Send the message (Enter)")
        self.send_button.setDefault(False)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop the reply (Esc)")
        self.stop_button.setEnabled(False)

        buttons = QVBoxLayout()
        buttons.setSpacing(6)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 12)
        layout.setSpacing(8)
        layout.addWidget(self.edit, 1)
        layout.addLayout(buttons)

        self.edit.submitted.connect(self._submit)
        self.edit.stopRequested.connect(self.stopRequested)
        self.send_button.clicked.connect(self._submit)
        self.stop_button.clicked.connect(self.stopRequested)
        self._can_send = False

    def text(self) -> str:
        return self.edit.toPlainText()

    def clear(self) -> None:
        self.edit.clear()

    def set_state(self, *, can_send: bool, generating: bool, reason: str = "") -> None:
        """Send is off while no model is loaded or a reply is coming; the editor always stays editable."""
        self._can_send = can_send
        self.send_button.setEnabled(can_send)
        self.send_button.setToolTip("Send the message (Enter)" if can_send else reason or "Send the message (Enter)")
        self.stop_button.setEnabled(generating)

    def _submit(self) -> None:
        text = self.text().strip()
        if self._can_send and text:
            self.sendRequested.emit(text)

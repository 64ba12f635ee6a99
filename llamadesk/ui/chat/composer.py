"""Where you type: Enter sends, Shift+Enter starts a new line, Esc stops; grows with its text."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from llamadesk.core.images import ImageError
from llamadesk.ui.chat import attachments
from llamadesk.ui.chat.attachments import Attachment, AttachmentStrip

MIN_LINES = 2
MAX_LINES = 10


class ComposerEdit(QPlainTextEdit):
    """A plain-text editor whose Enter submits instead of inserting a line break."""

    submitted = Signal()
    stopRequested = Signal()
    imagePasted = Signal(QImage)  # Ctrl+V of a picture (a screenshot): it is attached, not typed

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

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return source.hasImage() or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if source.hasImage() and not source.hasText():
            image = source.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.imagePasted.emit(image)
                return
        super().insertFromMimeData(source)

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
    """The editor with its Send and Stop buttons. It only signals; the window decides what happens.
    Editing an earlier message puts its text here with a banner: sending it starts a new branch."""

    sendRequested = Signal(str)
    stopRequested = Signal()
    editCancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editing_id: int | None = None
        self._draft = ""
        self.edit = ComposerEdit(self)
        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("sendButton")
        self.send_button.setAccessibleName("Send")
        self.send_button.setToolTip("Send the message (Enter)")
        self.send_button.setDefault(False)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setAccessibleName("Stop")
        self.stop_button.setToolTip("Stop the reply (Esc)")
        self.stop_button.setEnabled(False)
        self.attach_button = QPushButton("Attach image…", self)
        self.attach_button.setObjectName("attachButton")
        self.attach_button.setAccessibleName("Attach image")
        self.attach_button.setToolTip("Attach PNG, JPEG, WebP, GIF, BMP or TIFF images to the message (or paste one)")
        self.attachments = AttachmentStrip(self)
        self.edit_banner = QWidget(self)
        self.edit_banner.setObjectName("editBanner")
        banner = QHBoxLayout(self.edit_banner)
        banner.setContentsMargins(0, 0, 0, 0)
        self.edit_label = QLabel("Editing an earlier message: sending it starts a new branch; the old one is kept.")
        self.edit_label.setWordWrap(True)
        self.cancel_edit_button = QPushButton("Cancel edit", self.edit_banner)
        self.cancel_edit_button.setObjectName("cancelEdit")
        self.cancel_edit_button.setAccessibleName("Cancel edit")
        self.cancel_edit_button.setToolTip("Keep the message as it was (Esc)")
        banner.addWidget(self.edit_label, 1)
        banner.addWidget(self.cancel_edit_button)
        self.edit_banner.hide()
        # One line above the editor: what happens to what you send now (it waits for a reply in another chat), or
        # why Enter did not send it. Never silent: a refused Enter always says why here.
        self.note = QLabel(self)
        self.note.setObjectName("composerNote")
        self.note.setWordWrap(True)
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.note.hide()
        self._generating = False
        self._reason = ""
        self._hint = ""

        buttons = QVBoxLayout()
        buttons.setSpacing(6)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.attach_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.setSpacing(8)
        row.addWidget(self.edit, 1)
        row.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 12)
        layout.setSpacing(4)
        layout.addWidget(self.edit_banner)
        layout.addWidget(self.note)
        layout.addWidget(self.attachments)
        layout.addLayout(row)

        self.edit.submitted.connect(self._submit)
        self.edit.stopRequested.connect(self._on_escape)
        self.cancel_edit_button.clicked.connect(self.cancel_edit)
        self.send_button.clicked.connect(self._submit)
        self.stop_button.clicked.connect(self.stopRequested)
        self.attach_button.clicked.connect(self.pick_images)
        self.edit.imagePasted.connect(self.paste_image)
        self._can_send = False

    def text(self) -> str:
        return self.edit.toPlainText()

    def clear(self) -> None:
        self.edit.clear()
        self.attachments.clear()
        self._end_edit()

    def images(self) -> list[Attachment]:
        """The images attached to the message being typed, in order."""
        return self.attachments.attachments()

    def pick_images(self) -> None:
        """Attach image…: the files chosen are attached; one that is not an image says why (the others stay)."""
        for path in attachments.choose_images(self):
            self.attach(path, path.name)

    def paste_image(self, image: QImage) -> None:
        self.attach(attachments.png_of(image), attachments.PASTED_NAME)

    def attach(self, source: Path | bytes, name: str) -> bool:
        try:
            self.attachments.add(source, name)
        except ImageError as exc:
            self.say(str(exc))
            return False
        self.say("")
        return True

    def say(self, text: str) -> None:
        """One line above the box: why an image or a message was not taken (empty: the usual hint)."""
        self._show_note(text or self._hint)

    def begin_edit(self, message_id: int, text: str) -> None:
        """Puts an earlier message here for editing; what you were typing comes back if you cancel."""
        if self.editing_id is None:
            self._draft = self.text()
        self.editing_id = message_id
        self.edit.setPlainText(text)
        self.edit_banner.show()
        self.edit.setFocus()
        self.edit.moveCursor(self.edit.textCursor().MoveOperation.End)

    def cancel_edit(self) -> None:
        if self.editing_id is None:
            return
        self.edit.setPlainText(self._draft)
        self._end_edit()
        self.editCancelled.emit()

    def _end_edit(self) -> None:
        self.editing_id = None
        self._draft = ""
        self.edit_banner.hide()

    def _on_escape(self) -> None:
        if self.editing_id is not None and not self._generating:
            self.cancel_edit()
        else:
            self.stopRequested.emit()

    def set_state(self, *, can_send: bool, generating: bool, reason: str = "", hint: str = "") -> None:
        """Send is off while no model is loaded or this chat's reply is coming (`reason` says why); the editor always
        stays editable. `hint`: a line about what sending does now (it waits for another chat's reply)."""
        self._can_send = can_send
        self._generating = generating
        self._reason = "" if can_send else reason
        self._hint = hint
        self.send_button.setEnabled(can_send)
        self.send_button.setToolTip("Send the message (Enter)" if can_send else reason or "Send the message (Enter)")
        self.stop_button.setEnabled(generating)
        self._show_note(hint)

    def _show_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setAccessibleName(text)
        self.note.setVisible(bool(text))

    def _submit(self) -> None:
        text = self.text().strip()
        if not text:
            return
        if self._can_send:
            self.sendRequested.emit(text)
        else:  # Enter that cannot send says why, where you look
            self._show_note(self._reason or "This message cannot be sent now.")

"""Images attached to the message being typed: picked with "Attach image…" or pasted (Ctrl+V), shown as chips above
the box (a thumbnail and ×), stored in the history's ImageStore when the message is sent.

An attached file is read and normalized at once (core/images.py: upright, no metadata, at most 2048 px on a side),
so a file that is not an image says why before anything is sent. This runs on the GUI thread: core/images bounds
what it decodes (MAX_PIXELS, larger JPEGs decoded at a fraction, other formats that large refused before a pixel is
decoded), so the pause is short; moving it to a worker is left for later."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QToolButton, QWidget

from llamadesk.core.history.models import MessageImage
from llamadesk.core.images import ImageStore, NormalizedImage, read_image, thumbnail

CHIP_SIDE = 48  # the thumbnail's longest side in a chip, in pixels
FILE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.gif *.bmp *.tif *.tiff)"
PASTED_NAME = "The pasted image"


@dataclass(frozen=True)
class Attachment:
    """An image waiting to be sent: its normalized bytes and the name the chip shows."""

    image: NormalizedImage
    name: str


def choose_images(parent: QWidget) -> list[Path]:
    """The file dialog of "Attach image…": the formats LlamaDesk reads (core/images.FORMATS)."""
    names, _ = QFileDialog.getOpenFileNames(parent, "Attach images", "", FILE_FILTER)
    return [Path(n) for n in names]


def png_of(image: QImage) -> bytes:
    """A pasted picture (the clipboard's QImage) as PNG bytes, for core/images to read like a file."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stubs say bytes; PySide6 takes only str
    buffer.close()
    return bytes(data.data())


def store_all(store: ImageStore, attachments: Sequence[Attachment]) -> list[MessageImage]:
    """Puts the attached images in the store (each once, by content) and returns what a message refers to."""
    refs = []
    for a in attachments:
        store.put(a.image)
        refs.append(MessageImage(a.image.sha256, a.image.mime, a.image.width, a.image.height))
    return refs


def marker(width: int, height: int) -> str:
    """The line that stands for an image in a bubble."""
    return f"🖼 {width}×{height}"


class AttachmentChip(QWidget):
    """One attached image: a small thumbnail, its name and size on hover, and × to take it off."""

    removeRequested = Signal(object)  # the Attachment

    def __init__(self, attachment: Attachment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.attachment = attachment
        self.setObjectName("attachmentChip")
        image = attachment.image
        words = f"{attachment.name}, {image.width} × {image.height}"
        self.setToolTip("\n".join((words, *image.notes)))
        self.setAccessibleName(f"Attached image {words}")
        self.picture = QLabel(self)
        pixmap = QPixmap()
        pixmap.loadFromData(thumbnail(image.data, CHIP_SIDE))
        self.picture.setPixmap(pixmap)
        self.picture.setFixedSize(QSize(CHIP_SIDE, CHIP_SIDE))
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.remove_button = QToolButton(self)
        self.remove_button.setText("×")
        self.remove_button.setAccessibleName(f"Remove {attachment.name}")
        self.remove_button.setToolTip("Remove this image from the message")
        self.remove_button.clicked.connect(lambda: self.removeRequested.emit(self.attachment))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        row.addWidget(self.picture)
        row.addWidget(self.remove_button, 0, Qt.AlignmentFlag.AlignTop)


class AttachmentStrip(QWidget):
    """The chips above the message box; hidden while nothing is attached."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("attachmentStrip")
        self._chips: list[AttachmentChip] = []
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.setSpacing(6)
        self._row.addStretch(1)
        self.hide()

    def attachments(self) -> list[Attachment]:
        return [c.attachment for c in self._chips]

    def chips(self) -> list[AttachmentChip]:
        return list(self._chips)

    def add(self, source: Path | bytes, name: str) -> Attachment:
        """Reads and adds an image; ImageError (one sentence) when it is not one LlamaDesk reads."""
        attachment = Attachment(read_image(source, name=name), name)
        chip = AttachmentChip(attachment, self)
        chip.removeRequested.connect(self.remove)
        self._row.insertWidget(len(self._chips), chip)
        self._chips.append(chip)
        self.show()
        self.changed.emit()
        return attachment

    def remove(self, attachment: Attachment) -> None:
        for chip in [c for c in self._chips if c.attachment is attachment]:
            self._chips.remove(chip)
            chip.hide()
            chip.deleteLater()
        self.setVisible(bool(self._chips))
        self.changed.emit()

    def clear(self) -> None:
        for chip in self._chips:
            chip.hide()
            chip.deleteLater()
        self._chips.clear()
        self.hide()
        self.changed.emit()

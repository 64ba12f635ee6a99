"""A citation opened: the file a reply quoted, shown at the passage ([n] in the reply, a source in its receipt).

The text is read again from the file (it may have changed since), in the background, and the passage's lines (or its
page, for a PDF) are shown selected. Any file can also be opened in the system's own viewer.

A laid-out document (PDF, DOCX, ODT, EPUB) opens in the system's viewer straight away, where the page and the layout
are shown as written; a PDF at the cited page through the URL fragment `#page=N` (RFC 8118). Who honours it: the
PDF viewers of web browsers (Firefox's pdf.js, Chromium's, Chrome's and Edge's) when the desktop hands them the URL.
The usual desktop route loses it: xdg-open strips the fragment of a file: URL, and on Windows Qt opens the local path,
so Evince, Okular, macOS Preview or Acrobat reached that way open the document at its first page (the citation's page
is in the reply's receipt and in this dialog). When no application opens the file, its text is shown here instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QTextCursor
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from llamadesk.core.documents.context import place_of
from llamadesk.core.documents.extract import extract
from llamadesk.core.documents.text import Section
from llamadesk.ui.workers import TaskRunner

SYSTEM_VIEWER_SUFFIXES = frozenset({".pdf", ".docx", ".odt", ".epub"})  # laid out: shown best by their own viewer
MAX_SHOWN_CHARS = 2_000_000  # a huge log shows its start; the passage is found within it or said to be further on


def shown_text(sections: list[Section], page: int | None, line: int) -> tuple[str, int]:
    """The text to show (a PDF: the cited page; else the whole file) and the line (from 1) to select there."""
    if page is not None:
        on_page = [s for s in sections if s.page == page]
        return ("\n\n".join(s.text for s in on_page) if on_page else "", 1)
    text = "\n\n".join(s.text for s in sections) if len(sections) > 1 else (sections[0].text if sections else "")
    return text[:MAX_SHOWN_CHARS], line


def system_url(record: dict[str, Any]) -> QUrl:
    """The file's URL for the system viewer; a PDF's with `#page=N` when the passage is on page N."""
    path = Path(str(record.get("path", "")))
    url = QUrl.fromLocalFile(str(path))
    page = record.get("page")
    if path.suffix.lower() == ".pdf" and isinstance(page, int) and page > 0:
        url.setFragment(f"page={page}")
    return url


def open_in_system_viewer(record: dict[str, Any]) -> bool:
    """Opens a cited PDF, DOCX, ODT or EPUB in the system's viewer (at the page where it can); False when the file is
    of another kind, is gone, or no application took it (the caller shows the text in the app instead)."""
    path = Path(str(record.get("path", "")))
    if path.suffix.lower() not in SYSTEM_VIEWER_SUFFIXES or not path.is_file():
        return False
    return QDesktopServices.openUrl(system_url(record))


class SourceViewer(QDialog):
    """One source of a reply, read-only, its passage selected."""

    def __init__(self, record: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.record = record
        self.path = Path(str(record.get("path", "")))
        self.setWindowTitle(f"Source [{record.get('n')}] — {self.path.name}")
        self.resize(760, 560)
        self.where = QLabel(place_of(record), self)
        self.where.setObjectName("sourcePlace")
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.where.setWordWrap(True)
        self.text = QPlainTextEdit(self)
        self.text.setObjectName("sourceText")
        self.text.setAccessibleName("Source text")
        self.text.setReadOnly(True)
        self.text.setPlaceholderText("Reading the file…")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.open_button = QPushButton("Open in System Viewer", self)
        self.open_button.setToolTip("Open the file with the application your system uses for it")
        buttons.addButton(self.open_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.open_button.clicked.connect(self.open_externally)
        layout = QVBoxLayout(self)
        layout.addWidget(self.where)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)
        self.runner = TaskRunner(self, max_threads=1)
        self.finished.connect(lambda _result: self.runner.shutdown())
        page, line = record.get("page"), int(record.get("line") or 1)
        self.runner.run_in_background(
            lambda _ctx: shown_text(extract(self.path), page if isinstance(page, int) else None, line),
            self._show, self._failed, name="read source",
        )  # fmt: skip

    def open_externally(self) -> None:
        QDesktopServices.openUrl(system_url(self.record))

    def _show(self, result: tuple[str, int]) -> None:
        text, line = result
        if not text:
            self._failed(f"{self.path.name} no longer holds this passage; it may have changed since the reply.")
            return
        self.text.setPlainText(text)
        block = self.text.document().findBlockByNumber(max(0, line - 1))  # a block is a line of the file
        cursor = QTextCursor(block)
        lines = int(self.record.get("lines") or 1) if self.record.get("kind") == "passage" else 0
        if self.record.get("page") is None and lines:  # the passage's lines selected (a page shows whole)
            cursor.movePosition(QTextCursor.MoveOperation.NextBlock, QTextCursor.MoveMode.KeepAnchor, lines - 1)
            cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
        self.text.setTextCursor(cursor)
        self.text.centerCursor()

    def _failed(self, sentence: str) -> None:
        self.text.setPlaceholderText(sentence)
        self.where.setText(f"{place_of(self.record)}\n{sentence}")

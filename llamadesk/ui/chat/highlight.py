"""Words highlighted in the chat (the find bar's query, a search hit's) as paint-time selections, and the positions
of a rendered message: QTextDocument counts UTF-16 units, Python strings count code points."""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from typing import Any

from PySide6.QtGui import QAbstractTextDocumentLayout, QColor, QTextCharFormat, QTextCursor, QTextDocument

from llamadesk.core.history.matching import match_spans
from llamadesk.ui.chat.model import ChatRow

HIGHLIGHT_BG = QColor("#ffe26a")  # the search panel's mark colour: readable on light and dark bubbles alike
HIGHLIGHT_FG = QColor("#000000")
HIGHLIGHT_CACHE_SIZE = 64


class HighlightMixin:
    """The message delegate's highlighted words; the delegate sets both attributes in its __init__."""

    highlight_query: str  # words shown highlighted ("" for none)
    _highlights: OrderedDict[tuple[int, int, int], tuple[QTextDocument, list[Any]]]  # (message, revision, width)

    def set_highlight(self, query: str) -> bool:
        """Highlights the words `query` matches (search rules, last word as a prefix) in every message; "" clears.
        Returns whether anything changed (the view then repaints)."""
        query = query.strip()
        if query == self.highlight_query:
            return False
        self.highlight_query = query
        self._highlights.clear()
        return True

    def highlight_spans(self, row: ChatRow, doc: QTextDocument) -> list[tuple[int, int]]:
        """Where the highlighted words sit in `doc`, as document positions (UTF-16 units, like QTextCursor's).

        Matched in the rendered text, not the markdown source: "**turnips**" shows, and highlights, as "turnips".
        """
        if not self.highlight_query:
            return []
        text = doc.toPlainText()
        spans = match_spans(text, self.highlight_query, prefix=True)
        if spans and max(text) > "\uffff":  # characters outside the BMP take two UTF-16 units in the document
            astral = [i for i, ch in enumerate(text) if ch > "\uffff"]
            spans = [(a + bisect_left(astral, a), b + bisect_left(astral, b)) for a, b in spans]
        return spans

    def highlight_selections(self, row: ChatRow, doc: QTextDocument) -> list[Any]:
        """The highlight as paint-time selections: the document and its layout stay untouched."""
        if not self.highlight_query:
            return []
        key = (row.message_id, row.revision, int(doc.textWidth()))
        found = self._highlights.get(key)
        if found is not None and found[0] is doc:
            return found[1]
        fmt = QTextCharFormat()
        fmt.setBackground(HIGHLIGHT_BG)
        fmt.setForeground(HIGHLIGHT_FG)
        selections = []
        for start, end in self.highlight_spans(row, doc):
            cursor = QTextCursor(doc)
            cursor.setPosition(start)
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            selection = QAbstractTextDocumentLayout.Selection()
            selection.cursor, selection.format = cursor, fmt
            selections.append(selection)
        self._highlights[key] = (doc, selections)
        if len(self._highlights) > HIGHLIGHT_CACHE_SIZE:
            self._highlights.popitem(last=False)
        return selections


def code_point_index(text: str, utf16: int) -> int:
    """A QTextDocument position (UTF-16 units) as an index into the Python string of its text."""
    if utf16 <= 0 or max(text, default="a") <= "\uffff":
        return utf16
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ch > "\uffff" else 1
        if units > utf16:
            return i
    return len(text)

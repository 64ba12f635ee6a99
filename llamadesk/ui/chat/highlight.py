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
CURRENT_BG = QColor("#ff9632")  # the find bar's current hit, as browsers mark it: orange among the yellow
HIGHLIGHT_CACHE_SIZE = 64


class HighlightMixin:
    """The message delegate's highlighted words; the delegate sets both attributes in its __init__."""

    highlight_query: str  # words shown highlighted ("" for none)
    _highlights: OrderedDict[tuple[int, int, int], tuple[QTextDocument, list[Any]]]  # (message, revision, width)
    current_hit: tuple[int, int] | None = None  # (message id, which of its highlighted words): the find bar's

    def set_current_hit(self, message_id: int, n: int) -> bool:
        """Marks the `n`th highlighted word of a message as the current one (n < 0: none). Returns whether it
        changed."""
        hit = (message_id, n) if n >= 0 else None
        if hit == self.current_hit:
            return False
        self.current_hit = hit
        return True

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
        return query_spans(doc, self.highlight_query)

    def highlight_selections(self, row: ChatRow, doc: QTextDocument) -> list[Any]:
        """The highlight as paint-time selections (the current hit in its own colour): the document and its layout
        stay untouched."""
        selections = self._selections(row, doc)
        hit = self.current_hit
        if hit is None or hit[0] != row.message_id or not 0 <= hit[1] < len(selections):
            return selections
        current = QAbstractTextDocumentLayout.Selection()
        current.cursor = selections[hit[1]].cursor
        current.format = QTextCharFormat(selections[hit[1]].format)
        current.format.setBackground(CURRENT_BG)
        return [*selections[: hit[1]], current, *selections[hit[1] + 1 :]]

    def _selections(self, row: ChatRow, doc: QTextDocument) -> list[Any]:
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


def query_spans(doc: QTextDocument, query: str) -> list[tuple[int, int]]:
    """Where the words `query` matches sit in `doc` (search rules, last word as a prefix), as document positions
    (UTF-16 units, like QTextCursor's)."""
    return text_spans(doc.toPlainText(), query) if query else []


def text_spans(text: str, query: str) -> list[tuple[int, int]]:
    """`query_spans` of a document whose plain text is `text`."""
    if not query:
        return []
    spans = match_spans(text, query, prefix=True)
    if spans and max(text) > "\uffff":  # characters outside the BMP take two UTF-16 units in the document
        astral = [i for i, ch in enumerate(text) if ch > "\uffff"]
        spans = [(a + bisect_left(astral, a), b + bisect_left(astral, b)) for a, b in spans]
    return spans


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

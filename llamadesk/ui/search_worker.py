"""The search panel's results: pages of hits read in the query thread (its own History), snippets as HTML."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal

from llamadesk.core.history import History, SearchHit, split_marked
from llamadesk.ui.workers import BackgroundQueries

Index = QModelIndex | QPersistentModelIndex

HitRole = Qt.ItemDataRole.UserRole + 1
SnippetHtmlRole = Qt.ItemDataRole.UserRole + 2
PAGE_SIZE = 50
ROLE_LABELS = {"user": "You", "assistant": "Assistant", "system": "System prompt"}
MARK_STYLE = "background-color:#ffe26a; color:#000"  # readable on light, dark and selected rows alike


def snippet_html(snippet: str) -> str:
    """A marked snippet as HTML: matched words bold and highlighted, everything else escaped (text is untrusted)."""
    parts = []
    for text, matched in split_marked(snippet):
        escaped = html.escape(text, quote=False)
        parts.append(f'<b style="{MARK_STYLE}">{escaped}</b>' if matched else escaped)
    return "".join(parts)


def plain_snippet(snippet: str) -> str:
    return "".join(text for text, _ in split_marked(snippet))


def history_queries(history: History, parent: QObject | None = None) -> BackgroundQueries:
    """A query thread with a History connection of its own on `history`'s file: searches never block the GUI.

    SQLite in WAL mode lets it read beside the GUI thread's writer. Opened with no trash purge (the window's own
    History does that); a reply caught 'streaming' at that moment is written 'streaming' again at its next flush.
    """
    path = history.path
    return BackgroundQueries(lambda: History(path, trash_retention_s=None), parent, name="history-queries")


def _timed(run: Callable[[], list[SearchHit]]) -> tuple[list[SearchHit], float]:
    started = time.perf_counter()
    hits = run()
    return hits, (time.perf_counter() - started) * 1000


class SearchResultsModel(QAbstractListModel):
    """The hits of one query, read a page at a time as the list scrolls (`fetchMore`), in the query thread."""

    failed = Signal(str)
    searched = Signal()  # the first page of the current query is shown

    def __init__(self, runner: BackgroundQueries, parent: QObject | None = None, *, page_size: int = PAGE_SIZE) -> None:
        super().__init__(parent)
        self.runner, self.page_size = runner, page_size
        self.query, self.order = "", "recent"
        self.last_ms = 0.0  # how long the last page took (in the query thread)
        self._hits: list[SearchHit] = []
        self._keys: set[tuple[int, int | None]] = set()
        self._more = False
        self._generation = 0  # bumped by every new query: a page of an older one is dropped

    def _page_job(self, offset: int) -> Callable[[History], tuple[list[SearchHit], float]]:
        query, order, limit = self.query, self.order, self.page_size
        return lambda h: _timed(lambda: h.search(query, limit=limit, offset=offset, order=order, prefix=True))

    def set_query(self, query: str, order: str) -> None:
        """Starts over with the first page of `query` (nothing for an empty query); `searched` says when it shows.
        The rows shown stay until then, so typing does not make the list flicker."""
        self.query, self.order = query.strip(), order
        self._generation += 1
        self.runner.cancel("search-more")
        if not self.query:
            self.runner.cancel("search")
            self._show_first([])
            return
        generation = self._generation

        def done(result: tuple[list[SearchHit], float]) -> None:
            if generation == self._generation:
                self.last_ms = result[1]
                self._show_first(result[0])

        self.runner.submit("search", self._page_job(0), done, self._on_failed)

    def _on_failed(self, sentence: str) -> None:
        self._more = False
        self.failed.emit(sentence)

    def _show_first(self, hits: list[SearchHit]) -> None:
        self.beginResetModel()
        self._hits, self._keys = [], set()
        self._add(hits)
        self._more = len(hits) >= self.page_size
        self.endResetModel()
        self.searched.emit()

    def is_searching(self) -> bool:
        return self.runner.busy("search") or self.runner.busy("search-more")

    def _add(self, hits: list[SearchHit]) -> list[SearchHit]:
        fresh = [h for h in hits if (h.conversation_id, h.message_id) not in self._keys]  # pages shifted: skip
        self._keys.update((h.conversation_id, h.message_id) for h in fresh)
        self._hits += fresh
        return fresh

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008 - Qt's signature
        return not parent.isValid() and self._more and not self.runner.busy("search-more")

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008 - Qt's signature
        """Asks the query thread for the next page; the rows are added when it comes."""
        if not self.canFetchMore(parent) or self.runner.busy("search"):
            return
        generation = self._generation

        def done(result: tuple[list[SearchHit], float]) -> None:
            if generation == self._generation:
                self._add_page(result[0])

        self.runner.submit("search-more", self._page_job(len(self._hits)), done, self._on_failed)

    def _add_page(self, hits: list[SearchHit]) -> None:
        self._more = len(hits) >= self.page_size
        fresh = [h for h in hits if (h.conversation_id, h.message_id) not in self._keys]
        if fresh:
            self.beginInsertRows(QModelIndex(), len(self._hits), len(self._hits) + len(fresh) - 1)
            self._add(fresh)
            self.endInsertRows()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._hits)

    def hit(self, row: int) -> SearchHit:
        return self._hits[row]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._hits):
            return None
        hit = self._hits[index.row()]
        if role == HitRole:
            return hit
        if role == SnippetHtmlRole:
            return snippet_html(hit.snippet)
        if role == Qt.ItemDataRole.ToolTipRole:
            return hit.title
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            who = ROLE_LABELS.get(hit.role or "", "Title")
            return f"{hit.title} — {who}: {plain_snippet(hit.snippet)}"
        return None

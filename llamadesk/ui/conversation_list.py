"""The sidebar's list: conversations read page by page, pinned first, under date headings; F2, Delete, menu key."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont, QFontMetrics, QKeyEvent, QPainter, QPalette, QPen
from PySide6.QtWidgets import QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history import date_group

Index = QModelIndex | QPersistentModelIndex

IdRole = Qt.ItemDataRole.UserRole + 1
HeaderRole = Qt.ItemDataRole.UserRole + 2  # True on a date heading row
PinnedRole = Qt.ItemDataRole.UserRole + 3
SourceRole = Qt.ItemDataRole.UserRole + 4  # "app", or "server": a request to LlamaDesk's server (a label is drawn)
ActivityRole = Qt.ItemDataRole.UserRole + 5  # WRITING, QUEUED or None: what the engine is doing for the conversation
WRITING = "writing"  # a reply is being written into it (or its documents searched for one)
QUEUED = "queued"  # your message waits for the engine, busy with another conversation's reply
ACTIVITY_TEXT = {WRITING: "writing a reply", QUEUED: "message queued"}
SERVER_LABEL = "server"
TITLE_MAX = 200
PAGE_SIZE = 100  # a page costs ~2 ms even deep in 10,000 conversations (bench)


class ConversationLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def title(self) -> str: ...


Fetch = Callable[[int, int], Sequence[ConversationLike]]  # (limit, offset) → one page in sidebar order


@dataclass
class _Row:
    cid: int  # 0 on a heading
    title: str
    pinned: bool = False
    header: bool = False
    source: str = "app"


@dataclass(frozen=True)
class SidebarItem:
    """A conversation as the sidebar shows it (what `item_for` returns)."""

    id: int
    title: str
    pinned: bool

    def text(self) -> str:
        return self.title


class ConversationListModel(QAbstractListModel):
    """Conversations page by page (`fetchMore`), with a heading row wherever the date group changes."""

    renameRequested = Signal(int, str)  # the editor committed a new title
    failed = Signal(str)  # a page could not be read: the sentence to show

    def __init__(
        self, parent: QObject | None = None, *, page_size: int = PAGE_SIZE, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self.page_size, self.clock = page_size, clock
        self._fetch: Fetch | None = None
        self._rows: list[_Row] = []
        self._row_of: dict[int, int] = {}
        self._more = False
        self._last_group: object = None
        self._now = 0.0
        self._activity: dict[int, str] = {}  # conversation id → WRITING or QUEUED (kept across reloads)

    # --- loading ------------------------------------------------------------------------------------------------
    def set_source(self, fetch: Fetch | None, *, first: int | None = None) -> None:
        """Starts over from `fetch`, reading its first `first` conversations (default: one page) in one go."""
        want = max(self.page_size, first or 0)
        page = list(fetch(want, 0)) if fetch is not None else []  # may raise: before the model changes
        self.beginResetModel()
        self._fetch, self._rows, self._row_of, self._last_group = fetch, [], {}, None
        self._now = self.clock()
        self._commit(*self._rows_for(page))
        self._more = fetch is not None and len(page) >= want
        self.endResetModel()

    def _rows_for(self, page: Sequence[ConversationLike]) -> tuple[list[_Row], object]:
        """The rows that `page` adds after those loaded, with a heading wherever the date group changes."""
        rows: list[_Row] = []
        last, seen = self._last_group, set(self._row_of)
        for conv in page:
            if conv.id in seen:
                continue  # the list moved between two pages: already shown
            seen.add(conv.id)
            pinned = bool(getattr(conv, "pinned", False))
            updated_at = getattr(conv, "updated_at", None)
            if updated_at is not None:
                group = date_group(updated_at, pinned=pinned, now=self._now)
                if group is not last:
                    rows.append(_Row(0, group.value, header=True))
                    last = group
            source = str(getattr(conv, "source", "app") or "app")
            rows.append(_Row(conv.id, conv.title or "Untitled", pinned, source=source))
        return rows, last

    def _commit(self, rows: list[_Row], last: object) -> None:
        for r in rows:
            if not r.header:
                self._row_of[r.cid] = len(self._rows)
            self._rows.append(r)
        self._last_group = last

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008 - Qt's signature
        return not parent.isValid() and self._more

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008 - Qt's signature
        if not self.canFetchMore(parent) or self._fetch is None:
            return
        try:
            page = list(self._fetch(self.page_size, self.conversation_count()))
        except LlamaDeskError as exc:
            self._more = False
            self.failed.emit(str(exc))
            return
        self._more = len(page) >= self.page_size
        rows, last = self._rows_for(page)
        if rows:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(rows) - 1)
            self._commit(rows, last)
            self.endInsertRows()

    def set_activity(self, activity: dict[int, str]) -> None:
        """Marks the conversations the engine works for (a reply being written, a message queued)."""
        changed = set(activity.items()) ^ set(self._activity.items())
        self._activity = dict(activity)
        for cid in {c for c, _a in changed}:
            row = self._row_of.get(cid, -1)
            if row >= 0:
                index = self.index(row)
                self.dataChanged.emit(index, index, [ActivityRole, Qt.ItemDataRole.AccessibleTextRole])

    def activity(self, cid: int) -> str | None:
        return self._activity.get(cid)

    # --- reading ------------------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def conversation_count(self) -> int:
        """How many conversations are loaded (headings not counted)."""
        return len(self._row_of)

    def row_of(self, cid: int) -> int:
        return self._row_of.get(cid, -1)

    def conversation_at(self, row: int) -> _Row | None:
        r = self._rows[row] if 0 <= row < len(self._rows) else None
        return None if r is None or r.header else r

    def ids(self) -> list[int]:
        return [r.cid for r in self._rows if not r.header]

    def headings(self) -> list[str]:
        return [r.title for r in self._rows if r.header]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        r = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return r.title
        activity = None if r.header else self._activity.get(r.cid)
        if role == Qt.ItemDataRole.ToolTipRole:
            server = " (a request to LlamaDesk's server)" if r.source == SERVER_LABEL else ""
            busy = f" — {ACTIVITY_TEXT[activity]}" if activity else ""
            return None if r.header else r.title + server + busy
        if role == Qt.ItemDataRole.AccessibleTextRole:
            text = f"{r.title} (heading)" if r.header else f"{r.title}, pinned" if r.pinned else r.title
            text = f"{text}, from the server" if r.source == SERVER_LABEL else text
            return f"{text}, {ACTIVITY_TEXT[activity]}" if activity else text
        if role == ActivityRole:
            return activity
        if role == SourceRole:
            return None if r.header else r.source
        if role == IdRole:
            return None if r.header else r.cid
        if role == HeaderRole:
            return r.header
        if role == PinnedRole:
            return r.pinned
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        r = self.conversation_at(index.row()) if index.isValid() else None
        if r is None:
            return Qt.ItemFlag.NoItemFlags  # headings: not selectable, and arrow keys skip them
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        r = self.conversation_at(index.row()) if index.isValid() else None
        title = " ".join(str(value).split())[:TITLE_MAX]
        if r is None or role != Qt.ItemDataRole.EditRole or not title or title == r.title:
            return False  # empty or unchanged: the old title stays
        r.title = title
        self.dataChanged.emit(index, index)
        self.renameRequested.emit(r.cid, title)
        return True


class SidebarDelegate(QStyledItemDelegate):
    """Conversations as plain rows; headings small, bold and muted, with air above them. A conversation the engine
    works for ends in a marker: a turning arc while its reply is written (`phase` turns it), "queued" while your
    message waits for the engine."""

    phase = 0  # the writing marker's angle, in steps of 30°; the sidebar's timer advances it

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        height = option.fontMetrics.height()
        return QSize(0, height + (16 if index.data(HeaderRole) else 12))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        activity = index.data(ActivityRole)
        if activity:
            self._paint_busy(painter, option, index, activity)
            return
        if not index.data(HeaderRole) and index.data(SourceRole) == SERVER_LABEL:
            self._paint_labelled(painter, option, index)
            return
        if not index.data(HeaderRole):
            super().paint(painter, option, index)
            return
        painter.save()
        font = QFont(option.font)
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 0.85)
        painter.setFont(font)
        palette: QPalette = option.palette
        painter.setPen(palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.PlaceholderText))
        rect = option.rect.adjusted(6, 8, -4, 0)
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), str(index.data()))
        painter.restore()

    def busy_marker_rect(self, option_rect: QRect, activity: str, font: QFont) -> QRect:
        """Where the marker sits at the row's right end (the title is elided before it)."""
        small = QFont(font)
        small.setPointSizeF(small.pointSizeF() * 0.8)
        width = QFontMetrics(small).horizontalAdvance(QUEUED) + 10 if activity == QUEUED else option_rect.height()
        return QRect(option_rect.right() - width - 2, option_rect.top(), width, option_rect.height())

    def _paint_busy(self, painter: QPainter, option: QStyleOptionViewItem, index: Index, activity: str) -> None:
        marker = self.busy_marker_rect(option.rect, activity, option.font)
        widget = option.widget
        if widget is not None:  # the row's background (selected, hovered) under the marker too
            widget.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)
        title = QStyleOptionViewItem(option)
        title.rect = QRect(option.rect).adjusted(0, 0, -marker.width() - 4, 0)
        super().paint(painter, title, index)
        painter.save()
        palette: QPalette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        colour = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Highlight)
        if activity == QUEUED:
            small = QFont(option.font)
            small.setPointSizeF(small.pointSizeF() * 0.8)
            painter.setFont(small)
            painter.setPen(colour)
            painter.drawText(marker, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), QUEUED)
        else:  # a turning arc, like a busy cursor: the eye catches the motion in a long list
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            side = max(8, min(marker.width(), marker.height()) - 10)
            ring = QRect(0, 0, side, side)
            ring.moveCenter(marker.center())
            pen = QPen(colour, 2.0)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            painter.setPen(pen)
            painter.drawArc(ring, -self.phase * 30 * 16, 270 * 16)
        painter.restore()

    def _paint_labelled(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        """The row with a small muted "server" label at its right end; the title is elided before it."""
        font = QFont(option.font)
        font.setPointSizeF(font.pointSizeF() * 0.8)
        width = QFontMetrics(font).horizontalAdvance(SERVER_LABEL) + 10
        full = QRect(option.rect)
        title = QStyleOptionViewItem(option)
        title.rect = full.adjusted(0, 0, -width, 0)
        super().paint(painter, title, index)
        painter.save()
        painter.setFont(font)
        palette: QPalette = option.palette
        painter.setPen(palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.PlaceholderText))
        label = full.adjusted(full.width() - width, 0, -4, 0)
        painter.drawText(label, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), SERVER_LABEL)
        painter.restore()


class ConversationList(QListView):
    """F2 renames, Delete deletes, the menu key opens the context menu; arrow keys skip headings."""

    deletePressed = Signal()
    menuRequested = Signal(QPoint)

    def count(self) -> int:
        """Conversations loaded (headings not counted)."""
        model = self.model()
        return model.conversation_count() if isinstance(model, ConversationListModel) else 0

    def keyPressEvent(self, event: QKeyEvent) -> None:
        current = self.currentIndex()
        key, shift = event.key(), event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        if current.isValid() and key == Qt.Key.Key_F2:
            self.edit(current)
        elif current.isValid() and key == Qt.Key.Key_Delete:
            self.deletePressed.emit()
        elif current.isValid() and (key == Qt.Key.Key_Menu or (key == Qt.Key.Key_F10 and shift)):
            self.menuRequested.emit(self.visualRect(current).center())
        else:
            super().keyPressEvent(event)
            return
        event.accept()

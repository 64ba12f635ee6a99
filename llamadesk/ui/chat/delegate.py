"""Paints messages as bubbles with a footer line (‹ 2/3 ›, figures, actions) and hit-tests links and actions."""

from __future__ import annotations

import math
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
    QPalette,
    QTextBlockFormat,
    QTextCursor,
    QTextDocument,
    QTextLine,
    QTextOption,
)
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from llamadesk.ui.chat.highlight import HighlightMixin, code_point_index
from llamadesk.ui.chat.model import EXCLUDED_NOTE, ChatRow, RowRole, footer_text, reasoning_view, shown_text
from llamadesk.ui.chat.render import EMPTY, MessageRenderer, PlainRenderer, RenderInfo

Index = QModelIndex | QPersistentModelIndex

SIDE_MARGIN = 16  # between the viewport edge and a bubble
ROW_GAP = 6  # above and below each row
PAD_H = 12  # inside a bubble
PAD_V = 8
RADIUS = 10.0
MAX_FRACTION = 0.78  # a bubble never takes more than this share of the width
FOOTER_GAP = 3
ITEM_GAP = 10  # between footer items
DOC_CACHE_SIZE = 256
# Hebrew, Arabic, Syriac, Thaana, NKo, Samaritan, Mandaic and their presentation forms; other right-to-left scripts
RIGHT_TO_LEFT = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff\U0001e800-\U0001efff]")
STREAM_MIN_INTERVAL_S = 0.016  # a streaming reply is laid out again at most this often...
STREAM_COST_FACTOR = 3.0  # ...and at most once per this many times its last render took


ACTION_LABELS = {
    "copy": "Copy",
    "edit": "Edit",
    "receipt": "Receipt",
    "regenerate": "Regenerate",
    "continue": "Continue",
    "reasoning": "Reasoning",
    "tools": "Tool calls",
}


def render_plain(doc: QTextDocument, text: str, role: str) -> None:
    """The simplest render hook: plain text."""
    doc.setPlainText(text)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(
        round(a.red() * (1 - t) + b.red() * t),
        round(a.green() * (1 - t) + b.green() * t),
        round(a.blue() * (1 - t) + b.blue() * t),
    )


@dataclass(frozen=True)
class FooterItem:
    """A piece of the line under a bubble; `action` makes it clickable."""

    rect: QRectF
    text: str
    action: str | None = None
    enabled: bool = True


def row_actions(row: ChatRow, last: bool = True) -> list[str]:
    """The actions offered under a message, in order; only the last reply can be continued."""
    if row.status == "streaming":
        return []
    if row.role == "user":
        return ["copy", "edit"]
    actions = ["copy", "receipt", "regenerate"]
    if last and row.finish_reason == "length" and row.status == "complete":
        actions.append("continue")
    view = reasoning_view(row)
    if view is not None and view[1]:  # a line before the answer (not a harmony answer alone)
        actions.insert(0, "reasoning")  # show or hide what the model thought
    if row.tools:
        actions.insert(0, "tools")  # unfold or fold the calls' arguments and results (tool_blocks.py)
    return actions


def _x_of(cursor_to_x: object) -> float:
    """QTextLine.cursorToX gives (x, position) in PySide6."""
    return float(cursor_to_x[0] if isinstance(cursor_to_x, tuple) else cursor_to_x)  # type: ignore[arg-type]


def fit_right_to_left(doc: QTextDocument, text: str, text_width: int) -> None:
    """Narrows a document holding right-to-left text to its ideal width. Its paragraphs are aligned to the right of
    the text width, while the bubble is only as wide as the text: at the full width an Arabic or Hebrew reply shorter
    than a line would be drawn outside its bubble (and clipped away). `text`, the source, rules most documents out
    at C speed before their blocks are looked at."""
    if RIGHT_TO_LEFT.search(text) is None:
        return
    block = doc.begin()
    while block.isValid():
        if block.textDirection() == Qt.LayoutDirection.RightToLeft:
            ideal = math.ceil(doc.idealWidth()) + 1  # + 1: rounding must not wrap the longest line
            if ideal < text_width:
                doc.setTextWidth(ideal)
            return
        block = block.next()


def wrap_code(doc: QTextDocument) -> None:
    """Lets the lines of a reply's code blocks wrap inside the bubble. Qt lays a <pre> out as non-breaking lines, so
    a long code line made the document (and the drawing) wider than its bubble, and at a narrow width the block's
    "Copy code" was pushed out of sight. Wrapping, not horizontal scrolling: the bubble is painted by this delegate
    (no widget, so no scroll bar to drag or focus, and no scroll offset that a repaint, a find highlight or a hit
    test could agree on), while wrapped code stays fully readable, selectable by Copy, and copied unwrapped."""
    option = doc.defaultTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)  # a long identifier breaks too
    doc.setDefaultTextOption(option)
    block = doc.begin()
    wrapping = QTextBlockFormat()
    wrapping.setNonBreakableLines(False)
    while block.isValid():
        if block.blockFormat().nonBreakableLines():
            QTextCursor(block).mergeBlockFormat(wrapping)
        block = block.next()


def _line_span(line: QTextLine) -> tuple[float, float]:
    """Where a laid-out line's text is drawn, left to right (a right-to-left line ends at its right edge)."""
    start = _x_of(line.cursorToX(line.textStart()))
    end = _x_of(line.cursorToX(line.textStart() + line.textLength()))
    return min(start, end), max(start, end)


def _character_at(line: QTextLine, x: float) -> int:
    """The position in its block of the character drawn at `x` on `line`. xToCursor alone answers the position after
    the character in right-to-left text, so the answer is checked against the character spans around it."""
    near = line.xToCursor(x, QTextLine.CursorPosition.CursorOnCharacter)
    first, last = line.textStart(), line.textStart() + line.textLength() - 1
    for position in (near, near - 1, near + 1):
        if first <= position <= last:
            x0, x1 = _x_of(line.cursorToX(position)), _x_of(line.cursorToX(position + 1))
            if min(x0, x1) <= x < max(x0, x1):
                return position
    return min(max(near, first), last)


def _row(index: Index) -> ChatRow | None:
    row = index.data(RowRole)
    return row if isinstance(row, ChatRow) else None


class MessageDelegate(HighlightMixin, QStyledItemDelegate):
    """Lays a message out in a QTextDocument once per (message revision, width) and reuses it."""

    def __init__(self, view: QWidget, renderer: MessageRenderer | PlainRenderer | None = None) -> None:
        super().__init__(view)
        self._view = view
        self.renderer: MessageRenderer | PlainRenderer = renderer or MessageRenderer()
        self._docs: OrderedDict[tuple[int, int, int], tuple[QTextDocument, RenderInfo]] = OrderedDict()
        self._latest: dict[int, tuple[int, int]] = {}  # message id → (revision, width) of its newest document
        self._stream_times: dict[int, tuple[float, float]] = {}  # message id → (rendered at, cost) while streaming
        self.hover_id: int | None = None
        # The keyboard's current message is outlined only after a key moved it (like CSS :focus-visible): a click
        # on a message made it current and left an outline that looked like a hover stuck after the mouse left.
        self.focus_visible = False
        self.active_ids: set[int] = set()  # rows that show their actions without hover (the last reply)
        self.on_stale: Callable[[float], None] | None = None  # asks the view to look again in so many seconds
        self.layouts: Counter[int] = Counter()  # documents made per message id (tests and the benchmark read it)
        self.highlight_query = ""  # words shown highlighted (the find bar's, a search hit's)
        self._highlights = OrderedDict()

    def set_renderer(self, renderer: MessageRenderer | PlainRenderer) -> None:
        self.renderer = renderer
        self.clear_cache()

    def clear_cache(self) -> None:
        self._docs.clear()
        self._latest.clear()
        self._stream_times.clear()

    def forget(self, message_id: int) -> None:
        self._latest.pop(message_id, None)

    # --- geometry ---------------------------------------------------------------------------------------------
    def row_width(self, option: QStyleOptionViewItem | None = None) -> int:
        viewport = getattr(self._view, "viewport", None)
        width = viewport().width() if callable(viewport) else (option.rect.width() if option else 400)
        return max(width, 200)

    @staticmethod
    def text_width(row_width: int) -> int:
        bubble = min(row_width - 2 * SIDE_MARGIN, max(280, int(row_width * MAX_FRACTION)))
        return max(bubble - 2 * PAD_H, 60)

    def small_font(self, font: QFont | None = None) -> QFont:
        small = QFont(font or self._view.font())
        if small.pointSizeF() > 0:
            small.setPointSizeF(max(small.pointSizeF() * 0.85, 7.0))
        else:
            small.setPixelSize(max(int(small.pixelSize() * 0.85), 9))
        return small

    def footer_height(self) -> int:
        return FOOTER_GAP + QFontMetrics(self.small_font()).height()

    # --- documents ------------------------------------------------------------------------------------------
    def document(self, row: ChatRow, text_width: int) -> tuple[QTextDocument, RenderInfo, bool]:
        """The laid-out document of a row and whether it is current (a streaming reply may get its previous one
        for a few milliseconds: it is laid out again at most at the display rate, slower when it is costly)."""
        key = (row.message_id, row.revision, text_width)
        found = self._docs.get(key)
        if found is not None:
            self._docs.move_to_end(key)
            return found[0], found[1], True
        streaming = row.status == "streaming"
        if streaming:
            stale = self._stale_document(row, text_width)
            if stale is not None:
                return stale[0], stale[1], False
        started = time.perf_counter()
        doc = QTextDocument()
        doc.setDocumentMargin(0)
        doc.setDefaultFont(self._view.font())
        text, info = self._fill(doc, row)
        if info.code_blocks:
            wrap_code(doc)
        doc.setTextWidth(text_width)
        fit_right_to_left(doc, text, text_width)
        doc.size()  # lay it out now, inside the timing
        self._docs[key] = (doc, info)
        self.layouts[row.message_id] += 1
        self._latest[row.message_id] = (row.revision, text_width)
        if streaming:
            self._stream_times[row.message_id] = (time.perf_counter(), time.perf_counter() - started)
        else:
            self._stream_times.pop(row.message_id, None)
        if len(self._docs) > DOC_CACHE_SIZE:
            self._docs.popitem(last=False)
        return doc, info, True

    def _fill(self, doc: QTextDocument, row: ChatRow) -> tuple[str, RenderInfo]:
        """Renders a row's text into `doc` (not laid out); returns the source shown and what the render found."""
        streaming = row.status == "streaming"
        text = shown_text(row)
        if not text and streaming:
            text = "…"
        if isinstance(self.renderer, MessageRenderer):
            return text, self.renderer(doc, text, row.role, streaming, citations=len(row.sources))
        result = self.renderer(doc, text, row.role)
        return text, result if isinstance(result, RenderInfo) else EMPTY

    def plain_text(self, row: ChatRow) -> str:
        """The text a row shows, as its document holds it (what the find bar counts words in), without a layout:
        Ctrl+F over 1,000 matching messages took 1.9 s laying each out, 0.8 s without (mostly the markdown render,
        cached for the scroll that follows), 0.2 s when rendered before (/tmp bench, a loaded 2-core machine)."""
        latest = self._latest.get(row.message_id)
        if latest is not None and latest[0] == row.revision:
            found = self._docs.get((row.message_id, row.revision, latest[1]))
            if found is not None:
                return found[0].toPlainText()
        doc = QTextDocument()
        self._fill(doc, row)
        return doc.toPlainText()

    def _stale_document(self, row: ChatRow, text_width: int) -> tuple[QTextDocument, RenderInfo] | None:
        rendered_at, cost = self._stream_times.get(row.message_id, (0.0, 0.0))
        wait = max(STREAM_MIN_INTERVAL_S, STREAM_COST_FACTOR * cost) - (time.perf_counter() - rendered_at)
        latest = self._latest.get(row.message_id)
        if wait <= 0 or latest is None or latest[1] != text_width:
            return None
        found = self._docs.get((row.message_id, latest[0], text_width))
        if found is None:
            return None
        if self.on_stale is not None:
            self.on_stale(wait)
        return found

    def render_info(self, index: Index) -> RenderInfo:
        row = _row(index)
        if row is None:
            return EMPTY
        return self.document(row, self.text_width(self.row_width()))[1]

    def row_height(self, index: Index) -> tuple[int, bool]:
        """The exact height of a row at the view's width, and whether it is final (see `document`)."""
        row = _row(index)
        if row is None:
            return 0, True
        doc, _info, fresh = self.document(row, self.text_width(self.row_width()))
        return 2 * ROW_GAP + 2 * PAD_V + int(doc.size().height() + 0.999) + self.footer_height(), fresh

    def estimate_heights(self, rows: list[ChatRow], row_width: int, font: QFont) -> list[int]:
        """Cheap guesses for rows never laid out: lines of text at the font's average character width."""
        fm = QFontMetrics(font)
        line, char = fm.lineSpacing(), max(fm.averageCharWidth(), 1)
        per_line = max(self.text_width(row_width) // char, 8)
        fixed = 2 * ROW_GAP + 2 * PAD_V + self.footer_height()
        heights = []
        for row in rows:
            lines = sum(len(part) // per_line + 1 for part in row.content.split("\n")) if row.content else 1
            heights.append(fixed + lines * line)
        return heights

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(self.row_width(option), self.row_height(index)[0])

    # --- layout of one row ------------------------------------------------------------------------------------
    def bubble_rect(self, row: ChatRow, doc: QTextDocument, rect: QRect) -> QRectF:
        row_width = rect.width()
        text_width = self.text_width(row_width)
        content_w = min(int(doc.idealWidth() + 0.999), text_width)
        bubble_w = max(content_w, 24) + 2 * PAD_H
        bubble_h = int(doc.size().height() + 0.999) + 2 * PAD_V
        left = rect.left() + (row_width - SIDE_MARGIN - bubble_w if row.role == "user" else SIDE_MARGIN)
        return QRectF(left, rect.top() + ROW_GAP, bubble_w, bubble_h)

    def footer_items(self, row: ChatRow, bubble: QRectF, rect: QRect, show_actions: bool) -> list[FooterItem]:
        fm = QFontMetrics(self.small_font())
        pieces: list[tuple[str, str | None, bool]] = []
        if row.alternatives > 1:
            pieces += [("‹", "prev", row.alternative > 1), (f"{row.alternative}/{row.alternatives}", None, True)]
            pieces.append(("›", "next", row.alternative < row.alternatives))
        if row.excluded:
            pieces.append((EXCLUDED_NOTE, None, True))
        stats = footer_text(row)
        if stats:
            pieces.append((stats, None, True))
        if show_actions:
            last = row.message_id in self.active_ids
            pieces += [(ACTION_LABELS[a], a, True) for a in row_actions(row, last)]
        widths = [fm.horizontalAdvance(text) for text, _a, _e in pieces]
        total = sum(widths) + ITEM_GAP * max(len(pieces) - 1, 0)
        left_limit, right_limit = rect.left() + SIDE_MARGIN / 2, rect.left() + rect.width() - SIDE_MARGIN / 2
        room = right_limit - left_limit
        if total > room and stats:  # a narrow chat: the figures (also in the receipt) give way to the actions
            at = next(i for i, piece in enumerate(pieces) if piece[0] == stats)
            allowed = widths[at] - (total - room)
            if allowed < fm.horizontalAdvance("0 tok/s…"):
                del pieces[at], widths[at]
            else:
                pieces[at] = (fm.elidedText(stats, Qt.TextElideMode.ElideRight, int(allowed)), None, True)
                widths[at] = fm.horizontalAdvance(pieces[at][0])
            total = sum(widths) + ITEM_GAP * max(len(pieces) - 1, 0)
        y = bubble.bottom() + FOOTER_GAP
        x = bubble.right() - PAD_H / 2 - total if row.role == "user" else bubble.left() + PAD_H / 2
        x = max(min(x, right_limit - total), left_limit)
        items: list[FooterItem] = []
        for (text, action, enabled), width in zip(pieces, widths, strict=True):
            items.append(FooterItem(QRectF(x, y, width, fm.height()), text, action, enabled))
            x += width + ITEM_GAP
        return items

    def _outlined(self, option: QStyleOptionViewItem) -> bool:
        return self.focus_visible and bool(option.state & QStyle.StateFlag.State_HasFocus)

    def _shows_actions(self, row: ChatRow, option: QStyleOptionViewItem) -> bool:
        current = self._outlined(option)  # the keyboard's current message
        return row.message_id == self.hover_id or row.message_id in self.active_ids or current

    def hit(self, index: Index, rect: QRect, pos: QPointF, *, hovered: bool = True) -> tuple[str, str] | None:
        """What is under `pos` in the row at `rect`: ("action", name), ("link", href) or None."""
        row = _row(index)
        if row is None:
            return None
        doc, _info, _fresh = self.document(row, self.text_width(rect.width()))
        bubble = self.bubble_rect(row, doc, rect)
        for item in self.footer_items(row, bubble, rect, hovered or row.message_id in self.active_ids):
            if item.action and item.enabled and item.rect.adjusted(-3, -2, 3, 2).contains(pos):
                return ("action", item.action)
        if bubble.contains(pos) and row.role == "assistant":
            href = doc.documentLayout().anchorAt(pos - bubble.topLeft() - QPointF(PAD_H, PAD_V))
            if href:
                return ("link", href)
        return None

    def action_rect(self, index: Index, rect: QRect, action: str) -> QRectF | None:
        """Where a footer action (prev, next, copy, edit, receipt, regenerate, continue) sits, when shown."""
        row = _row(index)
        if row is None:
            return None
        doc, _info, _fresh = self.document(row, self.text_width(rect.width()))
        for item in self.footer_items(row, self.bubble_rect(row, doc, rect), rect, True):
            if item.action == action:
                return item.rect
        return None

    def anchor_rect(self, index: Index, rect: QRect, href: str) -> QRectF | None:
        """Where a link (or a code block's Copy link) sits in the row at `rect`, in view coordinates."""
        row = _row(index)
        if row is None:
            return None
        doc, _info, _fresh = self.document(row, self.text_width(rect.width()))
        origin = self.bubble_rect(row, doc, rect).topLeft() + QPointF(PAD_H, PAD_V)
        layout = doc.documentLayout()
        block = doc.begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                if fragment.isValid() and fragment.charFormat().anchorHref() == href:
                    lines = block.layout()
                    line = lines.lineForTextPosition(fragment.position() - block.position())
                    top_left = layout.blockBoundingRect(block).topLeft()
                    start = fragment.position() - block.position()
                    x = _x_of(line.cursorToX(start))
                    end = _x_of(line.cursorToX(start + fragment.length()))
                    return QRectF(origin + top_left + QPointF(x, line.y()), QSize(int(end - x), int(line.height())))
                it += 1
            block = block.next()
        return None

    # --- painting ---------------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        row = _row(index)
        if row is None:
            return
        rect = QRect(option.rect.left(), option.rect.top(), self.row_width(option), option.rect.height())
        doc, _info, _fresh = self.document(row, self.text_width(rect.width()))
        palette: QPalette = option.palette
        base = palette.color(QPalette.ColorRole.Base)
        text_color = palette.color(QPalette.ColorRole.Text)
        bubble = self.bubble_rect(row, doc, rect)
        if row.role == "user":
            fill = _mix(base, palette.color(QPalette.ColorRole.Highlight), 0.16)
        else:
            fill = _mix(base, text_color, 0.06)
        if row.status == "error":
            fill = _mix(fill, QColor(220, 60, 60), 0.12)

        painter.save()
        painter.setClipRect(option.rect)
        if row.excluded:
            painter.setOpacity(0.45)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(bubble, RADIUS, RADIUS)
        if self._outlined(option):
            painter.setPen(palette.color(QPalette.ColorRole.Highlight))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(bubble.adjusted(0.5, 0.5, -0.5, -0.5), RADIUS, RADIUS)
        painter.save()
        painter.setClipRect(bubble.intersected(QRectF(option.rect)))  # no text is ever drawn outside its bubble
        painter.translate(bubble.topLeft() + QPointF(PAD_H, PAD_V))
        ctx = QAbstractTextDocumentLayout.PaintContext()
        placeholder = not row.content and row.status == "streaming"
        ctx.palette.setColor(
            QPalette.ColorRole.Text, palette.color(QPalette.ColorRole.PlaceholderText) if placeholder else text_color
        )
        ctx.clip = QRectF(0, 0, bubble.width(), bubble.height())
        ctx.selections = self.highlight_selections(row, doc)
        doc.documentLayout().draw(painter, ctx)
        painter.restore()
        painter.restore()
        self._paint_footer(painter, row, bubble, rect, palette, self._shows_actions(row, option))

    def _paint_footer(
        self, painter: QPainter, row: ChatRow, bubble: QRectF, rect: QRect, palette: QPalette, actions: bool
    ) -> None:
        items = self.footer_items(row, bubble, rect, actions)
        if not items:
            return
        painter.save()
        painter.setFont(self.small_font())
        muted = palette.color(QPalette.ColorRole.PlaceholderText)
        link = palette.color(QPalette.ColorRole.Link)
        for item in items:
            colour: Any = muted
            if row.status == "error" and item.action is None:
                colour = QColor(200, 50, 50)
            elif item.action:
                colour = link if item.enabled else _mix(muted, palette.color(QPalette.ColorRole.Base), 0.5)
            elif item.text == EXCLUDED_NOTE:
                colour = palette.color(QPalette.ColorRole.Text)
            painter.setPen(colour)
            painter.drawText(item.rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), item.text)
        painter.restore()

    # --- the character under the mouse (token probabilities on hover) ------------------------------------------
    def text_position(self, index: Index, rect: QRect, pos: QPointF) -> tuple[ChatRow, str, int] | None:
        """The reply under `pos`, its rendered text and the index in that text of the character under `pos`."""
        row = _row(index)
        if row is None or row.role != "assistant":
            return None
        doc, _info, _fresh = self.document(row, self.text_width(rect.width()))
        bubble = self.bubble_rect(row, doc, rect)
        if not bubble.contains(pos):
            return None
        local = pos - bubble.topLeft() - QPointF(PAD_H, PAD_V)
        near = doc.documentLayout().hitTest(local, Qt.HitTestAccuracy.FuzzyHit)
        block = doc.findBlock(max(near, 0))
        if not block.isValid():
            return None
        layout = block.layout()
        inner = local - doc.documentLayout().blockBoundingRect(block).topLeft()
        for i in range(layout.lineCount()):
            line = layout.lineAt(i)
            on_line = line.y() <= inner.y() < line.y() + line.height()
            if on_line and _line_span(line)[0] <= inner.x() < _line_span(line)[1]:
                at = _character_at(line, inner.x()) + block.position()
                text = doc.toPlainText()
                return row, text, code_point_index(text, at)
        return None

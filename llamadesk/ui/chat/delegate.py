"""Paints messages as bubbles (yours on the right, the model's on the left) with cached size hints."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QAbstractTextDocumentLayout, QColor, QFont, QFontMetrics, QPainter, QPalette, QTextDocument
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from llamadesk.ui.chat.model import FooterRole, KeyRole, RoleRole, ShownTextRole, StatusRole

Index = QModelIndex | QPersistentModelIndex
Renderer = Callable[[QTextDocument, str, str], None]  # (document, text, role): fills the document

SIDE_MARGIN = 16  # between the viewport edge and a bubble
ROW_GAP = 6  # above and below each row
PAD_H = 12  # inside a bubble
PAD_V = 8
RADIUS = 10.0
MAX_FRACTION = 0.78  # a bubble never takes more than this share of the width
FOOTER_GAP = 3
DOC_CACHE_SIZE = 256
SIZE_CACHE_SIZE = 4096


def render_plain(doc: QTextDocument, text: str, role: str) -> None:
    """The default render hook: plain text. Markdown rendering replaces this later."""
    doc.setPlainText(text)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(
        round(a.red() * (1 - t) + b.red() * t),
        round(a.green() * (1 - t) + b.green() * t),
        round(a.blue() * (1 - t) + b.blue() * t),
    )


class MessageDelegate(QStyledItemDelegate):
    """Lays a message out in a QTextDocument once per (message revision, width) and reuses it."""

    def __init__(self, view: QWidget, renderer: Renderer = render_plain) -> None:
        super().__init__(view)
        self._view = view
        self.renderer = renderer
        self._docs: OrderedDict[tuple[Any, int], QTextDocument] = OrderedDict()
        self._sizes: OrderedDict[tuple[Any, int], QSize] = OrderedDict()

    def set_renderer(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.clear_cache()

    def clear_cache(self) -> None:
        self._docs.clear()
        self._sizes.clear()

    # --- geometry ---------------------------------------------------------------------------------------------
    def _row_width(self, option: QStyleOptionViewItem) -> int:
        viewport = getattr(self._view, "viewport", None)
        width = viewport().width() if callable(viewport) else option.rect.width()
        return max(width, 200)

    @staticmethod
    def _text_width(row_width: int) -> int:
        bubble = min(row_width - 2 * SIDE_MARGIN, max(280, int(row_width * MAX_FRACTION)))
        return max(bubble - 2 * PAD_H, 60)

    def _small_font(self, font: QFont) -> QFont:
        small = QFont(font)
        if font.pointSizeF() > 0:
            small.setPointSizeF(max(font.pointSizeF() * 0.85, 7.0))
        else:
            small.setPixelSize(max(int(font.pixelSize() * 0.85), 9))
        return small

    def _document(self, index: Index, option: QStyleOptionViewItem, text_width: int) -> QTextDocument:
        key = (index.data(KeyRole), text_width)
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            return doc
        doc = QTextDocument()
        doc.setDocumentMargin(0)
        doc.setDefaultFont(option.font)
        text = str(index.data(ShownTextRole) or "")
        role = str(index.data(RoleRole) or "")
        if not text and index.data(StatusRole) == "streaming":
            text = "…"
        self.renderer(doc, text, role)
        doc.setTextWidth(text_width)
        self._docs[key] = doc
        if len(self._docs) > DOC_CACHE_SIZE:
            self._docs.popitem(last=False)
        return doc

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        row_width = self._row_width(option)
        key = (index.data(KeyRole), row_width)
        cached = self._sizes.get(key)
        if cached is not None:
            return cached
        doc = self._document(index, option, self._text_width(row_width))
        height = 2 * ROW_GAP + 2 * PAD_V + int(doc.size().height() + 0.999)
        if index.data(FooterRole):
            height += FOOTER_GAP + QFontMetrics(self._small_font(option.font)).height()
        size = QSize(row_width, height)
        self._sizes[key] = size
        if len(self._sizes) > SIZE_CACHE_SIZE:
            self._sizes.popitem(last=False)
        return size

    # --- painting ---------------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        row_width = self._row_width(option)
        text_width = self._text_width(row_width)
        doc = self._document(index, option, text_width)
        role = str(index.data(RoleRole) or "")
        status = str(index.data(StatusRole) or "")
        footer = str(index.data(FooterRole) or "")
        palette: QPalette = option.palette
        base = palette.color(QPalette.ColorRole.Base)
        text_color = palette.color(QPalette.ColorRole.Text)

        content_w = min(int(doc.idealWidth() + 0.999), text_width)
        content_h = int(doc.size().height() + 0.999)
        bubble_w = max(content_w, 24) + 2 * PAD_H
        bubble_h = content_h + 2 * PAD_V
        top = option.rect.top() + ROW_GAP
        if role == "user":
            left = option.rect.left() + row_width - SIDE_MARGIN - bubble_w
            fill = _mix(base, palette.color(QPalette.ColorRole.Highlight), 0.16)
        else:
            left = option.rect.left() + SIDE_MARGIN
            fill = _mix(base, text_color, 0.06)
        if status == "error":
            fill = _mix(fill, QColor(220, 60, 60), 0.12)
        bubble = QRectF(left, top, bubble_w, bubble_h)

        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(bubble, RADIUS, RADIUS)
        if option.state & QStyle.StateFlag.State_HasFocus and option.state & QStyle.StateFlag.State_Selected:
            painter.setPen(palette.color(QPalette.ColorRole.Highlight))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(bubble.adjusted(0.5, 0.5, -0.5, -0.5), RADIUS, RADIUS)

        painter.translate(QPointF(left + PAD_H, top + PAD_V))
        ctx = QAbstractTextDocumentLayout.PaintContext()
        ctx.palette.setColor(QPalette.ColorRole.Text, text_color)
        if not index.data(ShownTextRole):
            ctx.palette.setColor(QPalette.ColorRole.Text, palette.color(QPalette.ColorRole.PlaceholderText))
        ctx.clip = QRectF(0, 0, text_width, content_h)
        doc.documentLayout().draw(painter, ctx)
        painter.restore()

        if footer:
            painter.save()
            small = self._small_font(option.font)
            painter.setFont(small)
            colour = palette.color(QPalette.ColorRole.PlaceholderText)
            if status == "error":
                colour = QColor(200, 50, 50)
            painter.setPen(colour)
            fm = QFontMetrics(small)
            y = int(bubble.bottom()) + FOOTER_GAP
            width = row_width - 2 * SIDE_MARGIN
            align = Qt.AlignmentFlag.AlignLeft if role != "user" else Qt.AlignmentFlag.AlignRight
            text = fm.elidedText(footer, Qt.TextElideMode.ElideRight, width - PAD_H)
            rect = QRectF(option.rect.left() + SIDE_MARGIN + PAD_H / 2, y, width - PAD_H, fm.height())
            painter.drawText(rect, int(align | Qt.AlignmentFlag.AlignVCenter), text)
            painter.restore()

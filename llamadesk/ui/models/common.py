"""Small pieces the model manager's pages share: sizes and times in words, fit verdict colours, an error line."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QLabel,
    QSpinBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from llamadesk.core.fit import FitEstimate, Verdict
from llamadesk.ui.model_choice import human_size

__all__ = [
    "ContextSpinBox",
    "MachineState",
    "MessageLine",
    "context_text",
    "duration_text",
    "fit_text",
    "human_size",
    "make_table",
    "right_aligned",
    "verdict_color",
]

SUBTITLE_ROLE = Qt.ItemDataRole.UserRole + 10  # the muted second line of a TwoLineDelegate item
DEFAULT_CONTEXT = 4096
MIN_CONTEXT = 256
MAX_CONTEXT = 1 << 20

_COLORS = {  # readable on light and dark palettes
    Verdict.FITS: QColor(34, 139, 34),
    Verdict.PARTIAL: QColor(200, 120, 0),
    Verdict.TOO_LARGE: QColor(200, 40, 40),
}
_SYMBOLS = {Verdict.FITS: "✓", Verdict.PARTIAL: "◐", Verdict.TOO_LARGE: "✗"}


def verdict_color(verdict: Verdict) -> QColor:
    return _COLORS[verdict]


def fit_text(est: FitEstimate) -> str:
    """ "✓ fits", "◐ fits with 20 of 32 layers on GPU", "✗ too large"."""
    return f"{_SYMBOLS[est.verdict]} {est.message}"


def context_text(n: int) -> str:
    """2048 → "2k", 131072 → "128k", 97536 → "95k", 300 → "300", 0 → "none"."""
    if n <= 0:
        return "none"
    return f"{round(n / 1024)}k" if n >= 1024 else str(n)


def duration_text(seconds: float | None) -> str:
    """An ETA in words: "12 s", "4 min 05 s", "2 h 10 min"."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class MessageLine(QLabel):
    """One sentence under a page: an error in red, or a note in the normal colour; empty hides it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def show_error(self, text: str) -> None:
        self._show(text, QColor(200, 40, 40))

    def show_note(self, text: str) -> None:
        self._show(text, None)

    def clear_message(self) -> None:
        self.clear()
        self.hide()

    @property
    def is_error(self) -> bool:
        return not self.isHidden() and self.property("error") is True

    def _show(self, text: str, color: QColor | None) -> None:
        palette = self.palette()
        default = QApplication.palette().color(QPalette.ColorRole.WindowText) if color is None else color
        palette.setColor(QPalette.ColorRole.WindowText, default)
        self.setPalette(palette)
        self.setProperty("error", color is not None)
        self.setText(text)
        self.setVisible(bool(text))


class MachineState(QObject):
    """Free RAM and VRAM and the context length the fit verdicts use; every page listens to `changed`."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None, *, n_ctx: int = DEFAULT_CONTEXT) -> None:
        super().__init__(parent)
        self.ram_free = 0
        self.ram_total = 0
        self.vram_free = 0
        self.gpu_names: list[str] = []
        self.n_ctx = n_ctx
        self.known = False  # False until the first snapshot arrives

    def set_memory(
        self,
        ram_free: int,
        vram_free: int,
        *,
        ram_total: int = 0,
        gpu_names: list[str] | None = None,
        known: bool = True,
    ) -> None:
        self.ram_free, self.vram_free, self.ram_total = ram_free, vram_free, ram_total
        self.gpu_names = list(gpu_names or [])
        self.known = known
        self.changed.emit()

    def set_n_ctx(self, n_ctx: int) -> None:
        if n_ctx != self.n_ctx:
            self.n_ctx = n_ctx
            self.changed.emit()

    def summary(self) -> str:
        if not self.ram_free and not self.known:
            return "Reading free memory…"
        ram = f"RAM {human_size(self.ram_free)} free"
        if self.ram_total:
            ram += f" of {human_size(self.ram_total)}"
        if self.vram_free:
            names = ", ".join(self.gpu_names) or "GPU"
            return f"{ram} · {names}: {human_size(self.vram_free)} VRAM free"
        return f"{ram} · no GPU offload (CPU only)" if self.known else ram


class ContextSpinBox(QSpinBox):
    """A context length: the arrows double and halve it (2k → 4k → 8k …), typing any value works too."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(MIN_CONTEXT, MAX_CONTEXT)
        self.setValue(DEFAULT_CONTEXT)
        self.setSuffix(" tokens")
        self.setGroupSeparatorShown(True)
        self.setKeyboardTracking(False)
        self.setToolTip("The context length the fit verdicts assume; the arrows double or halve it")

    def stepBy(self, steps: int) -> None:
        value = self.value()
        for _ in range(abs(steps)):
            value = value * 2 if steps > 0 else value // 2
        self.setValue(max(self.minimum(), min(self.maximum(), value)))


class TwoLineDelegate(QStyledItemDelegate):
    """A list item as a bold title over a muted subtitle (SUBTITLE_ROLE), both elided to the width."""

    PAD = 6

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        height = option.fontMetrics.height()
        return QSize(200, 2 * height + 2 * self.PAD + 2)

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        title, subtitle = opt.text, str(index.data(SUBTITLE_ROLE) or "")
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        group = (
            QPalette.ColorGroup.Active if opt.state & QStyle.StateFlag.State_Active else QPalette.ColorGroup.Inactive
        )
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        color = opt.palette.color(group, text_role)
        muted = QColor(color)
        if not selected:
            muted.setAlphaF(0.62)
        rect = opt.rect.adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        line = opt.fontMetrics.height()
        painter.save()
        bold = QFont(opt.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(color)
        top = QRect(rect.left(), rect.top(), rect.width(), line)
        painter.drawText(
            top,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            painter.fontMetrics().elidedText(title, Qt.TextElideMode.ElideRight, rect.width()),
        )
        painter.setFont(opt.font)
        painter.setPen(muted)
        bottom = QRect(rect.left(), rect.top() + line + 2, rect.width(), line)
        painter.drawText(
            bottom,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            painter.fontMetrics().elidedText(subtitle, Qt.TextElideMode.ElideRight, rect.width()),
        )
        painter.restore()


def make_table(columns: tuple[str, ...], name: str, stretch: int) -> QTableWidget:
    """A read-only table whose rows are chosen whole, one at a time; column `stretch` takes the spare width."""
    table = QTableWidget(0, len(columns))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table


def right_aligned(text: str) -> QTableWidgetItem:
    """A table cell for a number."""
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def set_row(table: QTableWidget, row: int, *cells: QTableWidgetItem | str) -> None:
    """Fills one row; plain strings become plain cells."""
    for col, cell in enumerate(cells):
        table.setItem(row, col, cell if isinstance(cell, QTableWidgetItem) else QTableWidgetItem(cell))


def count_text(n: int) -> str:
    """Downloads and likes as the Hub shows them: 950, 12,400 → "12.4k", 3,100,000 → "3.1M"."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else f"{n:,}"

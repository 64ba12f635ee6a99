"""The quality chart of the Compare tab: top-token agreement against memory and against generation speed, one point
per file, drawn with QPainter.

Drawn by hand because QtCharts is not in PySide6-Essentials, the app's Qt (checked: Essentials 6.11.3 ships only a
QtCharts.pyi stub; `from PySide6 import QtCharts` fails): it lives in the PySide6-Addons wheel, which would add far
more to the bundle than two small scatter plots are worth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from llamadesk.core.quality import Comparison, memory_of


@dataclass(frozen=True)
class ChartPoint:
    label: str  # the quantization type
    memory_mb: float
    gen_tps: float
    top1: float  # 0..1
    is_reference: bool


def points_of(comparison: Comparison) -> list[ChartPoint]:
    return [
        ChartPoint(f.type, memory_of(f) / 1e6, f.gen_tps, f.top1 if f.top1 is not None else 1.0, f.is_reference)
        for f in comparison.files
    ]


def _nice_max(value: float) -> float:
    """A round axis end a little above `value` (1, 2 or 5 × 10^n)."""
    if value <= 0:
        return 1.0
    import math

    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


class QualityChart(QWidget):
    """Two scatter plots side by side; `set_comparison(None)` shows a hint instead."""

    PANELS = (("Memory (MB)", "memory_mb"), ("Generation (tokens/s)", "gen_tps"))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("qualityChart")
        self.setAccessibleName("Quality against memory and speed")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(180)
        self.points: list[ChartPoint] = []

    def sizeHint(self) -> QSize:
        return QSize(640, 240)

    def set_comparison(self, comparison: Comparison | None) -> None:
        self.points = points_of(comparison) if comparison is not None else []
        self.setToolTip(
            "\n".join(
                f"{p.label}: {p.top1:.0%} of the reference's top tokens, {p.memory_mb:,.0f} MB, "
                f"{p.gen_tps:.1f} tokens/s"
                for p in self.points
            )
        )
        self.update()

    def y_range(self) -> tuple[float, float]:
        """Top-1 agreement from a round step below the lowest point up to 100%."""
        low = min((p.top1 for p in self.points), default=0.0)
        return (max(0.0, (int(low * 10) / 10) - 0.1) if low < 1 else 0.9), 1.0

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.WindowText)
        if not self.points:
            painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(
                self.rect(),
                Qt.AlignmentFlag.AlignCenter,
                "Compare two or more files to see quality against memory and speed.",
            )
            return
        width = self.width() / len(self.PANELS)
        for i, (title, attr) in enumerate(self.PANELS):
            self._panel(painter, QRectF(i * width, 0, width, self.height()), title, attr, text)

    def _panel(self, painter: QPainter, area: QRectF, title: str, attr: str, text: QColor) -> None:
        fm = QFontMetricsF(self.font())
        line = fm.height()
        plot = area.adjusted(fm.horizontalAdvance("100%") + 14, line + 8, -16, -2 * line - 8)
        if plot.width() < 20 or plot.height() < 20:
            return
        y_low, y_high = self.y_range()
        x_high = _nice_max(max(getattr(p, attr) for p in self.points) * 1.1)

        def at(x: float, y: float) -> QPointF:
            fx = x / x_high
            fy = (y - y_low) / (y_high - y_low) if y_high > y_low else 1.0
            return QPointF(plot.left() + fx * plot.width(), plot.bottom() - fy * plot.height())

        grid = QColor(text)
        grid.setAlpha(50)
        painter.setPen(QPen(grid, 1))
        for k in range(5):  # y grid and labels
            y = y_low + (y_high - y_low) * k / 4
            p = at(0, y)
            painter.drawLine(QPointF(plot.left(), p.y()), QPointF(plot.right(), p.y()))
        painter.setPen(text)
        for k in range(5):
            y = y_low + (y_high - y_low) * k / 4
            p = at(0, y)
            painter.drawText(
                QRectF(area.left(), p.y() - line / 2, plot.left() - area.left() - 6, line),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"{y:.0%}",
            )
        for k in range(5):  # x labels
            x = x_high * k / 4
            p = at(x, y_low)
            painter.drawText(
                QRectF(p.x() - 40, plot.bottom() + 2, 80, line),
                Qt.AlignmentFlag.AlignHCenter,
                f"{x:,.0f}" if x_high >= 10 else f"{x:.1f}",
            )
        painter.drawRect(plot)
        painter.drawText(
            QRectF(area.left(), area.top(), area.width(), line),
            Qt.AlignmentFlag.AlignHCenter,
            f"Top-token agreement against {title.split(' (')[0].lower()}",
        )
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + line + 4, plot.width(), line), Qt.AlignmentFlag.AlignHCenter, title
        )
        accent = self.palette().color(QPalette.ColorRole.Highlight)
        for point in self.points:
            p = at(getattr(point, attr), point.top1)
            painter.setPen(QPen(accent.darker(130), 1))
            painter.setBrush(accent if not point.is_reference else text)
            painter.drawEllipse(p, 4.5, 4.5)
            painter.setPen(text)
            painter.drawText(p + QPointF(7, -5), point.label + (" (reference)" if point.is_reference else ""))


def chart_summary(points: Sequence[ChartPoint]) -> str:
    """The chart in words, for a screen reader and the tooltip."""
    return "; ".join(f"{p.label} {p.top1:.0%} at {p.memory_mb:,.0f} MB and {p.gen_tps:.1f} tokens/s" for p in points)

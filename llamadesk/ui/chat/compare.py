"""A/B compare: one prompt, the loaded model with two settings, side by side with tokens/s and TTFT."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.engine_api import GenerationStats, Message
from llamadesk.core.presets import apply_preset
from llamadesk.core.sampling import SamplingParams
from llamadesk.ui.chat.render import MessageRenderer
from llamadesk.ui.workers import EngineHost

CURRENT = "Current settings"


@dataclass
class Side:
    """One column: its settings choice, its text as it streams, its figures."""

    name: str
    combo: QComboBox
    text: QTextEdit
    figures: QLabel
    request: int | None = None
    content: list[str] = field(default_factory=list)
    stats: GenerationStats | None = None


class CompareDialog(QDialog):
    """Runs A, then B, on the engine thread (one model: they take turns); shows both as markdown."""

    finishedBoth = Signal()

    def __init__(
        self, host: EngineHost, prompt: list[Message], params: SamplingParams, presets: dict[str, SamplingParams],
        renderer: MessageRenderer, parent: QWidget | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.setObjectName("compareDialog")
        self.setWindowTitle("Compare settings")
        self.setAccessibleName("Compare two settings side by side")
        self.resize(980, 640)
        self.host, self.prompt, self.params, self.presets, self.renderer = host, prompt, params, presets, renderer
        last = next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
        self.prompt_view = QPlainTextEdit(last, self)
        self.prompt_view.setObjectName("comparePrompt")
        self.prompt_view.setAccessibleName("Prompt compared")
        self.prompt_view.setReadOnly(True)
        self.prompt_view.setMaximumHeight(70)
        grid = QGridLayout()
        self.sides = [self._side("A", grid, 0, CURRENT), self._side("B", grid, 1, "Creative")]
        self.run_button = QPushButton("Run A, then B", self)
        self.run_button.setObjectName("compareRun")
        self.run_button.setAccessibleName("Run the comparison")
        self.run_button.setDefault(True)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setAccessibleName("Stop the comparison")
        self.stop_button.setEnabled(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.addButton(self.run_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.stop_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("The conversation so far, with the last message:", self))
        layout.addWidget(self.prompt_view)
        layout.addLayout(grid, 1)
        layout.addWidget(buttons)
        worker = host.worker
        worker.tokens.connect(self._on_tokens)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._queue: list[Side] = []

    def _side(self, name: str, grid: QGridLayout, column: int, choice: str) -> Side:
        box = QGroupBox(name, self)
        combo = QComboBox(box)
        combo.setObjectName(f"compareSettings{name}")
        combo.setAccessibleName(f"Settings of {name}")
        combo.addItems([CURRENT, *self.presets])
        combo.setCurrentText(choice)
        text = QTextEdit(box)
        text.setObjectName(f"compareText{name}")
        text.setAccessibleName(f"Reply {name}")
        text.setReadOnly(True)
        flags = Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        text.setTextInteractionFlags(flags)
        figures = QLabel("—", box)
        figures.setObjectName(f"compareFigures{name}")
        figures.setAccessibleName(f"Figures of {name}")
        inner = QVBoxLayout(box)
        inner.addWidget(combo)
        inner.addWidget(text, 1)
        inner.addWidget(figures)
        grid.addWidget(box, 0, column)
        return Side(name, combo, text, figures)

    def params_of(self, side: Side) -> SamplingParams:
        preset = self.presets.get(side.combo.currentText())
        return apply_preset(self.params, preset) if preset is not None else self.params

    @property
    def running(self) -> bool:
        return any(s.request is not None for s in self.sides) or bool(self._queue)

    def run(self) -> None:
        if self.running or not self.prompt:
            return
        for side in self.sides:
            side.content.clear()
            side.stats = None
            side.text.clear()
            side.figures.setText("waiting…")
        self._queue = list(self.sides)
        self.run_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self._next()

    def _next(self) -> None:
        if not self._queue:
            self.run_button.setEnabled(True)
            self.stop_button.setEnabled(False)
            self.finishedBoth.emit()
            return
        side = self._queue.pop(0)
        side.figures.setText("generating…")
        side.request, _cancel = self.host.generate(self.prompt, self.params_of(side))

    def stop(self) -> None:
        self._queue.clear()
        for side in self.sides:
            if side.request is not None:
                self.host.stop(side.request)

    def _side_of(self, request_id: int) -> Side | None:
        return next((s for s in self.sides if s.request == request_id), None)

    def _on_tokens(self, request_id: int, text: str) -> None:
        side = self._side_of(request_id)
        if side is not None:
            side.content.append(text)
            side.text.setPlainText("".join(side.content))

    def _on_finished(self, request_id: int, stats: GenerationStats, _receipt: dict[str, Any]) -> None:
        side = self._side_of(request_id)
        if side is None:
            return
        side.request, side.stats = None, stats
        self._show(side)
        side.figures.setText(
            f"{stats.generated_tokens} tokens · {stats.tokens_per_s:.1f} tok/s · TTFT {stats.ttft_s * 1000:.0f} ms"
            f" · seed {stats.seed} · {stats.finish_reason.value}"
        )
        self._next()

    def _on_failed(self, request_id: int, message: str) -> None:
        side = self._side_of(request_id)
        if side is not None:
            side.request = None
            side.figures.setText(f"⚠ {message}")
            self._next()

    def _show(self, side: Side) -> None:
        rendered = self.renderer.rendered("".join(side.content))
        side.text.setHtml(rendered.html)

    def done(self, result: int) -> None:
        self.stop()
        worker = self.host.worker
        for signal, slot in ((worker.tokens, self._on_tokens), (worker.finished, self._on_finished),
                             (worker.failed, self._on_failed)):  # fmt: skip
            signal.disconnect(slot)
        super().done(result)

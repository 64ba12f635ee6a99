"""A/B compare: one prompt, two settings or two models, side by side with tokens/s and the time to the first token.

A runs on the loaded model. B runs on it too, or on another local model loaded into a second engine (its own
EngineHost and thread) for as long as the dialog is open: it is shut down when the dialog closes. The two run one
after the other, so they never compete for the CPU; a note says when both models may not fit in memory together.
On a notebook conversation both continue the notebook's last text as raw text (mode "completion"), as Generate does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QShowEvent
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

from llamadesk.core import fit, hardware
from llamadesk.core.conversation.lifecycle import finish_words
from llamadesk.core.engines.api import GenerationStats, LoadOptions, Message, ModelInfo
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.gguf_header import read_header
from llamadesk.core.library import LocalModel
from llamadesk.core.presets import apply_preset
from llamadesk.core.sampling import SamplingParams
from llamadesk.ui.chat.render import MessageRenderer
from llamadesk.ui.workers import EngineHost

CURRENT = "Current settings"
LOADED = "The loaded model"
GiB = 1 << 30


@dataclass
class Side:
    """One column: its settings and model choice, its text as it streams, its figures, the engine it runs on."""

    name: str
    combo: QComboBox
    model_combo: QComboBox
    text: QTextEdit
    figures: QLabel
    request: int | None = None
    content: list[str] = field(default_factory=list)
    stats: GenerationStats | None = None
    receipt: dict[str, Any] = field(default_factory=dict)
    host: EngineHost | None = None  # where the request in flight runs


def memory_note(path: Path, n_ctx: int, ram_free: int | None = None) -> str:
    """One sentence on whether a second model fits beside the loaded one (whose memory is already in use)."""
    try:
        header = read_header(path)
    except LlamaDeskError as exc:
        return str(exc)
    free = hardware.snapshot(with_devices=False).ram_available if ram_free is None else ram_free
    est = fit.estimate(header, n_ctx, ram_free=free)
    need = _size(est.total_bytes)
    if est.verdict is fit.Verdict.TOO_LARGE:
        return (
            f"{path.name} needs about {need} beside the loaded model and {_size(free)} are free: "
            "it may not fit. It runs after A, and is unloaded when this dialog closes."
        )
    return f"{path.name} (about {need}) is loaded in a second engine for B and unloaded when this dialog closes."


def _size(n: int) -> str:
    return f"{n / GiB:.1f} GB" if n >= GiB else f"{n / (1 << 20):.0f} MB"


def _shows_notebook(window: QWidget | None) -> bool:
    """Whether the window shows a notebook conversation (its NotebookController's `active`)."""
    return getattr(getattr(window, "notebook", None), "active", False) is True


class CompareDialog(QDialog):
    """Runs A, then B; shows both as markdown with their figures. Nothing is added to the history."""

    finishedBoth = Signal()

    def __init__(
        self, host: EngineHost, prompt: list[Message], params: SamplingParams, presets: dict[str, SamplingParams],
        renderer: MessageRenderer, parent: QWidget | None = None, *, models: Sequence[LocalModel] = (),
        current: Path | None = None, load_options: Callable[[LocalModel], LoadOptions] | None = None,
        notebook: bool | None = None,
    ) -> None:  # fmt: skip
        """`notebook`: continue the last text as raw text instead of answering the chat; None: as the window
        (the parent) shows the conversation."""
        super().__init__(parent)
        self.setObjectName("compareDialog")
        self.setWindowTitle("Compare settings or models")
        self.setAccessibleName("Compare two settings or two models side by side")
        self.resize(980, 640)
        self.host, self.prompt, self.params, self.presets, self.renderer = host, prompt, params, presets, renderer
        self.load_options = load_options
        self.others = [m for m in models if current is None or m.path != current] if load_options else []
        self.other_host: EngineHost | None = None  # the second engine, made when B first needs another model
        self.other_loaded: Path | None = None
        self._loading: Side | None = None
        last = next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
        self.mode = "completion" if (_shows_notebook(parent) if notebook is None else notebook) else "chat"
        if self.mode == "completion":  # the document alone: a system prompt or earlier turns would be text too
            self.prompt = [{"role": "user", "content": last}] if last else []
        self.prompt_view = QPlainTextEdit(last, self)
        self.prompt_view.setObjectName("comparePrompt")
        self.prompt_view.setAccessibleName("Prompt compared")
        self.prompt_view.setReadOnly(True)
        self.prompt_view.setMaximumHeight(70)
        grid = QGridLayout()
        self.sides = [self._side("A", grid, 0, CURRENT), self._side("B", grid, 1, "Creative")]
        self.sides[0].model_combo.setEnabled(False)
        if current is not None:
            self.sides[0].model_combo.setItemText(0, f"{LOADED}: {current.name}")
        self.memory = QLabel("", self)
        self.memory.setObjectName("compareMemory")
        self.memory.setWordWrap(True)
        self.memory.hide()
        self.sides[1].model_combo.currentIndexChanged.connect(self._on_model_chosen)
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
        chat = "The conversation so far, with the last message:"
        intro = "The notebook's text, which both continue:" if self.mode == "completion" else chat
        layout.addWidget(QLabel(intro, self))
        layout.addWidget(self.prompt_view)
        layout.addLayout(grid, 1)
        layout.addWidget(self.memory)
        layout.addWidget(buttons)
        self._connect(host)
        self._queue: list[Side] = []
        self._closed = False
        self.fit_to_window()

    def fit_to_window(self) -> None:
        """Never larger than the main window: 980 × 640 when there is room, else a little smaller than the window, so
        that it still shows behind (the parts wrap or elide rather than widen it: model names, figures, the note)."""
        parent = self.parentWidget()
        owner = parent.window() if parent is not None else None
        if owner is None:
            return
        limit = owner.size()
        self.setMaximumSize(limit)
        self.resize(min(980, int(limit.width() * 0.92)), min(640, int(limit.height() * 0.92)))

    def showEvent(self, event: QShowEvent) -> None:
        self.fit_to_window()  # the window may have been resized since the dialog was made
        super().showEvent(event)

    def _side(self, name: str, grid: QGridLayout, column: int, choice: str) -> Side:
        box = QGroupBox(name, self)
        model_combo = QComboBox(box)
        model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        model_combo.setMinimumContentsLength(12)  # a long model name is elided, not a wider dialog
        model_combo.setObjectName(f"compareModel{name}")
        model_combo.setAccessibleName(f"Model of {name}")
        model_combo.addItem(LOADED, None)
        for model in self.others if name == "B" else ():
            model_combo.addItem(model.name, model)
        combo = QComboBox(box)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(12)
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
        figures.setWordWrap(True)  # long figures wrap in their half instead of widening the dialog
        figures.setObjectName(f"compareFigures{name}")
        figures.setAccessibleName(f"Figures of {name}")
        inner = QVBoxLayout(box)
        inner.addWidget(model_combo)
        inner.addWidget(combo)
        inner.addWidget(text, 1)
        inner.addWidget(figures)
        grid.addWidget(box, 0, column)
        return Side(name, combo, model_combo, text, figures)

    def _connect(self, host: EngineHost) -> None:
        worker = host.worker
        worker.tokens.connect(self._on_tokens)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)

    def _disconnect(self, host: EngineHost) -> None:
        worker = host.worker
        for signal, slot in ((worker.tokens, self._on_tokens), (worker.finished, self._on_finished),
                             (worker.failed, self._on_failed)):  # fmt: skip
            signal.disconnect(slot)

    # --- choices -----------------------------------------------------------------------------------------------
    def params_of(self, side: Side) -> SamplingParams:
        preset = self.presets.get(side.combo.currentText())
        return apply_preset(self.params, preset) if preset is not None else self.params

    def model_of(self, side: Side) -> LocalModel | None:
        """The other model a side runs on; None for the loaded one."""
        model = side.model_combo.currentData()
        return model if isinstance(model, LocalModel) else None

    def _on_model_chosen(self, _index: int) -> None:
        model = self.model_of(self.sides[1])
        if model is None or self.load_options is None:
            self.memory.hide()
            return
        self.memory.setText(memory_note(model.path, self.load_options(model).n_ctx))
        self.memory.show()

    # --- running -----------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(s.request is not None for s in self.sides) or bool(self._queue) or self._loading is not None

    def run(self) -> None:
        if self.running or not self.prompt:
            return
        for side in self.sides:
            side.content.clear()
            side.stats, side.receipt = None, {}
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
        model = self.model_of(side)
        if model is not None and self.other_loaded != model.path:
            self._load_other(side, model)
            return
        self._generate(side, self._other() if model is not None else self.host)

    def _generate(self, side: Side, host: EngineHost) -> None:
        side.figures.setText("generating…")
        side.host = host
        side.request, _cancel = host.generate(self.prompt, self.params_of(side), mode=self.mode)

    def _other(self) -> EngineHost:
        if self.other_host is None:
            self.other_host = EngineHost(parent=self)
            self._connect(self.other_host)
            self.other_host.worker.loaded.connect(self._on_other_loaded)
            self.other_host.worker.loadFailed.connect(self._on_other_failed)
        return self.other_host

    def _load_other(self, side: Side, model: LocalModel) -> None:
        assert self.load_options is not None
        side.figures.setText(f"loading {model.name}…")
        self._loading = side
        self.other_loaded = None
        self._other().load(self.load_options(model))

    def _on_other_loaded(self, info: ModelInfo) -> None:
        side, self._loading = self._loading, None
        self.other_loaded = info.path
        if side is not None and self.other_host is not None:
            self._generate(side, self.other_host)

    def _on_other_failed(self, message: str) -> None:
        side, self._loading = self._loading, None
        if side is not None:
            side.figures.setText(f"⚠ {message}")
            self._next()

    def stop(self) -> None:
        self._queue.clear()
        if self._loading is not None and self.other_host is not None:
            self.other_host.cancel_load()
        for side in self.sides:
            if side.request is not None and side.host is not None:
                side.host.stop(side.request)

    def _side_of(self, request_id: int) -> Side | None:
        """The side of a request: ids are per engine, so the signal's sender tells the engines apart."""
        sender: QObject | None = self.sender()
        return next(
            (s for s in self.sides if s.request == request_id and (sender is None or s.host is None or
                                                                   sender is s.host.worker)),
            None,
        )  # fmt: skip

    def _on_tokens(self, request_id: int, text: str) -> None:
        side = self._side_of(request_id)
        if side is not None:
            side.content.append(text)
            side.text.setPlainText("".join(side.content))

    def _on_finished(self, request_id: int, stats: GenerationStats, receipt: dict[str, Any]) -> None:
        side = self._side_of(request_id)
        if side is None:
            return
        side.request, side.stats, side.receipt = None, stats, receipt
        self._show(side)
        model = str(receipt.get("model_file", ""))
        side.figures.setText(
            f"{model + ' · ' if model else ''}{stats.generated_tokens} tokens · {stats.tokens_per_s:.1f} tokens/s"
            f" · first token after {stats.ttft_s * 1000:.0f} ms · seed {stats.seed}"
            f" · {finish_words(stats.finish_reason)}"
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
        if self._closed:
            super().done(result)
            return
        self._closed = True
        self.stop()
        self._disconnect(self.host)
        if self.other_host is not None:
            self.other_host.shutdown()  # closes the second model and joins its thread
            self.other_host = None
            self.other_loaded = None
        super().done(result)

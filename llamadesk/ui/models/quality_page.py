"""The Compare tab: measure local quantizations of one model on one text (perplexity, KL divergence and top-token
agreement against the most precise file, speed, memory) in the background, then a table, a chart and one sentence;
and "Make a quant…" from an F32/F16/BF16/Q8_0 file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core import quality
from llamadesk.core.library import LocalModel, list_local_models
from llamadesk.core.quality import CompareProgress, Comparison
from llamadesk.ui.models.common import MessageLine, human_size, make_table, right_aligned
from llamadesk.ui.models.quality_chart import QualityChart, chart_summary
from llamadesk.ui.workers import Task, TaskContext, TaskRunner

COLUMNS = ("File", "Quant", "Size", "Memory", "Perplexity", "KLD", "Top-1 %", "Prompt tok/s", "Gen tok/s")
OWN_TEXT = "__own__"
DEFAULT_TEXT = "en-gpl-3"  # the longest shipped text, as `llamadesk models compare` uses by default
STAGES = {"checking": "checking", "loading": "loading", "scoring": "scoring", "generating": "timing generation"}


@dataclass(frozen=True)
class LocalFile:
    """A library model with the quantization its header names ("" when the header could not be read)."""

    model: LocalModel
    type: str

    @property
    def path(self) -> Path:
        return self.model.path


def _list_files(models_dir: Path) -> list[LocalFile]:
    from llamadesk.core.errors import ModelLoadError
    from llamadesk.core.gguf_header import read_header

    files = []
    for m in list_local_models(models_dir):
        try:
            kind = read_header(m.path).quantization
        except (ModelLoadError, OSError):
            kind = ""
        files.append(LocalFile(m, kind))
    return files


def progress_text(p: CompareProgress) -> str:
    where = f" — chunk {p.chunk + 1} of {p.n_chunks}" if p.stage == "scoring" and p.n_chunks else ""
    return f"File {p.file_index + 1} of {p.n_files}, {p.name}: {STAGES.get(p.stage, p.stage)}{where}…"


def progress_fraction(p: CompareProgress) -> float:
    within = (p.chunk / p.n_chunks) if p.n_chunks else (1.0 if p.stage == "generating" else 0.0)
    return min(1.0, (p.file_index + within) / max(p.n_files, 1))


class QualityPage(QWidget):
    """`modelsChanged` after a quant was made (the library shows it); `comparisonFinished(Comparison)`."""

    modelsChanged = Signal()
    comparisonFinished = Signal(object)

    def __init__(self, models_dir: Path, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.models_dir, self.runner = models_dir, runner
        self.files: list[LocalFile] = []
        self.loaded = False
        self.comparison: Comparison | None = None
        self.own_text: Path | None = None
        self._task: Task[Comparison] | None = None
        self._quantize_dialog: QWidget | None = None

        self.file_list = QListWidget()
        self.file_list.setObjectName("qualityFiles")
        self.file_list.setAccessibleName("Files to compare")
        self.file_list.setToolTip("Tick two or more quantizations of the same model; the most precise is the reference")
        self.add_button = QPushButton("Add a file…")
        self.add_button.setToolTip("Compare a GGUF that is not in your library")
        self.quantize_button = QPushButton("Make a quant…")
        self.quantize_button.setToolTip("Quantize the selected F32, F16, BF16 or Q8_0 file to a smaller type")
        self.text_combo = QComboBox()
        self.text_combo.setAccessibleName("Evaluation text")
        for name, path in quality.eval_texts().items():
            self.text_combo.addItem(name, str(path))
        self.text_combo.addItem("Your own text file…", OWN_TEXT)
        self.text_combo.setCurrentIndex(max(0, self.text_combo.findText(DEFAULT_TEXT)))
        self.ctx_spin = QSpinBox()
        self.ctx_spin.setAccessibleName("Context")
        self.ctx_spin.setRange(0, 8192)
        self.ctx_spin.setSingleStep(128)
        self.ctx_spin.setSpecialValueText("auto (512)")
        self.ctx_spin.setToolTip("Tokens per window, as llama-perplexity's -c; the second half of each is scored")
        self.compare_button = QPushButton("Compare")
        self.stop_button = QPushButton("Stop")
        self.stop_button.hide()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.message = MessageLine()
        self.recommendation = QLabel()
        self.recommendation.setObjectName("qualityRecommendation")
        self.recommendation.setWordWrap(True)
        self.recommendation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.recommendation.font()
        font.setBold(True)
        self.recommendation.setFont(font)
        self.table = make_table(COLUMNS, "qualityResults", 0)
        self.chart = QualityChart()

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("Files (of one model):"))
        left_layout.addWidget(self.file_list, 1)
        file_buttons = QHBoxLayout()
        file_buttons.addWidget(self.add_button)
        file_buttons.addWidget(self.quantize_button)
        left_layout.addLayout(file_buttons)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Text:"))
        controls.addWidget(self.text_combo, 1)
        controls.addWidget(QLabel("Context:"))
        controls.addWidget(self.ctx_spin)
        controls.addWidget(self.compare_button)
        controls.addWidget(self.progress, 1)
        controls.addWidget(self.stop_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(controls)
        right_layout.addWidget(self.message)
        right_layout.addWidget(self.recommendation)
        right_layout.addWidget(self.table, 2)
        right_layout.addWidget(self.chart, 3)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        self.compare_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.add_button.clicked.connect(self.ask_add_file)
        self.quantize_button.clicked.connect(self.ask_quantize)
        self.text_combo.activated.connect(self._text_chosen)
        self.file_list.itemChanged.connect(lambda _item: self._update_buttons())
        self.file_list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self._update_buttons()

    # -- files --------------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        models_dir = self.models_dir
        self.runner.run_in_background(
            lambda _ctx: _list_files(models_dir),
            self._show_files,
            self.message.show_error,
            name="list models to compare",
        )

    def _show_files(self, files: list[LocalFile]) -> None:
        checked = set(self.checked_paths())
        extra = [
            f
            for f in self.files
            if f.model.external and f.path not in {g.path for g in files} and f.model.source == "added to compare"
        ]
        self.files = files + extra
        self.loaded = True
        self.file_list.blockSignals(True)
        self.file_list.clear()
        for f in self.files:
            item = QListWidgetItem(f"{f.model.name}  ·  {f.type or '?'}  ·  {human_size(f.model.size_bytes)}")
            item.setToolTip(str(f.path))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if f.path in checked else Qt.CheckState.Unchecked)
            self.file_list.addItem(item)
        self.file_list.blockSignals(False)
        self._update_buttons()

    def checked_paths(self) -> list[Path]:
        return [
            self.files[i].path
            for i in range(self.file_list.count())
            if i < len(self.files) and self.file_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def set_checked(self, paths: list[Path]) -> None:
        wanted = {Path(p) for p in paths}
        for i, f in enumerate(self.files):
            self.file_list.item(i).setCheckState(Qt.CheckState.Checked if f.path in wanted else Qt.CheckState.Unchecked)

    def current_file(self) -> LocalFile | None:
        row = self.file_list.currentRow()
        return self.files[row] if 0 <= row < len(self.files) else None

    def ask_add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF to compare", str(Path.home()), "GGUF models (*.gguf)")
        if path:
            self.add_file(Path(path))

    def add_file(self, path: Path) -> None:
        """A file outside the library, ticked (its header is read in the background)."""

        def work(_ctx: TaskContext) -> LocalFile:
            from llamadesk.core.errors import ModelLoadError
            from llamadesk.core.gguf_header import read_header

            try:
                kind = read_header(path).quantization
            except (ModelLoadError, OSError):
                kind = ""
            model = LocalModel(path, path.name, path.stat().st_size, "added to compare", "", None, external=True)
            return LocalFile(model, kind)

        def added(f: LocalFile) -> None:
            checked = [*self.checked_paths(), f.path]
            self._show_files([g for g in self.files if g.path != f.path] + [f])
            self.set_checked(checked)

        self.runner.run_in_background(work, added, self.message.show_error, name="add a file to compare")

    # -- the text -----------------------------------------------------------------------------------------------
    def _text_chosen(self, index: int) -> None:
        if self.text_combo.itemData(index) == OWN_TEXT and self.own_text is None:
            path, _ = QFileDialog.getOpenFileName(
                self,
                "A text to measure on",
                str(Path.home()),
                "Text files (*.txt *.md *.py *.rst *.html);;All files (*)",
            )
            if path:
                self.set_text_file(Path(path))
            else:
                self.text_combo.setCurrentIndex(0)

    def set_text_file(self, path: Path) -> None:
        """Your own text: its domain is what matters."""
        self.own_text = Path(path)
        index = self.text_combo.findData(OWN_TEXT)
        self.text_combo.setItemText(index, f"{self.own_text.name} (yours)")
        self.text_combo.setItemData(index, self.own_text.name, Qt.ItemDataRole.ToolTipRole)
        self.text_combo.setCurrentIndex(index)

    def text_path(self) -> Path | None:
        data = self.text_combo.currentData()
        return self.own_text if data == OWN_TEXT else Path(data) if data else None

    # -- the comparison -----------------------------------------------------------------------------------------
    def start(self) -> None:
        paths, text_path = self.checked_paths(), self.text_path()
        if len(paths) < 2:
            self.message.show_error("Tick at least two files of the same model to compare them.")
            return
        if text_path is None:
            self.message.show_error("Choose a text to measure on.")
            return
        n_ctx = self.ctx_spin.value() or None

        def work(ctx: TaskContext) -> Comparison:
            text = quality.read_text(text_path)
            return quality.compare(paths, text, n_ctx=n_ctx, progress=ctx.progress, cancel=ctx.cancel)

        self.message.show_note(f"Measuring {len(paths)} files on {text_path.name}…")
        self.progress.setValue(0)
        self._task = self.runner.run_in_background(
            work, self._finished, self._failed, self._progress, name="compare quantizations"
        )
        self._set_running(True)  # callbacks arrive through the event loop, never before this

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.stop_button.setEnabled(False)
            self.message.show_note("Stopping after this step…")

    def is_running(self) -> bool:
        return self._task is not None

    def _progress(self, p: CompareProgress) -> None:
        self.progress.setValue(int(1000 * progress_fraction(p)))
        if not (self._task and self._task.cancel_event.is_set()):
            self.message.show_note(progress_text(p))

    def _set_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.stop_button.setVisible(running)
        self.stop_button.setEnabled(running)
        if not running:
            self._task = None
        self._update_buttons()

    def _failed(self, message: str) -> None:
        stopped = self._task is not None and self._task.cancel_event.is_set()
        self._set_running(False)
        if stopped:
            self.message.show_note(message)
        else:
            self.message.show_error(message)

    def _finished(self, comparison: Comparison) -> None:
        self._set_running(False)
        self.show_comparison(comparison)
        self.comparisonFinished.emit(comparison)

    def show_comparison(self, comparison: Comparison) -> None:
        self.comparison = comparison
        notes = " ".join(comparison.notes)
        self.message.show_note(
            f"Measured {comparison.tokens_scored:,} tokens per file in windows of "
            f"{comparison.n_ctx} in {comparison.seconds:.0f} s; the reference is "
            f"{comparison.reference.name}. {notes}".strip()
        )
        self.recommendation.setText(comparison.recommendation)
        self.table.setRowCount(len(comparison.files))
        for row, f in enumerate(comparison.files):
            name = QTableWidgetItem(f.name + ("  (reference)" if f.is_reference else ""))
            name.setToolTip(f"{f.path}\nSHA-256 {f.sha256}")
            kld = right_aligned("—" if f.kld is None else f"{f.kld:.4f}")
            if f.kld_p99 is not None and not f.is_reference:
                kld.setToolTip(f"99th percentile {f.kld_p99:.4f}")
            cells = (
                name,
                QTableWidgetItem(f.type),
                right_aligned(human_size(f.size_bytes)),
                right_aligned(human_size(f.memory_bytes)),
                right_aligned(f"{f.perplexity:.3f}"),
                kld,
                right_aligned("—" if f.top1 is None else f"{f.top1 * 100:.1f}"),
                right_aligned(f"{f.prompt_tps:.1f}"),
                right_aligned(f"{f.gen_tps:.1f}"),
            )
            for col, item in enumerate(cells):
                self.table.setItem(row, col, item)
        self.chart.set_comparison(comparison)
        self.chart.setAccessibleDescription(chart_summary(self.chart.points))

    # -- making a quant -----------------------------------------------------------------------------------------
    def ask_quantize(self) -> None:
        from llamadesk.ui.models.quantize_dialog import QuantizeDialog

        chosen = self.current_file()
        if chosen is None:
            return
        dialog = QuantizeDialog(
            chosen.path, chosen.type, self.models_dir, self.runner, self, text_path=self.text_path()
        )
        dialog.quantized.connect(self._quantized)
        self._quantize_dialog = dialog
        dialog.show()

    def _quantized(self, path: Path) -> None:
        self.message.show_note(f"{path.name} is in your library now; tick it to compare it.")
        self.modelsChanged.emit()
        self.refresh()

    def _update_buttons(self) -> None:
        running = self._task is not None
        self.compare_button.setEnabled(not running and len(self.checked_paths()) >= 2)
        chosen = self.current_file()
        from llamadesk.core.quantize import SOURCE_TYPES

        self.quantize_button.setEnabled(chosen is not None and chosen.type.upper() in SOURCE_TYPES)
        if chosen is not None and chosen.type.upper() not in SOURCE_TYPES:
            self.quantize_button.setToolTip(
                f"{chosen.model.name} is {chosen.type or 'unreadable'}; quantize from an F32, F16, BF16 or Q8_0 file"
            )
        else:
            self.quantize_button.setToolTip("Quantize the selected F32, F16, BF16 or Q8_0 file to a smaller type")

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.discard()

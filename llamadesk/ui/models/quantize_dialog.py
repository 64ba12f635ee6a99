"""Make a quant…: a target type, an output path, the free space against the expected size, optionally an importance
matrix computed on the Compare tab's text, then llama.cpp's quantizer in a child process (core/quantize.py) with
progress and Cancel; the new file joins the library with its source."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core import quantize as quant
from llamadesk.core.quantize import QuantizeProgress, QuantizeResult
from llamadesk.ui.models.common import MessageLine, human_size
from llamadesk.ui.workers import Task, TaskContext, TaskRunner

DEFAULT_TYPE = "Q4_K_M"


@dataclass(frozen=True)
class SourceInfo:
    """What the dialog needs of the source, read in the background: the size each target type would have."""

    estimates: dict[str, int]  # type → expected bytes, for the types this wheel can make from this source


def _read_source(source: Path, source_type: str) -> SourceInfo:
    from llamadesk.core.gguf_header import read_header

    header = read_header(source)
    known = quant.available_types()
    limit = quant.BITS_PER_WEIGHT.get(source_type.upper(), 32.0)
    estimates = {
        t: quant.estimate_size(header, t) for t, bits in quant.BITS_PER_WEIGHT.items() if t in known and bits < limit
    }
    return SourceInfo(estimates)


def free_bytes(folder: Path) -> int | None:
    """Free space on the disk that would hold `folder` (its nearest existing parent), None when unreadable."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


class QuantizeDialog(QDialog):
    """Non-modal; `quantized(Path)` once the new file is in place and registered."""

    quantized = Signal(object)

    def __init__(
        self,
        source: Path,
        source_type: str,
        models_dir: Path,
        runner: TaskRunner,
        parent: QWidget | None = None,
        *,
        text_path: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.text_path = text_path
        self.setWindowTitle(f"Make a quant of {source.name}")
        self.source, self.source_type, self.models_dir, self.runner = source, source_type, models_dir, runner
        self.info: SourceInfo | None = None
        self.made: QuantizeResult | None = None  # not `result`: QDialog.result() is the exit code
        self._task: Task[QuantizeResult] | None = None
        self._output_edited = False

        self.type_combo = QComboBox()
        self.type_combo.setAccessibleName("Target type")
        self.type_combo.setEnabled(False)
        self.output_edit = QLineEdit()
        self.output_edit.setAccessibleName("Output file")
        self.browse_button = QPushButton("Browse…")
        self.imatrix_check = QCheckBox(
            f"Importance matrix, computed on {text_path.name}" if text_path else "Importance matrix (choose a text)"
        )
        self.imatrix_check.setEnabled(text_path is not None)
        self.imatrix_check.setToolTip(
            "Evaluates the model on the text first, as llama-imatrix does, and weighs the rounding with it: "
            "IQ1/IQ2 types need one, every type gains a little; it takes about as long as measuring the text"
        )
        self.space_label = QLabel("Reading the source…")
        self.space_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.message = MessageLine()
        self.start_button = QPushButton("Quantize")
        self.start_button.setEnabled(False)
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.close_button = QPushButton("Close")
        self.close_button.setAutoDefault(False)

        output_row = QHBoxLayout()
        output_row.addWidget(self.output_edit, 1)
        output_row.addWidget(self.browse_button)
        form = QFormLayout()
        form.addRow("Source:", QLabel(f"{source.name} ({source_type})"))
        form.addRow("Type:", self.type_combo)
        form.addRow("Output:", output_row)
        form.addRow("", self.imatrix_check)
        form.addRow("", self.space_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        buttons.addStretch(0)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addLayout(buttons)

        self.type_combo.currentIndexChanged.connect(self._type_changed)
        self.output_edit.textEdited.connect(self._output_typed)
        self.imatrix_check.toggled.connect(lambda _on: self._check_space())
        self.browse_button.clicked.connect(self.ask_output)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.runner.run_in_background(
            lambda _ctx: _read_source(source, source_type),
            self._source_read,
            self._source_failed,
            name="read a quantization source",
        )

    # -- choosing -----------------------------------------------------------------------------------------------
    def _source_read(self, info: SourceInfo) -> None:
        self.info = info
        if not info.estimates:
            self._source_failed(f"{self.source.name} is {self.source_type}; no smaller type can be made from it here.")
            return
        self.type_combo.blockSignals(True)
        for name, size in info.estimates.items():
            self.type_combo.addItem(f"{name}  (≈ {human_size(size)})", name)
        self.type_combo.blockSignals(False)
        self.type_combo.setEnabled(True)
        index = self.type_combo.findData(DEFAULT_TYPE)
        self.type_combo.setCurrentIndex(index if index >= 0 else 0)
        self._type_changed()

    def _source_failed(self, message: str) -> None:
        self.space_label.clear()
        self.message.show_error(message)

    def type_name(self) -> str:
        return str(self.type_combo.currentData() or "")

    def set_type(self, name: str) -> None:
        self.type_combo.setCurrentIndex(self.type_combo.findData(name))

    def output_path(self) -> Path:
        return Path(self.output_edit.text().strip()).expanduser()

    def set_output(self, path: Path) -> None:
        self._output_edited = True
        self.output_edit.setText(str(path))
        self._check_space()

    def _output_typed(self, _text: str) -> None:
        self._output_edited = True
        self._check_space()

    def ask_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the quant as", str(self.output_path()), "GGUF (*.gguf)")
        if path:
            self.set_output(Path(path))

    def _type_changed(self, *_args: object) -> None:
        if not self._output_edited and self.type_name():
            self.output_edit.setText(str(quant.default_output(self.source, self.type_name(), self.models_dir)))
        self._check_space()

    def _check_space(self) -> bool:
        """Shows the expected size against the free space; False (and Quantize disabled) when it cannot work."""
        if self.info is None or not self.type_name():
            return False
        needed = self.info.estimates[self.type_name()]
        target = self.output_path()
        free = free_bytes(target.parent)
        problem = ""
        if not self.output_edit.text().strip() or target.suffix.lower() != ".gguf":
            problem = "The output must be a file name ending in .gguf."
        elif target.exists():
            problem = f"{target.name} already exists; choose another name."
        elif self.type_name() in quant.NEEDS_IMATRIX and not self.imatrix_check.isChecked():
            problem = f"{self.type_name()} needs an importance matrix; tick it, or choose Q3_K_S or a larger type."
        elif free is not None and free < needed:
            problem = (
                f"Not enough free space: the quant needs about {human_size(needed)} and {target.parent} has "
                f"{human_size(free)} free."
            )
        free_text = f"{human_size(free)} free" if free is not None else "free space unknown"
        self.space_label.setText(f"About {human_size(needed)}; {free_text} there.")
        if problem:
            self.message.show_error(problem)
        elif self.message.is_error:
            self.message.clear_message()
        self.start_button.setEnabled(not problem and self._task is None)
        return not problem

    # -- running ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if not self._check_space() or self._task is not None:
            return
        source, type_name, target, models_dir = self.source, self.type_name(), self.output_path(), self.models_dir
        text_path = self.text_path if self.imatrix_check.isChecked() else None

        def work(ctx: TaskContext) -> QuantizeResult:
            from llamadesk.core.quality import read_text

            text = read_text(text_path) if text_path is not None else None
            return quant.quantize(
                source,
                type_name,
                target,
                models_dir=models_dir,
                progress=ctx.progress,
                cancel=ctx.cancel,
                imatrix_text=text,
            )

        self.message.show_note(f"Quantizing {source.name} to {type_name}…")
        self.progress.setValue(0)
        self._task = self.runner.run_in_background(
            work, self._done, self._failed, self._progress, name="quantize a model"
        )
        self._set_running(True)  # callbacks arrive through the event loop, never before this

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.cancel_button.setEnabled(False)
            self.message.show_note("Stopping…")

    def is_running(self) -> bool:
        return self._task is not None

    def _progress(self, p: QuantizeProgress) -> None:
        self.progress.setValue(int(1000 * p.fraction))
        if p.stage == "imatrix" and p.tensors_total:
            self.progress.setValue(int(1000 * p.tensors_done / p.tensors_total))
            self.progress.setFormat(f"importance matrix: window {p.tensors_done} of {p.tensors_total}")
        elif p.stage == "quantizing" and p.tensors_total:
            self.progress.setFormat(f"tensor {p.tensors_done} of {p.tensors_total} · {human_size(p.bytes_written)}")
        elif p.stage == "hashing":
            self.progress.setFormat("checking the new file…")

    def _set_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.progress.setFormat("%p%")
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running)
        for w in (self.type_combo, self.output_edit, self.browse_button, self.imatrix_check):
            w.setEnabled(not running)
        self.start_button.setEnabled(not running)
        if not running:
            self._task = None

    def _done(self, result: QuantizeResult) -> None:
        self._set_running(False)
        self.made = result
        self.start_button.setEnabled(False)
        self.message.show_note(
            f"{result.path.name} is made ({human_size(result.size_bytes)} in "
            f"{result.seconds:.0f} s) and in your library, its source recorded."
        )
        self.quantized.emit(result.path)

    def _failed(self, message: str) -> None:
        stopped = self._task is not None and self._task.cancel_event.is_set()
        self._set_running(False)
        if stopped:
            self.message.show_note(message)
        else:
            self.message.show_error(message)
        self.start_button.setEnabled(self.info is not None and not self.output_path().exists())

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing while quantizing stops it (the partial file is removed); nothing runs on unseen."""
        if self._task is not None:
            self._task.cancel()
        super().closeEvent(event)

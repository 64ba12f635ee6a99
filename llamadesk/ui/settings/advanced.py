"""Advanced model settings: GPU layers (auto, all, none or a number), threads, flash attention, KV cache types,
mmap and mlock — a dialog over AppSettings, and the offer to reload when they change with a model loaded."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QLocale, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.engines.api import GPU_LAYERS_ALL, GPU_LAYERS_AUTO, KV_CACHE_TYPES, LoadOptions
from llamadesk.core.errors import InvalidSetting
from llamadesk.core.settings import FLASH_ATTN, AppSettings

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

MANUAL = 1  # the GPU-mode combo's data for "a number of layers" (auto, all and none are their n_gpu_layers)
UNKNOWN_LAYERS = 128  # the slider's end before a model's layer count is known
Preview = Callable[[dict[str, Any]], str]  # the box's values → a sentence on where the layers would go
FIELDS = ("n_threads", "n_gpu_layers", "flash_attn", "type_k", "type_v", "use_mmap", "use_mlock", "prompt_lookup",
          "draft_model")

GPU_MODES = (
    ("Auto", GPU_LAYERS_AUTO, "As many layers as fit in free GPU memory, with the KV cache at the chosen context."),
    ("All layers", GPU_LAYERS_ALL, "Every layer on the GPU; if they do not fit, fewer are tried and you are told."),
    ("None (CPU only)", 0, "Every layer runs on the CPU."),
    ("A number of layers", MANUAL, "The number of layers set below; the rest run on the CPU."),
)
FLASH_LABELS = {"auto": "Auto", "on": "On", "off": "Off"}
KV_LABELS = {"f16": "f16 (full precision)", "q8_0": "q8_0 (about half the memory)", "q4_0": "q4_0 (about a quarter)"}
KV_TIP = (
    "The number type of the {} cache, which holds what the model has read. Quantized types fit a longer "
    "context in the same memory at a small cost in quality.{}"
)


def _small(widget: QLabel) -> QLabel:
    font = widget.font()
    font.setPointSizeF(max(font.pointSizeF() * 0.9, 7.0))
    widget.setFont(font)
    widget.setWordWrap(True)
    return widget


class AdvancedModelBox(QGroupBox):
    """The controls; values() gives AppSettings fields, problem() the sentence when they cannot work together."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Advanced model settings", parent)
        self.gpu_mode = QComboBox(self)
        self.gpu_mode.setObjectName("gpuMode")
        self.gpu_mode.setAccessibleName("GPU offload")
        self.gpu_mode.setToolTip("Which layers of the model run on the GPU (the rest run on the CPU).")
        for label, value, tip in GPU_MODES:
            self.gpu_mode.addItem(label, value)
            self.gpu_mode.setItemData(self.gpu_mode.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.gpu_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.gpu_slider.setObjectName("gpuLayersSlider")
        self.gpu_slider.setAccessibleName("GPU layers")
        self.gpu_spin = QSpinBox(self)
        self.gpu_spin.setObjectName("gpuLayers")
        self.gpu_spin.setAccessibleName("Number of GPU layers")
        for w in (self.gpu_slider, self.gpu_spin):
            w.setToolTip(
                "How many layers run on the GPU. llama.cpp offloads the output layer first, then the "
                "blocks from the last one down."
            )
        self.gpu_of = QLabel(self)
        self.gpu_of.setObjectName("gpuLayersOf")
        self.offload_label = _small(QLabel(self))
        self.offload_label.setObjectName("offloadPreview")
        self.offload_label.setAccessibleName("Where the layers go")
        self.offload_label.setToolTip("What Auto would do with the chosen model and context on this machine now.")
        self.offload_label.hide()
        self._preview: Preview | None = None

        self.threads_spin = QSpinBox(self)
        self.threads_spin.setObjectName("threads")
        self.threads_spin.setAccessibleName("CPU threads")
        import psutil  # the dialog's imports wait until it opens: the window's start-up stays lean

        from llamadesk.core.engines.local import default_threads

        self.threads_spin.setRange(0, max(64, 2 * (psutil.cpu_count(logical=True) or 1)))
        self.threads_spin.setSpecialValueText(f"Default ({default_threads()})")
        self.threads_spin.setToolTip(
            "How many CPU threads compute the model. The default is the number of physical cores, leaving one "
            "for the window on machines with more than four."
        )

        self.flash_combo = QComboBox(self)
        self.flash_combo.setObjectName("flashAttention")
        self.flash_combo.setAccessibleName("Flash attention")
        self.flash_combo.setToolTip(
            "A faster attention that needs less memory. Auto lets llama.cpp decide per device; a quantized "
            "V cache needs it on or auto."
        )
        for flash in FLASH_ATTN:
            self.flash_combo.addItem(FLASH_LABELS[flash], flash)
        self.type_k = self._kv_combo("typeK", "K cache type", "K", "")
        self.type_v = self._kv_combo("typeV", "V cache type", "V", " A quantized V cache needs flash attention.")

        self.mmap_check = QCheckBox("Map the model file into memory (mmap)", self)
        self.mmap_check.setObjectName("useMmap")
        self.mmap_check.setAccessibleName("Use mmap")
        self.mmap_check.setToolTip(
            "Read the weights straight from the file as they are needed: faster loading, and the system can "
            "share or drop the pages. Turn it off if the file sits on a slow or network drive."
        )
        self.mlock_check = QCheckBox("Keep the model in RAM (mlock)", self)
        self.mlock_check.setObjectName("useMlock")
        self.mlock_check.setAccessibleName("Use mlock")
        self.mlock_check.setToolTip(
            "Stop the system from swapping the model out. Needs enough free RAM (and on Linux a high enough "
            "memlock limit); otherwise llama.cpp warns and goes on."
        )
        self.lookup_check = QCheckBox("Speculative decoding: prompt lookup", self)
        self.lookup_check.setObjectName("promptLookup")
        self.lookup_check.setToolTip(
            "Guess the next words from earlier text in the conversation and check the guesses in one step: faster "
            "when a reply repeats its prompt (edits, code rewrites), the same output, more memory for long contexts."
        )
        self.draft_edit = QLineEdit(self)
        self.draft_edit.setObjectName("draftModel")
        self.draft_edit.setAccessibleName("Draft model file")
        self.draft_edit.setPlaceholderText("None")
        self.draft_edit.setToolTip(
            "Speculative decoding with a draft model: a small GGUF of the same family as the model you load (for "
            "Qwen2.5 7B, Qwen2.5 0.5B) guesses the next words and the model checks them in one step. The same "
            "output; faster when the guesses are mostly right, and switched off by itself in a chat where they "
            "are not. A draft of another family is refused when the model loads."
        )
        self.draft_button = QPushButton("Choose…", self)
        self.draft_button.setObjectName("chooseDraftModel")
        self.draft_button.clicked.connect(self._choose_draft)
        self.cache_button = QPushButton(self)
        self.cache_button.setObjectName("clearPromptCache")
        self.cache_button.setToolTip(
            "Conversations' saved prompts, so that reopening or switching to one does not read it again. "
            "Clearing them loses nothing else."
        )
        self.cache_button.clicked.connect(self.clear_prompt_cache)
        self._show_cache_size()
        self.problem_label = _small(QLabel(self))
        self.problem_label.setObjectName("advancedProblem")
        self.problem_label.setAccessibleName("Problem with these settings")
        self.problem_label.setStyleSheet("color: #c0392b;")
        self.problem_label.hide()

        gpu_row = QHBoxLayout()
        gpu_row.addWidget(self.gpu_slider, 1)
        gpu_row.addWidget(self.gpu_spin)
        gpu_row.addWidget(self.gpu_of)
        form = QFormLayout(self)
        form.addRow("GPU offload", self.gpu_mode)
        form.addRow("GPU layers", gpu_row)
        form.addRow(self.offload_label)
        form.addRow("Threads", self.threads_spin)
        form.addRow("Flash attention", self.flash_combo)
        form.addRow("K cache", self.type_k)
        form.addRow("V cache", self.type_v)
        form.addRow(self.mmap_check)
        form.addRow(self.mlock_check)
        form.addRow(self.lookup_check)
        draft_row = QHBoxLayout()
        draft_row.addWidget(self.draft_edit, 1)
        draft_row.addWidget(self.draft_button)
        form.addRow("Draft model", draft_row)
        form.addRow("Prompt cache", self.cache_button)
        form.addRow(self.problem_label)
        self.setTabOrder(self.gpu_mode, self.gpu_slider)
        self.setTabOrder(self.gpu_slider, self.gpu_spin)
        self.setTabOrder(self.gpu_spin, self.threads_spin)

        self.gpu_slider.valueChanged.connect(self.gpu_spin.setValue)
        self.gpu_spin.valueChanged.connect(self.gpu_slider.setValue)
        self.gpu_mode.currentIndexChanged.connect(self._on_mode)
        for combo in (self.flash_combo, self.type_k, self.type_v):
            combo.currentIndexChanged.connect(self._emit)
        for signal in (self.gpu_spin.valueChanged, self.threads_spin.valueChanged):
            signal.connect(self._emit)
        for check in (self.mmap_check, self.mlock_check, self.lookup_check):
            check.toggled.connect(self._emit)
        self.draft_edit.textChanged.connect(self._emit)
        self.set_layer_count(None)
        self._on_mode()

    def _kv_combo(self, name: str, accessible: str, which: str, extra: str) -> QComboBox:
        combo = QComboBox(self)
        combo.setObjectName(name)
        combo.setAccessibleName(accessible)
        combo.setToolTip(KV_TIP.format(which, extra))
        for value in KV_CACHE_TYPES:
            combo.addItem(KV_LABELS.get(value, value), value)
        return combo

    # --- values --------------------------------------------------------------------------------------------------
    def set_layer_count(self, n_layers: int | None) -> None:
        """The slider's end: llama.cpp counts the model's blocks and its output layer (n_layers + 1)."""
        top = n_layers + 1 if n_layers else UNKNOWN_LAYERS
        for w in (self.gpu_slider, self.gpu_spin):
            w.setRange(0, top)
        self.gpu_of.setText(f"of {top}" if n_layers else "layers")
        self.gpu_of.setToolTip(
            f"The model has {n_layers} blocks and an output layer." if n_layers else "No model chosen yet."
        )

    def set_values(self, settings: AppSettings) -> None:
        """Shows stored settings (values out of range are shown at the nearest end)."""
        self.blockSignals(True)
        try:
            n = settings.n_gpu_layers
            self.gpu_mode.setCurrentIndex(max(0, self.gpu_mode.findData(n if n <= 0 else MANUAL)))
            if n > 0:
                self.gpu_spin.setValue(n)
            self.threads_spin.setValue(settings.n_threads or 0)
            self.flash_combo.setCurrentIndex(max(0, self.flash_combo.findData(settings.flash_attn)))
            self.type_k.setCurrentIndex(max(0, self.type_k.findData(settings.type_k)))
            self.type_v.setCurrentIndex(max(0, self.type_v.findData(settings.type_v)))
            self.mmap_check.setChecked(settings.use_mmap)
            self.mlock_check.setChecked(settings.use_mlock)
            self.lookup_check.setChecked(settings.prompt_lookup)
            self.draft_edit.setText(settings.draft_model)
        finally:
            self.blockSignals(False)
        self._on_mode()

    def _choose_draft(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Draft model", self.draft_edit.text(), "GGUF models (*.gguf)")
        if path:
            self.draft_edit.setText(path)

    def _show_cache_size(self) -> None:
        from llamadesk.core.engines import prompt_cache

        size = QLocale().formattedDataSize(prompt_cache.disk_usage())
        self.cache_button.setText(f"Clear prompt cache ({size})")

    def clear_prompt_cache(self) -> None:
        """Deletes the saved prompt states at once (not on OK: nothing to undo)."""
        from llamadesk.core.engines import prompt_cache

        prompt_cache.clear()
        self._show_cache_size()

    def n_gpu_layers(self) -> int:
        mode = int(self.gpu_mode.currentData())
        return self.gpu_spin.value() if mode == MANUAL else mode

    def values(self) -> dict[str, Any]:
        """The AppSettings fields these controls hold."""
        return {
            "n_threads": self.threads_spin.value() or None,
            "n_gpu_layers": self.n_gpu_layers(),
            "flash_attn": str(self.flash_combo.currentData()),
            "type_k": str(self.type_k.currentData()),
            "type_v": str(self.type_v.currentData()),
            "use_mmap": self.mmap_check.isChecked(),
            "use_mlock": self.mlock_check.isChecked(),
            "prompt_lookup": self.lookup_check.isChecked(),
            "draft_model": self.draft_edit.text().strip(),
        }

    def problem(self) -> str:
        """LoadOptions.check()'s sentence when the settings cannot work together, else ""."""
        values = self.values()
        options = LoadOptions(
            Path(), n_threads=values["n_threads"], n_gpu_layers=values["n_gpu_layers"],
            flash_attn=FLASH_ATTN[values["flash_attn"]], type_k=values["type_k"], type_v=values["type_v"],
            use_mmap=values["use_mmap"], use_mlock=values["use_mlock"], prompt_lookup=values["prompt_lookup"],
            draft_model=Path(values["draft_model"]) if values["draft_model"] else None,
        )  # fmt: skip
        try:
            options.check()
        except InvalidSetting as exc:
            return str(exc)
        return ""

    def _on_mode(self, *_: object) -> None:
        manual = self.gpu_mode.currentData() == MANUAL
        for w in (self.gpu_slider, self.gpu_spin, self.gpu_of):
            w.setEnabled(manual)
        self._emit()

    def set_preview(self, preview: Preview | None) -> None:
        """`preview(values)` is the sentence shown under the GPU controls ("" hides it)."""
        self._preview = preview
        self._emit()

    def _emit(self, *_: object) -> None:
        text = self.problem()
        self.problem_label.setText(text)
        self.problem_label.setVisible(bool(text))
        note = self._preview(self.values()) if self._preview is not None and not text else ""
        self.offload_label.setText(note)
        self.offload_label.setVisible(bool(note))
        if not self.signalsBlocked():
            self.changed.emit()


class AdvancedSettingsDialog(QDialog):
    """The box with OK / Cancel / Restore defaults; OK is refused while the settings cannot work together."""

    def __init__(
        self, settings: AppSettings, n_layers: int | None, parent: QWidget | None = None, *,
        preview: Preview | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.setObjectName("advancedSettingsDialog")
        self.setWindowTitle("Advanced model settings")
        self.box = AdvancedModelBox(self)
        self.box.set_layer_count(n_layers)
        self.box.set_values(settings)
        self.box.set_preview(preview)
        note = _small(QLabel("These settings apply the next time a model is loaded.", self))
        note.setEnabled(False)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults,
            self,
        )
        layout = QVBoxLayout(self)
        layout.addWidget(self.box)
        layout.addWidget(note)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        defaults = self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        defaults.setToolTip("Put every setting here back to its default.")
        defaults.clicked.connect(lambda: self.box.set_values(AppSettings()))
        self.box.changed.connect(self._update_ok)
        self._update_ok()
        self.box.gpu_mode.setFocus()

    def _update_ok(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        problem = self.box.problem()
        ok.setEnabled(not problem)
        ok.setToolTip(problem or "Keep these settings.")

    def accept(self) -> None:
        if not self.box.problem():
            super().accept()

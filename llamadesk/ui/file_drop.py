"""Files dropped on the window: a .gguf is used where it lies and loaded; a LlamaDesk JSON export is imported.

A drop anywhere on the window counts, the composer included (dropped elsewhere than the composer, text is not
wanted; on the composer, text and other files keep their usual meaning). Registering the model reads its header
in a pool thread; a file that is not a usable GGUF gets one sentence and changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QMimeData, QObject
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent

from llamadesk.core.library import LocalModel, import_model
from llamadesk.ui.workers import TaskContext, TaskRunner

if TYPE_CHECKING:
    from llamadesk.ui.main_window import MainWindow

MODEL_SUFFIX = ".gguf"
EXPORT_SUFFIX = ".json"
HINT = "Drop a .gguf model to use it where it is, or a LlamaDesk .json export to import its conversations."


def dropped_files(mime: QMimeData) -> list[Path]:
    """The local .gguf and .json files of a drag; empty unless every item is one (a mixed drag is not ours)."""
    if not mime.hasUrls():
        return []
    paths = []
    for url in mime.urls():
        if not url.isLocalFile():
            return []
        path = Path(url.toLocalFile())
        if path.suffix.lower() not in (MODEL_SUFFIX, EXPORT_SUFFIX):
            return []
        paths.append(path)
    return paths


class FileDrop(QObject):
    """Accepts drops of model files and history exports on one MainWindow."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.runner = TaskRunner(self, max_threads=1)
        window.setAcceptDrops(True)
        window.installEventFilter(self)
        window.composer.edit.viewport().installEventFilter(self)  # a text edit takes drops itself

    def shutdown(self) -> None:
        self.runner.shutdown()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove) and isinstance(event, QDragMoveEvent):
            if dropped_files(event.mimeData()):
                event.acceptProposedAction()
                if isinstance(event, QDragEnterEvent):
                    self.window.statusBar().showMessage(HINT, 4000)
                return True
            return False
        if kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            paths = dropped_files(event.mimeData())
            if not paths:
                return False
            event.acceptProposedAction()
            self.open(paths)
            return True
        return False

    def open(self, paths: list[Path]) -> None:
        """Imports the exports, and uses the models where they lie; the last model dropped is loaded."""
        models = [p for p in paths if p.suffix.lower() == MODEL_SUFFIX]
        for path in paths:
            if path.suffix.lower() == EXPORT_SUFFIX:
                self.window.navigation.history_actions.transfer.import_path(path)
        for i, path in enumerate(models):
            self._use_model(path, load=i == len(models) - 1)

    def _use_model(self, path: Path, *, load: bool) -> None:
        models_dir = self.window.paths.models

        def work(_ctx: TaskContext) -> LocalModel:
            return import_model(path, models_dir, "in_place")

        self.window.statusBar().showMessage(f"Adding {path.name}…")
        self.runner.run_in_background(
            work, lambda model: self._added(model, load), lambda sentence: self._failed(path, sentence), name="drop"
        )

    def _added(self, model: LocalModel, load: bool) -> None:
        window = self.window
        window.picker.refresh()
        window.statusBar().showMessage(f"Using {model.name} where it is ({model.path.parent}).", 8000)
        if not load:
            return
        window.picker.select_path(model.path)
        chosen = window.picker.model_for(model.path)
        if chosen is not None and not window.is_generating:
            window.picker.load(chosen)

    def _failed(self, path: Path, sentence: str) -> None:
        self.window.statusBar().clearMessage()
        self.window.warn("Model not added", sentence)

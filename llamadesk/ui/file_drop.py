"""Files dropped on the window: a .gguf is used where it lies and loaded; a LlamaDesk JSON export is imported; on
the composer, a text file is added to your message as a fenced block.

On the composer every local file counts: a .gguf is still a model, any other file must be UTF-8 text of at most
core.attachments.ATTACH_MAX_BYTES (the model reads it as part of your message; Prepare Replies While Typing reads
it ahead). On the
rest of the window only .gguf and .json files count; other drags go to the widget under the mouse. Registering a
model reads its header in a pool thread; a file that cannot be used gets one sentence and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QMimeData, QObject
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QWidget

from llamadesk.core.attachments import AttachmentError, attachment_text
from llamadesk.core.library import LocalModel, import_model
from llamadesk.ui.workers import TaskContext, TaskRunner

if TYPE_CHECKING:
    from llamadesk.paths import Paths
    from llamadesk.ui.chat.composer import Composer
    from llamadesk.ui.model_picker import ModelPicker
    from llamadesk.ui.window_state import WindowState

MODEL_SUFFIX = ".gguf"
EXPORT_SUFFIX = ".json"
HINT = "Drop a .gguf model to use it where it is, or a LlamaDesk .json export to import its conversations."
COMPOSER_HINT = "Drop a text file to add it to your message, or a .gguf model to load it."


def dropped_files(mime: QMimeData, *, on_composer: bool = False) -> list[Path]:
    """The local files of a drag that are ours: on the composer any local file, elsewhere .gguf and .json files
    only. Empty unless every item is one (a mixed drag is not ours)."""
    if not mime.hasUrls():
        return []
    paths = []
    for url in mime.urls():
        if not url.isLocalFile():
            return []
        path = Path(url.toLocalFile())
        if not on_composer and path.suffix.lower() not in (MODEL_SUFFIX, EXPORT_SUFFIX):
            return []
        paths.append(path)
    return paths


class FileDrop(QObject):
    """Accepts drops of model files and history exports on one window, and of text files on its composer.
    `import_export` imports a LlamaDesk JSON export (the history actions' transfer does it)."""

    def __init__(
        self,
        state: WindowState,
        window: QWidget,
        *,
        composer: Composer,
        picker: ModelPicker,
        paths: Paths,
        import_export: Callable[[Path], None],
    ) -> None:
        super().__init__(window)
        self.state, self.composer, self.picker, self.paths = state, composer, picker, paths
        self._import_export = import_export
        self.runner = TaskRunner(self, max_threads=1)
        self._composer = composer.edit.viewport()
        window.setAcceptDrops(True)
        window.installEventFilter(self)
        self._composer.installEventFilter(self)  # a text edit takes drops itself

    def shutdown(self) -> None:
        self.runner.shutdown()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        on_composer = watched is self._composer
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove) and isinstance(event, QDragMoveEvent):
            if dropped_files(event.mimeData(), on_composer=on_composer):
                event.acceptProposedAction()
                if isinstance(event, QDragEnterEvent):
                    self.state.show_notice(COMPOSER_HINT if on_composer else HINT, 4000)
                return True
            return False
        if kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            paths = dropped_files(event.mimeData(), on_composer=on_composer)
            if not paths:
                return False
            event.acceptProposedAction()
            self.open(paths, on_composer=on_composer)
            return True
        return False

    def open(self, paths: list[Path], *, on_composer: bool = False) -> None:
        """Adds text files to the message (on the composer), imports the exports (elsewhere), and uses the models
        where they lie; the last model dropped is loaded."""
        models = [p for p in paths if p.suffix.lower() == MODEL_SUFFIX]
        for path in paths:
            if path.suffix.lower() == MODEL_SUFFIX:
                continue
            if on_composer:
                self.attach(path)
            else:
                self._import_export(path)
        for i, path in enumerate(models):
            self._use_model(path, load=i == len(models) - 1)

    def attach(self, path: Path) -> bool:
        """Adds a text file to the message being written, at the cursor, on lines of its own."""
        try:
            block = attachment_text(path)
        except AttachmentError as exc:
            self.state.show_notice(str(exc), 8000)
            return False
        edit = self.composer.edit
        cursor = edit.textCursor()
        before = edit.toPlainText()[: cursor.position()]
        cursor.insertText(("\n" if before and not before.endswith("\n") else "") + block)
        edit.setTextCursor(cursor)
        edit.setFocus()
        self.state.show_notice(f"Added {path.name} to your message.", 4000)
        return True

    def _use_model(self, path: Path, *, load: bool) -> None:
        models_dir = self.paths.models

        def work(_ctx: TaskContext) -> LocalModel:
            return import_model(path, models_dir, "in_place")

        self.state.show_notice(f"Adding {path.name}…")
        self.runner.run_in_background(
            work, lambda model: self._added(model, load), lambda sentence: self._failed(path, sentence), name="drop"
        )

    def _added(self, model: LocalModel, load: bool) -> None:
        picker = self.picker
        picker.refresh()
        self.state.show_notice(f"Using {model.name} where it is ({model.path.parent}).", 8000)
        if not load:
            return
        picker.select_path(model.path)
        chosen = picker.model_for(model.path)
        if chosen is not None and not self.state.is_generating:
            picker.load(chosen)

    def _failed(self, path: Path, sentence: str) -> None:
        self.state.show_notice("")
        self.state.warn("Model not added", sentence)

"""The Library tab: models on disk with size, license and source; import, delete, disk usage, other apps' models."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.documents.embeddings import model_role
from llamadesk.core.library import (
    DiskUsage,
    FoundModel,
    LocalModel,
    delete_model,
    discover_other_apps,
    disk_usage,
    import_model,
    list_local_models,
)
from llamadesk.ui.models.common import MessageLine, human_size, make_table, right_aligned
from llamadesk.ui.workers import Task, TaskContext, TaskRunner

IMPORT_MODES = (
    ("Copy into the models folder", "copy"),
    ("Move into the models folder", "move"),
    ("Use where it is (no copy)", "in_place"),
)


ROLE_TIPS = {
    "embedding": "An embedding model, not a chat model: choose it in Documents → Search by meaning",
    "reranking": "A reranking model, not a chat model: it cannot chat",
}


class LibraryPage(QWidget):
    """Reads the disk in the background; `modelsChanged` after an import, a delete or a model used in place."""

    modelsChanged = Signal()

    def __init__(self, models_dir: Path, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.models_dir, self.runner = models_dir, runner
        self.models: list[LocalModel] = []
        self.found: list[FoundModel] = []
        self.usage: DiskUsage | None = None
        self.loaded = False
        self.discovered = False
        self._import_task: Task[LocalModel] | None = None
        self._scanned_once = False

        self.usage_label = QLabel("Reading the models folder…")
        self.usage_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = make_table(("Name", "Size", "License", "Source", "Location"), "libraryModels", 3)
        self.import_mode = QComboBox()
        for label, mode in IMPORT_MODES:
            self.import_mode.addItem(label, mode)
        self.import_button = QPushButton("Import…")
        self.delete_button = QPushButton("Delete…")
        self.refresh_button = QPushButton("Refresh")
        self.import_bar = QProgressBar()
        self.import_bar.setRange(0, 1000)
        self.import_bar.hide()
        self.cancel_import_button = QPushButton("Cancel import")
        self.cancel_import_button.hide()
        self.message = MessageLine()
        self.found_table = make_table(("App", "Name", "Size", "Path"), "libraryFound", 3)
        self.use_button = QPushButton("Use without copying")
        self.use_button.setToolTip("Adds the file to your library where it is; LlamaDesk never deletes it")
        self.scan_button = QPushButton("Scan again")
        self.found_note = QLabel("Looks in LM Studio, GPT4All, Ollama and the Hugging Face cache.")
        self.found_note.setEnabled(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.import_mode)
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.import_bar, 1)
        buttons.addWidget(self.cancel_import_button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.delete_button)
        found_box = QGroupBox("Found in other apps")
        found_layout = QVBoxLayout(found_box)
        found_layout.addWidget(self.found_table, 1)
        found_buttons = QHBoxLayout()
        found_buttons.addWidget(self.found_note, 1)
        found_buttons.addWidget(self.scan_button)
        found_buttons.addWidget(self.use_button)
        found_layout.addLayout(found_buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.usage_label)
        layout.addWidget(self.table, 3)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addWidget(found_box, 2)

        self.import_button.clicked.connect(self.ask_import)
        self.delete_button.clicked.connect(self.ask_delete)
        self.refresh_button.clicked.connect(self.refresh)
        self.cancel_import_button.clicked.connect(self._cancel_import)
        self.use_button.clicked.connect(self.use_found)
        self.scan_button.clicked.connect(self.discover)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.found_table.itemSelectionChanged.connect(self._update_buttons)
        self._update_buttons()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._scanned_once:  # other apps' folders are only read once the user looks at this tab
            self._scanned_once = True
            self.discover()

    # -- the models folder --------------------------------------------------------------------------------------
    def refresh(self) -> None:
        models_dir = self.models_dir
        self.roles: dict[Path, str] = getattr(self, "roles", {})  # path → "chat", "embedding" or "reranking"

        def work(_ctx: TaskContext) -> tuple[list[LocalModel], DiskUsage]:
            models = list_local_models(models_dir)
            for m in models:  # each GGUF's header read here, off the GUI thread (remembered by size and mtime)
                self.roles[m.path] = model_role(m.path)
            return models, disk_usage(models_dir)

        self.runner.run_in_background(work, self._show_models, self.message.show_error, name="list models")

    def _show_models(self, result: tuple[list[LocalModel], DiskUsage]) -> None:
        keep = self.current_model()
        self.models, self.usage = result
        self.loaded = True
        u = self.usage
        partial = f" · {human_size(u.partial_bytes)} in unfinished downloads" if u.partial_bytes else ""
        self.usage_label.setText(
            f"{len(self.models)} model{'s' if len(self.models) != 1 else ''} · {human_size(u.models_bytes)} in "
            f"{self.models_dir}{partial} · {human_size(u.free_bytes)} free of {human_size(u.total_bytes)}"
        )
        self.table.setRowCount(len(self.models))
        for row, m in enumerate(self.models):
            location = f"used in place: {m.path}" if m.external else str(m.path.relative_to(self.models_dir))
            cells = (
                QTableWidgetItem(m.name),
                right_aligned(human_size(m.size_bytes)),
                QTableWidgetItem(m.license or "—"),
                QTableWidgetItem(m.source),
                QTableWidgetItem(location),
            )
            cells[4].setToolTip(str(m.path))
            if self.roles.get(m.path) in ("embedding", "reranking"):  # not a chat model: for Documents' search
                cells[0].setText(f"{m.name} · {self.roles[m.path]}")
                cells[0].setToolTip(ROLE_TIPS[self.roles[m.path]])
            for col, item in enumerate(cells):
                self.table.setItem(row, col, item)
            if keep is not None and m.path == keep.path:
                self.table.selectRow(row)
        self._update_buttons()

    def current_model(self) -> LocalModel | None:
        rows = self.table.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows and rows[0].row() < len(self.models) else None

    def select_model(self, name: str) -> None:
        self.table.selectRow([m.name for m in self.models].index(name))

    # -- import -------------------------------------------------------------------------------------------------
    def ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a GGUF model", str(Path.home()), "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.import_file(Path(path), self.import_mode.currentData())

    def import_file(self, source: Path, mode: str, *, display_name: str = "") -> None:
        models_dir = self.models_dir

        def work(ctx: TaskContext) -> LocalModel:
            return import_model(
                source,
                models_dir,
                mode,  # type: ignore[arg-type]
                progress=lambda done, total: ctx.progress((done, total)),
                cancel=ctx.cancel,
                display_name=display_name,
            )

        self.message.show_note(f"Importing {source.name}…")
        self.import_bar.setValue(0)
        self.import_bar.setVisible(mode != "in_place")
        self.cancel_import_button.setVisible(mode != "in_place")
        self.import_button.setEnabled(False)
        self._import_task = self.runner.run_in_background(
            work, self._imported, self._import_failed, self._import_progress, name="import model"
        )

    def _import_progress(self, value: tuple[int, int]) -> None:
        done, total = value
        self.import_bar.setValue(int(1000 * done / total) if total else 0)

    def _cancel_import(self) -> None:
        if self._import_task is not None:
            self._import_task.cancel()

    def _import_ended(self) -> None:
        self._import_task = None
        self.import_bar.hide()
        self.cancel_import_button.hide()
        self.import_button.setEnabled(True)

    def _imported(self, model: LocalModel) -> None:
        self._import_ended()
        verb = "Using in place" if model.external else "Imported"
        self.message.show_note(f"{verb}: {model.name} ({human_size(model.size_bytes)}).")
        self.modelsChanged.emit()
        self.refresh()

    def _import_failed(self, message: str) -> None:
        self._import_ended()
        self.message.show_error(message)

    # -- delete -------------------------------------------------------------------------------------------------
    def ask_delete(self) -> None:
        model = self.current_model()
        if model is None:
            return
        if model.external:
            question = f"Remove {model.name} from your library? The file stays where it is:\n{model.path}"
        else:
            question = (
                f"Delete {model.name} ({human_size(model.size_bytes)})? The file is removed from disk:\n{model.path}"
            )
        answer = QMessageBox.question(
            self,
            "Delete model",
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        models_dir = self.models_dir
        self.delete_button.setEnabled(False)
        self.runner.run_in_background(
            lambda _ctx: delete_model(model, models_dir),
            lambda freed: self._deleted(model, freed),
            self._delete_failed,
            name="delete model",
        )

    def _deleted(self, model: LocalModel, freed: int) -> None:
        self.message.show_note(
            f"Removed {model.name} from the library."
            if model.external
            else f"Deleted {model.name}; {human_size(freed)} freed."
        )
        self.modelsChanged.emit()
        self.refresh()

    def _delete_failed(self, message: str) -> None:
        self.message.show_error(message)
        self._update_buttons()

    # -- other apps ---------------------------------------------------------------------------------------------
    def discover(self) -> None:
        self.scan_button.setEnabled(False)
        self.found_note.setText("Looking in LM Studio, GPT4All, Ollama and the Hugging Face cache…")
        self.runner.run_in_background(
            lambda _ctx: discover_other_apps(), self._show_found, self._discover_failed, name="discover models"
        )

    def _discover_failed(self, message: str) -> None:
        self.scan_button.setEnabled(True)
        self.found_note.setText(message)

    def _show_found(self, found: list[FoundModel]) -> None:
        self.found, self.discovered = found, True
        self.scan_button.setEnabled(True)
        self.found_note.setText(
            f"{len(found)} model{'s' if len(found) != 1 else ''} found in other apps."
            if found
            else "No models from LM Studio, GPT4All, Ollama or the Hugging Face cache."
        )
        self.found_table.setRowCount(len(found))
        for row, f in enumerate(found):
            cells = (
                QTableWidgetItem(f.app),
                QTableWidgetItem(f.name),
                right_aligned(human_size(f.size_bytes)),
                QTableWidgetItem(str(f.path)),
            )
            for col, item in enumerate(cells):
                self.found_table.setItem(row, col, item)
        self._update_buttons()

    def current_found(self) -> FoundModel | None:
        rows = self.found_table.selectionModel().selectedRows()
        return self.found[rows[0].row()] if rows and rows[0].row() < len(self.found) else None

    def use_found(self) -> None:
        found = self.current_found()
        if found is not None:
            self.import_file(found.path, "in_place", display_name=found.name)

    def _update_buttons(self) -> None:
        self.delete_button.setEnabled(self.current_model() is not None)
        in_use = {m.path for m in self.models if m.external}  # stored resolved
        found = self.current_found()
        self.use_button.setEnabled(found is not None and found.path not in in_use)

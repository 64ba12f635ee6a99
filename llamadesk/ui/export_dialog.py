"""File → Export… and Import…: which conversations, which format, where; the work runs in the query thread."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history import History, export_to_path, import_file
from llamadesk.ui.workers import BackgroundQueries

#: format → (label in the dialog, file-dialog filter, suffix)
FORMATS: dict[str, tuple[str, str, str]] = {
    "md": ("Markdown — for reading and editing", "Markdown (*.md)", ".md"),
    "html": ("HTML — for a web browser or printing", "HTML (*.html)", ".html"),
    "json": ("JSON — everything, to import again", "JSON (*.json)", ".json"),
}
IMPORT_FILTER = "LlamaDesk export (*.json);;All files (*)"


def default_name(titles: list[str], fmt: str) -> str:
    """A file name for the export: the conversation's title for one, else a general one."""
    stem = "LlamaDesk conversations"
    if len(titles) == 1:
        stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", titles[0]).strip(" .")[:80] or stem
    return stem + FORMATS[fmt][2]


def with_suffix(path: str, fmt: str) -> Path:
    """The chosen path, with the format's suffix added when the name has none of it."""
    chosen = Path(path)
    suffix = FORMATS[fmt][2]
    return chosen if chosen.suffix.lower() == suffix else chosen.with_name(chosen.name + suffix)


class ExportDialog(QDialog):
    """Which conversations (those selected in the sidebar, or all) and which format."""

    def __init__(self, selected: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export conversations")
        self.setObjectName("exportDialog")
        self.selected_button = QRadioButton(
            "The selected conversation" if selected == 1 else f"The {selected} selected conversations", self
        )
        self.all_button = QRadioButton("All conversations", self)
        self.scope = QButtonGroup(self)
        self.scope.addButton(self.selected_button)
        self.scope.addButton(self.all_button)
        self.selected_button.setEnabled(selected > 0)
        (self.selected_button if selected > 0 else self.all_button).setChecked(True)
        self.format_box = QComboBox(self)
        self.format_box.setAccessibleName("Export format")
        for fmt, (label, _filter, _suffix) in FORMATS.items():
            self.format_box.addItem(label, fmt)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Export…")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Format:", self.format_box)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Export:", self))
        layout.addWidget(self.selected_button)
        layout.addWidget(self.all_button)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def fmt(self) -> str:
        return str(self.format_box.currentData())

    def set_fmt(self, fmt: str) -> None:
        self.format_box.setCurrentIndex(self.format_box.findData(fmt))

    def everything(self) -> bool:
        return self.all_button.isChecked()


class HistoryTransfer(QObject):
    """Export and import for the window: dialogs here, the reading and writing in the query thread."""

    exported = Signal(str, int)  # path, how many conversations
    imported = Signal(list)  # the new conversation ids
    problem = Signal(str, str)  # title, sentence

    def __init__(
        self, history: History, runner: BackgroundQueries, parent: QWidget, selected: Callable[[], list[int]]
    ) -> None:
        super().__init__(parent)
        self.history, self.runner, self.parent_widget, self.selected = history, runner, parent, selected
        self.dialog: ExportDialog | None = None

    # --- export -------------------------------------------------------------------------------------------------
    def export(self) -> ExportDialog:
        """Opens the export dialog (not modal); its Export… button asks where to save."""
        if self.dialog is not None:
            self.dialog.deleteLater()
        self.dialog = dialog = ExportDialog(len(self.selected()), self.parent_widget)
        dialog.accepted.connect(
            lambda: self.export_to_file(None if dialog.everything() else self.selected(), dialog.fmt())
        )
        dialog.open()
        return dialog

    def export_to_file(self, cids: list[int] | None, fmt: str) -> bool:
        """Asks for a file name, then writes `cids` (None: all) there in the query thread."""
        titles = []
        if cids is not None and len(cids) == 1:
            try:
                titles = [self.history.get_conversation(cids[0]).title]
            except LlamaDeskError:  # a title for the file name only: a missing one is no reason to stop
                titles = []
        folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation) or str(Path.home())
        name, _chosen = QFileDialog.getSaveFileName(
            self.parent_widget,
            "Export conversations",
            str(Path(folder) / default_name(titles, fmt)),
            FORMATS[fmt][1],
        )
        if not name:
            return False
        path = with_suffix(name, fmt)
        self.runner.submit(
            "export",
            lambda h: export_to_path(h, cids, fmt, path),
            lambda count: self.exported.emit(str(path), int(count)),
            lambda sentence: self.problem.emit("Conversations not exported", sentence),
        )
        return True

    # --- import -------------------------------------------------------------------------------------------------
    def import_conversations(self) -> bool:
        """Asks for a LlamaDesk JSON export and adds its conversations (all or nothing) in the query thread."""
        folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation) or str(Path.home())
        name, _chosen = QFileDialog.getOpenFileName(self.parent_widget, "Import conversations", folder, IMPORT_FILTER)
        if not name:
            return False
        self.import_path(Path(name))
        return True

    def import_path(self, path: Path) -> None:
        """Adds the conversations of the LlamaDesk JSON export at `path` (all or nothing) in the query thread."""
        self.runner.submit(
            "import",
            lambda h: import_file(h, path),
            lambda ids: self.imported.emit(list(ids)),
            lambda sentence: self.problem.emit("Conversations not imported", sentence),
        )

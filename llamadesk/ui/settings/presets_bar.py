"""The preset chooser: built-in and your own presets, with Save, Delete, Import and Export."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.presets import PresetStore, preset_values
from llamadesk.core.sampling import PRESETS, SamplingParams

CUSTOM = "Custom"
FILE_FILTER = "LlamaDesk presets (*.json);;All files (*)"


class PresetBar(QWidget):
    """Chooses presets and manages yours. It only reports a choice; the panel applies it."""

    presetChosen = Signal(object)  # SamplingParams
    notice = Signal(str)

    def __init__(self, store: PresetStore | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.combo = QComboBox(self)
        self.combo.setObjectName("presetCombo")
        self.combo.setAccessibleName("Preset")
        self.combo.setToolTip("Sets temperature, top-p, top-k, min-p, penalties and Mirostat together.")
        self.save_button = self._button("Save…", "savePreset", "Save preset", "Save the current values as a preset")
        self.delete_button = self._button("Delete", "deletePreset", "Delete preset", "Delete the chosen preset")
        self.import_button = self._button("Import…", "importPreset", "Import presets", "Add presets from a file")
        self.export_button = self._button("Export…", "exportPreset", "Export presets", "Write your presets to a file")
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for b in (self.save_button, self.delete_button, self.import_button, self.export_button):
            b.setVisible(store is not None)
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.combo)
        layout.addLayout(buttons)
        self.combo.activated.connect(self._on_activated)
        self.save_button.clicked.connect(self.save_current)
        self.delete_button.clicked.connect(self.delete_current)
        self.import_button.clicked.connect(self.import_presets)
        self.export_button.clicked.connect(self.export_presets)
        self.current_params = SamplingParams()
        self.refill()

    def _button(self, text: str, name: str, accessible: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setObjectName(name)
        button.setToolTip(tip)
        button.setAccessibleName(accessible)
        button.setAutoRaise(True)
        return button

    def names(self) -> list[str]:
        return self.store.names() if self.store is not None else list(PRESETS)

    def get(self, name: str) -> SamplingParams | None:
        return self.store.get(name) if self.store is not None else PRESETS.get(name)

    def refill(self) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem(CUSTOM)
        self.combo.addItems(list(PRESETS))
        if self.store is not None and self.store.user_names():
            self.combo.insertSeparator(self.combo.count())
            self.combo.addItems(self.store.user_names())
        self.combo.blockSignals(False)
        self.sync(self.current_params)

    def sync(self, params: SamplingParams) -> None:
        """Shows which preset the values match (Custom when none)."""
        self.current_params = params
        if self.store is not None:
            match = self.store.matching(params) or CUSTOM
        else:
            match = next((n for n, p in PRESETS.items() if preset_values(p) == preset_values(params)), CUSTOM)
        self.combo.blockSignals(True)
        self.combo.setCurrentText(match)
        self.combo.blockSignals(False)
        user = self.store is not None and match != CUSTOM and not self.store.is_builtin(match)
        self.delete_button.setEnabled(user)
        self.export_button.setEnabled(self.store is not None and bool(self.store.user_names()))

    def _on_activated(self, index: int) -> None:
        preset = self.get(self.combo.itemText(index))
        if preset is not None:
            self.presetChosen.emit(preset)

    # --- your presets ------------------------------------------------------------------------------------------
    def save_current(self) -> None:
        if self.store is None:
            return
        name, ok = QInputDialog.getText(self, "Save preset", "Name of the new preset:")
        if not ok or not name.strip():
            return
        if self.store.get(" ".join(name.split())) is not None and not self.store.is_builtin(" ".join(name.split())):
            answer = QMessageBox.question(self, "Save preset", f"Replace your preset “{name.strip()}”?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        try:
            saved = self.store.save(name, self.current_params)
        except LlamaDeskError as exc:
            QMessageBox.warning(self, "Preset not saved", str(exc))
            return
        self.refill()
        self.notice.emit(f"Saved the preset “{saved}”.")

    def delete_current(self) -> None:
        name = self.combo.currentText()
        if self.store is None or self.store.is_builtin(name) or name == CUSTOM:
            return
        answer = QMessageBox.question(self, "Delete preset", f"Delete your preset “{name}”?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.store.delete(name)
        except LlamaDeskError as exc:
            QMessageBox.warning(self, "Preset not deleted", str(exc))
            return
        self.refill()
        self.notice.emit(f"Deleted the preset “{name}”.")

    def import_presets(self) -> None:
        if self.store is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import presets", str(Path.home()), FILE_FILTER)
        if not path:
            return
        try:
            names = self.store.import_file(Path(path))
        except LlamaDeskError as exc:
            QMessageBox.warning(self, "Presets not imported", str(exc))
            return
        self.refill()
        self.notice.emit(f"Imported {len(names)} preset(s): {', '.join(names)}.")

    def export_presets(self) -> None:
        if self.store is None:
            return
        default = str(Path.home() / "llamadesk-presets.json")
        path, _ = QFileDialog.getSaveFileName(self, "Export presets", default, FILE_FILTER)
        if not path:
            return
        try:
            count = self.store.export(Path(path))
        except LlamaDeskError as exc:
            QMessageBox.warning(self, "Presets not exported", str(exc))
            return
        self.notice.emit(f"Exported {count} preset(s) to {path}.")

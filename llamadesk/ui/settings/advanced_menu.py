"""Where the advanced model settings live in the window: View → Advanced model settings…, a button in the
settings panel's Model group, the preview of what Auto would do, and the offer to reload the model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QGridLayout, QGroupBox, QMenu, QMessageBox, QPushButton, QWidget

from llamadesk.core.engines.api import GPU_LAYERS_AUTO, LoadOptions
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.settings import FLASH_ATTN, AppSettings
from llamadesk.ui.settings.advanced import FIELDS, AdvancedSettingsDialog, Preview

if TYPE_CHECKING:
    from llamadesk.core.gguf_header import GGUFHeader
    from llamadesk.ui.model_picker import ModelPicker
    from llamadesk.ui.settings.sampling_panel import SamplingPanel
    from llamadesk.ui.window_state import WindowState

log = logging.getLogger(__name__)


class AdvancedSettings(QObject):
    """Puts the dialog behind View → Advanced model settings… and a button in the settings panel's Model group;
    keeps the choices in the window's settings and offers to reload the model when they changed."""

    applied = Signal(bool)  # whether anything changed

    def __init__(
        self, state: WindowState, parent: QWidget, view_menu: QMenu, panel: SamplingPanel, picker: ModelPicker,
        settings: AppSettings, save_settings: Callable[[], None],
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.state, self.parent_widget, self.panel, self.picker = state, parent, panel, picker
        self.settings, self.save_settings = settings, save_settings  # the window's settings; it writes them to disk
        self.dialog: AdvancedSettingsDialog | None = None
        self.action = QAction("Advanced model settings…", parent)
        self.action.setObjectName("advancedSettingsAction")
        tip = "GPU layers, threads, flash attention, KV cache types, mmap and mlock"
        self.action.setToolTip(tip)
        self.action.setStatusTip(tip)
        self.action.triggered.connect(self.open)
        first = view_menu.actions()
        if len(first) > 1:
            view_menu.insertAction(first[1], self.action)  # after the settings panel's toggle
        else:
            view_menu.addAction(self.action)
        self.button = QPushButton("Advanced…")
        self.button.setObjectName("advancedSettingsButton")
        self.button.setAccessibleName("Advanced model settings")
        self.button.setToolTip(f"Advanced model settings: {tip}.")
        self.button.clicked.connect(self.open)
        box = panel.findChild(QGroupBox, "modelBox")
        if box is not None and isinstance(box.layout(), QGridLayout):
            grid = cast(QGridLayout, box.layout())
            grid.addWidget(self.button, grid.rowCount(), 0, 1, 2, Qt.AlignmentFlag.AlignLeft)

    def header(self) -> GGUFHeader | None:
        """The header of the loaded model, else of the model chosen in the picker."""
        info = self.state.model_info
        path = info.path if info is not None else getattr(self.picker.current_model(), "path", None)
        if path is None:
            return None
        try:
            from llamadesk.core.gguf_header import read_header

            return read_header(path)
        except (LlamaDeskError, OSError) as exc:
            log.info("No header for %s: %s", path, exc)
            return None

    def layer_count(self) -> int | None:
        """The loaded model's layers, else those of the model chosen in the picker (from its header)."""
        info = self.state.model_info
        if info is not None and info.n_layers:
            return info.n_layers
        header = self.header()
        return header.n_layers if header is not None else None

    def preview(self) -> Preview | None:
        """What Auto would do with that model at the panel's context on this machine now (None: no model)."""
        header = self.header()
        if header is None:
            return None
        try:
            from llamadesk.core import hardware

            devices = hardware.list_devices()
        except (OSError, AttributeError) as exc:  # a llama.cpp library without the registry: no preview
            log.info("No device list: %s", exc)
            return None
        n_ctx = self.panel.n_ctx()

        def text(values: dict[str, Any]) -> str:
            if values["n_gpu_layers"] != GPU_LAYERS_AUTO:
                return ""
            options = LoadOptions(
                Path(), n_ctx=n_ctx, flash_attn=FLASH_ATTN[values["flash_attn"]], type_k=values["type_k"],
                type_v=values["type_v"],
            )  # fmt: skip
            return hardware.auto_gpu_layers(header, options, devices)[1]

        return text

    def open(self) -> AdvancedSettingsDialog:
        """Shows the dialog (window-modal, not blocking the caller); OK applies."""
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = dialog = AdvancedSettingsDialog(
            self.settings, self.layer_count(), self.parent_widget, preview=self.preview()
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.apply(dialog.box.values()))
        dialog.destroyed.connect(lambda *_: setattr(self, "dialog", None))
        dialog.open()
        return dialog

    def apply(self, values: dict[str, Any]) -> bool:
        """Stores the values; when they differ from the loaded model's, offers to reload it now."""
        settings = self.settings
        given = [name for name in FIELDS if name in values]  # a caller may set only some of them
        changed = any(getattr(settings, name) != values[name] for name in given)
        for name in given:
            setattr(settings, name, values[name])
        self.save_settings()
        if changed:
            self._offer_reload()
        self.applied.emit(changed)
        return changed

    def _offer_reload(self) -> None:
        state = self.state
        model = state.loaded_model
        if state.model_info is None or state.is_loading or model is None:
            state.show_notice("The new model settings apply the next time a model is loaded.", 5000)
            return
        answer = QMessageBox.question(
            self.parent_widget,
            "Reload the model?",
            f"Reload {model.name} now so that the new settings take effect?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes,
        )
        if answer == QMessageBox.StandardButton.Yes:
            if not state.closed:
                self.picker.load(model)
        else:
            state.show_notice("The new model settings apply the next time a model is loaded.", 5000)

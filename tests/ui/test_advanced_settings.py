"""Advanced model settings: the controls, what is stored, what the next load gets, and the offer to reload."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QWidget
from pytestqt.qtbot import QtBot

from llamadesk.core import hardware
from llamadesk.core.engines.api import GPU_LAYERS_ALL, GPU_LAYERS_AUTO, LoadOptions
from llamadesk.core.engines.local import default_threads
from llamadesk.core.errors import InvalidSetting
from llamadesk.core.settings import AppSettings, load_settings
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.settings.advanced import AdvancedModelBox, AdvancedSettingsDialog
from tests.ui.conftest import LOAD_TIMEOUT_MS, Dialogs


@pytest.mark.parametrize("n_gpu_layers", [GPU_LAYERS_AUTO, GPU_LAYERS_ALL, 0, 12])
def test_the_box_shows_and_gives_back_every_setting(qtbot: QtBot, n_gpu_layers: int) -> None:
    box = AdvancedModelBox()
    qtbot.addWidget(box)
    box.set_layer_count(30)
    stored = AppSettings(
        n_threads=3, n_gpu_layers=n_gpu_layers, flash_attn="on", type_k="q8_0", type_v="q4_0",
        use_mmap=False, use_mlock=True, prompt_lookup=True,
    )  # fmt: skip
    box.set_values(stored)
    assert box.values() == {
        "n_threads": 3, "n_gpu_layers": n_gpu_layers, "flash_attn": "on", "type_k": "q8_0", "type_v": "q4_0",
        "use_mmap": False, "use_mlock": True, "prompt_lookup": True, "draft_model": "",
    }  # fmt: skip
    assert box.gpu_spin.isEnabled() is (n_gpu_layers > 0)  # the number matters only in manual mode
    assert box.problem() == ""


def test_slider_ends_at_the_models_layers_and_threads_default_is_shown(qtbot: QtBot) -> None:
    box = AdvancedModelBox()
    qtbot.addWidget(box)
    box.set_layer_count(30)
    assert box.gpu_slider.maximum() == box.gpu_spin.maximum() == 31  # 30 blocks and the output layer
    assert box.gpu_of.text() == "of 31"
    box.set_values(AppSettings(n_gpu_layers=7))
    box.gpu_slider.setValue(20)
    assert box.gpu_spin.value() == 20 and box.values()["n_gpu_layers"] == 20
    box.set_values(AppSettings())
    assert box.threads_spin.text() == f"Default ({default_threads()})" and box.values()["n_threads"] is None
    assert box.values()["n_gpu_layers"] == GPU_LAYERS_AUTO  # the default


def test_quantized_v_with_flash_attention_off_is_refused_in_one_sentence(qtbot: QtBot) -> None:
    dialog = AdvancedSettingsDialog(AppSettings(), 4)
    qtbot.addWidget(dialog)
    dialog.show()
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert ok.isEnabled()
    with qtbot.waitSignal(dialog.box.changed):
        dialog.box.flash_combo.setCurrentIndex(dialog.box.flash_combo.findData("off"))
    dialog.box.type_v.setCurrentIndex(dialog.box.type_v.findData("q8_0"))
    with pytest.raises(InvalidSetting) as expected:
        LoadOptions(Path(), flash_attn=False, type_v="q8_0").check()
    assert dialog.box.problem() == str(expected.value)
    assert dialog.box.problem_label.isVisible() and dialog.box.problem_label.text() == str(expected.value)
    assert not ok.isEnabled() and ok.toolTip() == str(expected.value)
    dialog.accept()  # Enter in the dialog: refused while the settings cannot work
    assert dialog.isVisible() and dialog.result() == 0
    dialog.box.flash_combo.setCurrentIndex(dialog.box.flash_combo.findData("auto"))
    assert ok.isEnabled() and not dialog.box.problem_label.isVisible()
    # a quantized K cache alone needs nothing
    dialog.box.type_v.setCurrentIndex(dialog.box.type_v.findData("f16"))
    dialog.box.flash_combo.setCurrentIndex(dialog.box.flash_combo.findData("off"))
    dialog.box.type_k.setCurrentIndex(dialog.box.type_k.findData("q4_0"))
    assert ok.isEnabled()


def test_restore_defaults(qtbot: QtBot) -> None:
    dialog = AdvancedSettingsDialog(AppSettings(n_threads=1, n_gpu_layers=0, use_mlock=True), 4)
    qtbot.addWidget(dialog)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults), Qt.MouseButton.LeftButton)
    defaults = AppSettings()
    assert dialog.box.values() == {k: getattr(defaults, k) for k in dialog.box.values()}


def test_every_control_has_a_name_a_tip_and_is_reached_by_tab(qtbot: QtBot) -> None:
    dialog = AdvancedSettingsDialog(AppSettings(n_gpu_layers=5), 4)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    box = dialog.box
    controls: list[QWidget] = [box.gpu_mode, box.gpu_slider, box.gpu_spin, box.threads_spin, box.flash_combo,
                               box.type_k, box.type_v, box.mmap_check, box.mlock_check]  # fmt: skip
    for control in controls:
        assert control.accessibleName() and control.toolTip(), control.objectName()
    reached = []
    box.gpu_mode.setFocus()
    qtbot.waitUntil(box.gpu_mode.hasFocus)
    for _ in range(len(controls) + 4):
        reached.append(dialog.focusWidget())
        qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
    missing = [c.objectName() for c in controls if c not in reached]
    assert not missing, missing


def test_layer_count_comes_from_the_chosen_models_header(
    make_window: Callable[..., MainWindow], models_dir: Path, qtbot: QtBot
) -> None:
    window = make_window(auto_load=False)
    assert window.picker.current_model() is not None
    assert window.advanced_settings.layer_count() == 2  # the tiny model's blocks
    dialog = window.advanced_settings.open()
    assert dialog.box.gpu_slider.maximum() == 3
    # Auto's preview for that model at the panel's context on this machine (hardware.auto_gpu_layers)
    box = dialog.box
    assert box.gpu_mode.currentData() == GPU_LAYERS_AUTO
    if not hardware.snapshot().gpus:
        expected = "GPU layers are on auto and no GPU device was found, so all layers run on the CPU."
        assert box.offload_label.text() == expected and not box.offload_label.isHidden()
    box.gpu_mode.setCurrentIndex(box.gpu_mode.findData(0))
    assert box.offload_label.isHidden()
    dialog.reject()


def test_the_view_menu_and_the_panel_open_the_dialog(make_window: Callable[..., MainWindow], qtbot: QtBot) -> None:
    window = make_window(auto_load=False)
    view = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "View")
    assert window.advanced_settings.action in view.actions()
    button = window.advanced_settings.button
    assert not button.isVisibleTo(window.panel)  # an expert's button: behind "Show all settings" (issue 20)
    qtbot.mouseClick(window.panel.show_all_button, Qt.MouseButton.LeftButton)
    assert button.isVisibleTo(window.panel) and button.accessibleName() and button.toolTip()
    qtbot.waitUntil(lambda: button.isVisible() and button.height() > 0)  # laid out once shown
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    dialog = window.advanced_settings.dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    assert dialog.box.gpu_of.text() == "layers"  # no model to read the layers from
    dialog.reject()


def test_settings_are_stored_and_reach_the_next_load(
    make_window: Callable[..., MainWindow], paths: Paths, models_dir: Path, dialogs: Dialogs
) -> None:
    window = make_window(auto_load=False)
    values = {"n_threads": 2, "n_gpu_layers": 7, "flash_attn": "on", "type_k": "q8_0", "type_v": "q8_0",
              "use_mmap": False, "use_mlock": True}  # fmt: skip
    assert window.advanced_settings.apply(values) is True
    assert dialogs.questions == []  # no model loaded: nothing to reload
    stored = load_settings(paths.settings_file)
    assert {k: getattr(stored, k) for k in values} == values
    model = window.picker.current_model()
    assert model is not None
    options = window.load_options(model)
    assert (options.n_threads, options.n_gpu_layers, options.flash_attn, options.type_k, options.type_v) == (
        2, 7, True, "q8_0", "q8_0")  # fmt: skip
    assert (options.use_mmap, options.use_mlock) == (False, True)
    assert window.advanced_settings.apply(values) is False  # the same again: nothing changed


def test_bad_stored_values_fall_back_to_defaults(paths: Paths) -> None:
    paths.settings_file.write_text(json.dumps({"n_threads": 3, "flash_attn": "sometimes", "type_v": "q2_k",
                                               "n_gpu_layers": -9, "use_mlock": "yes"}))  # fmt: skip
    settings = load_settings(paths.settings_file)
    defaults = AppSettings()
    assert settings.n_threads == 3
    assert (settings.flash_attn, settings.type_v, settings.n_gpu_layers, settings.use_mlock) == (
        defaults.flash_attn, defaults.type_v, defaults.n_gpu_layers, defaults.use_mlock)  # fmt: skip


@pytest.mark.parametrize("reload", [True, False])
def test_changing_settings_with_a_model_loaded_offers_to_reload(
    make_window: Callable[..., MainWindow], models_dir: Path, dialogs: Dialogs, qtbot: QtBot, reload: bool
) -> None:
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    first = window.model_info
    assert first is not None and first.n_gpu_layers_requested == GPU_LAYERS_AUTO and first.type_k == "f16"
    dialogs.answer = dialogs.answer.Yes if reload else dialogs.answer.No
    values = {"n_threads": 1, "n_gpu_layers": GPU_LAYERS_AUTO, "flash_attn": "on", "type_k": "q8_0",
              "type_v": "q8_0", "use_mmap": True, "use_mlock": False}  # fmt: skip
    window.advanced_settings.apply(values)
    assert len(dialogs.questions) == 1 and "tiny-chatml" in dialogs.questions[0]
    if reload:
        qtbot.waitUntil(lambda: window.model_info is not first and window.model_info is not None,
                        timeout=LOAD_TIMEOUT_MS)  # fmt: skip
        info = window.model_info
        assert info is not None and (info.type_k, info.type_v, info.flash_attn) == ("q8_0", "q8_0", "on")
    else:
        assert window.model_info is first
        assert "next time a model is loaded" in window.statusBar().currentMessage()


def test_a_draft_model_is_a_stored_setting_and_cannot_go_with_prompt_lookup(qtbot: QtBot, tmp_path: Path) -> None:
    box = AdvancedModelBox()
    qtbot.addWidget(box)
    box.set_values(AppSettings(draft_model=str(tmp_path / "draft.gguf")))
    assert box.values()["draft_model"] == str(tmp_path / "draft.gguf") and box.problem() == ""
    assert AppSettings(draft_model=str(tmp_path / "d.gguf")).load_kwargs()["draft_model"] == tmp_path / "d.gguf"
    assert AppSettings().load_kwargs()["draft_model"] is None
    box.lookup_check.setChecked(True)
    assert "choose one" in box.problem() and box.problem_label.isVisibleTo(box)
    box.draft_edit.clear()
    assert box.problem() == ""

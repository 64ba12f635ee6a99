"""The settings panel as a newcomer meets it (issue 20, defect 3): the few controls most people touch, theme and
text size right after them, "Show all settings" for the rest (remembered), explanations shown inside the panel on
demand; and per-model settings: a model gets back the settings last used with it, and Reset is one click."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from llamadesk.core.sampling import RANGES, SamplingParams
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.settings.sampling_panel import BASIC, SamplingPanel

LOAD_TIMEOUT_MS = 120_000
EXPERT = [name for name in RANGES if name not in BASIC]


def shown(widget: QWidget, panel: SamplingPanel) -> bool:
    return widget.isVisibleTo(panel)


def test_the_panel_opens_on_the_few_controls_most_people_touch(qtbot: QtBot) -> None:
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    panel.show()
    for widget in (panel.system_prompt_edit, panel.preset_combo, panel.rows["temperature"].spin,
                   panel.rows["max_tokens"].spin, panel.appearance_box.theme_combo, panel.appearance_box.font_spin,
                   panel.show_all_button, panel.model_reset):  # fmt: skip
        assert shown(widget, panel), widget.objectName()
    for name in EXPERT:  # typical-p, Mirostat tau/eta… wait behind "Show all settings"
        assert not shown(panel.rows[name].spin, panel), name
    for widget in (panel.seed_spin, panel.random_seed, panel.n_ctx_spin, panel.context_box.policy_combo):
        assert not shown(widget, panel)
    assert panel.show_all_button.text() == "Show all settings"
    assert panel.appearance_box.y() < panel.show_all_button.y()


def test_show_all_settings_opens_the_rest_below_theme_and_text_size(qtbot: QtBot) -> None:
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    panel.show()
    with qtbot.waitSignal(panel.showAllChanged) as blocker:
        qtbot.mouseClick(panel.show_all_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [True]
    for name in RANGES:
        assert shown(panel.rows[name].spin, panel), name
    assert shown(panel.n_ctx_spin, panel) and shown(panel.random_seed, panel)
    assert panel.show_all_button.text() == "Show fewer settings"
    assert panel.show_all_button.accessibleName() == "Show fewer settings"
    theme_bottom = panel.appearance_box.mapTo(panel, panel.appearance_box.rect().bottomLeft()).y()
    expert_top = panel.rows["typical_p"].spin.mapTo(panel, panel.rows["typical_p"].spin.rect().topLeft()).y()
    assert theme_bottom < expert_top  # never buried below the expert sliders
    qtbot.mouseClick(panel.show_all_button, Qt.MouseButton.LeftButton)
    assert not shown(panel.rows["mirostat_tau"].spin, panel)


def test_each_explanation_shows_inside_the_panel_wrapped(qtbot: QtBot) -> None:
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    panel.resize(300, 900)
    panel.set_show_all(True)
    panel.show()
    for name, rng in RANGES.items():
        row = panel.rows[name]
        assert not shown(row.help.text, panel)
        assert row.help.button.accessibleName() == f"Explain {rng.label}"
        qtbot.mouseClick(row.help.button, Qt.MouseButton.LeftButton)
        assert shown(row.help.text, panel) and row.help.text.text() == rng.help
        assert row.help.text.wordWrap()
        qtbot.waitUntil(lambda row=row: row.help.text.width() > 0)
        right = row.help.text.mapTo(panel, row.help.text.rect().topRight()).x()
        assert right <= panel.width(), f"{name}'s explanation runs out of the panel"
        qtbot.mouseClick(row.help.button, Qt.MouseButton.LeftButton)
        assert not shown(row.help.text, panel)
    for toggle in (panel.prompt_help, panel.preset_help, panel.seed_help, panel.ctx_help):
        qtbot.mouseClick(toggle.button, Qt.MouseButton.LeftButton)
        assert shown(toggle.text, panel) and toggle.text.text() and toggle.button.accessibleName()


def test_new_controls_are_reachable_by_tab_and_named(qtbot: QtBot) -> None:
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWindow() is not None)
    panel.system_prompt_edit.setFocus()
    qtbot.waitUntil(panel.system_prompt_edit.hasFocus)
    reached: list[QWidget] = []
    for _ in range(60):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        focused = QApplication.focusWidget()
        if focused is not None:
            reached.append(focused)
    wanted = [panel.show_all_button, panel.model_reset, panel.prompt_help.button, panel.rows["temperature"].help.button]
    for widget in wanted:
        assert widget in reached, widget.objectName()
        assert widget.accessibleName()


def test_the_choice_is_remembered(make_window: Callable[..., MainWindow], models_dir: Path, qtbot: QtBot,
                                  paths: Paths) -> None:  # fmt: skip
    first = make_window(auto_load=False)
    assert not first.panel.showing_all()
    qtbot.mouseClick(first.panel.show_all_button, Qt.MouseButton.LeftButton)
    first.close()
    assert "show_all_settings=true" in (paths.config / "ui.ini").read_text()
    second = make_window(auto_load=False)
    assert second.panel.showing_all() and second.panel.rows["typical_p"].spin.isVisibleTo(second)


def _load(window: MainWindow, name: str, qtbot: QtBot) -> None:
    model = next(m for m in window.picker.models() if m.path.name == name)
    window.picker.select_path(model.path)
    window.load_model(model)
    qtbot.waitUntil(
        lambda: window.model_info is not None and window.model_info.path.name == name and not window.is_loading,
        timeout=LOAD_TIMEOUT_MS,
    )


def test_a_model_gets_back_the_settings_last_used_with_it(
    make_window: Callable[..., MainWindow], models_dir: Path, paths: Paths, qtbot: QtBot
) -> None:
    shutil.copy(models_dir / "tiny-chatml.gguf", models_dir / "tiny-other.gguf")
    window = make_window(auto_load=False)
    window.picker.refresh()
    qtbot.waitUntil(lambda: len(window.picker.models()) == 2)
    temperature = window.panel.rows["temperature"].spin
    _load(window, "tiny-chatml.gguf", qtbot)
    temperature.setValue(1.3)  # as the user sets it
    window.save_settings()
    _load(window, "tiny-other.gguf", qtbot)
    temperature.setValue(0.4)
    window.save_settings()
    _load(window, "tiny-chatml.gguf", qtbot)
    qtbot.waitUntil(lambda: window.panel.params().temperature == 1.3)
    _load(window, "tiny-other.gguf", qtbot)
    qtbot.waitUntil(lambda: window.panel.params().temperature == 0.4)
    stored = json.loads((paths.config / "model_settings.json").read_text(encoding="utf-8"))["models"]
    assert stored["tiny-chatml.gguf"]["temperature"] == 1.3 and stored["tiny-other.gguf"]["temperature"] == 0.4


def test_reset_to_the_model_defaults_is_one_click(
    make_window: Callable[..., MainWindow], models_dir: Path, paths: Paths, qtbot: QtBot
) -> None:
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    panel = window.panel
    panel.rows["temperature"].spin.setValue(1.7)
    panel.rows["top_k"].spin.setValue(3)
    panel.random_seed.setChecked(False)
    assert panel.params() != SamplingParams()
    assert "tiny-chatml" in panel.model_reset.toolTip()
    with qtbot.waitSignal(panel.paramsChanged):
        qtbot.mouseClick(panel.model_reset, Qt.MouseButton.LeftButton)
    assert panel.params() == SamplingParams()
    window.save_settings()
    stored = json.loads((paths.config / "model_settings.json").read_text(encoding="utf-8"))["models"]
    assert SamplingParams.from_dict(stored["tiny-chatml.gguf"]) == SamplingParams()


def test_reset_puts_back_what_the_model_file_recommends(
    make_window: Callable[..., MainWindow], paths: Paths, tmp_path: Path, qtbot: QtBot
) -> None:
    from gguf_factory import write_tiny_llama

    write_tiny_llama(
        paths.models / "recommends.gguf", extra={"general.sampling.temp": 0.3, "general.sampling.top_k": 12}
    )
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    window.panel.rows["temperature"].spin.setValue(1.5)
    qtbot.mouseClick(window.panel.model_reset, Qt.MouseButton.LeftButton)
    assert window.panel.params() == SamplingParams(temperature=0.3, top_k=12)

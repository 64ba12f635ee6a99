"""Presets in the real window: save yours, choose it, export, delete, import; per-conversation settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.presets import PresetStore
from llamadesk.core.sampling import PRESETS, RANGES
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000


def choose(window: MainWindow, name: str) -> None:
    combo = window.panel.preset_combo
    combo.setCurrentText(name)
    combo.activated.emit(combo.currentIndex())


def test_save_choose_export_delete_and_import_a_preset(
    window: MainWindow, paths: Paths, tmp_path: Path, dialogs: Any, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = window.panel
    panel.rows["temperature"].set_value(0.35)
    panel.rows["top_k"].spin.setValue(12)
    assert panel.preset_combo.currentText() == "Custom"
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Focused", True))
    qtbot.mouseClick(panel.presets.save_button, Qt.MouseButton.LeftButton)
    assert panel.preset_combo.currentText() == "Focused"
    assert PresetStore(paths.config / "presets.json").get("Focused").top_k == 12  # type: ignore[union-attr]

    max_tokens = panel.params().max_tokens
    choose(window, "Creative")
    assert panel.params().temperature == PRESETS["Creative"].temperature
    choose(window, "Focused")
    params = panel.params()
    assert (params.temperature, params.top_k, params.max_tokens) == (0.35, 12, max_tokens)
    assert panel.presets.delete_button.isEnabled()

    exported = tmp_path / "shared.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(exported), ""))
    qtbot.mouseClick(panel.presets.export_button, Qt.MouseButton.LeftButton)
    assert json.loads(exported.read_text())["presets"]["Focused"]["top_k"] == 12
    assert "Exported 1 preset" in window.statusBar().currentMessage()

    dialogs.answer = QMessageBox.StandardButton.Yes
    qtbot.mouseClick(panel.presets.delete_button, Qt.MouseButton.LeftButton)
    assert "Focused" not in [panel.preset_combo.itemText(i) for i in range(panel.preset_combo.count())]
    assert panel.preset_combo.currentText() == "Custom"

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(exported), ""))
    qtbot.mouseClick(panel.presets.import_button, Qt.MouseButton.LeftButton)
    assert panel.preset_combo.currentText() == "Focused"  # the values match the imported preset again

    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "llamadesk-presets", "version": 1, "presets": {"Hot": {"temperature": 9}}}')
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(broken), ""))
    qtbot.mouseClick(panel.presets.import_button, Qt.MouseButton.LeftButton)
    title, sentence = dialogs.warnings[-1]
    assert title == "Presets not imported" and sentence.startswith("Nothing was imported from broken.json:")
    assert "Hot" not in [panel.preset_combo.itemText(i) for i in range(panel.preset_combo.count())]


def test_every_setting_has_a_tooltip_a_reset_and_a_name(window: MainWindow) -> None:
    for name, rng in RANGES.items():
        row = window.panel.rows[name]
        assert row.slider.toolTip() == rng.help and row.reset.accessibleName() == f"Reset {rng.label}"
        assert row.spin.accessibleName() == rng.label and row.label.buddy() is row.spin
    for widget in (window.panel.preset_combo, window.panel.context_box.policy_combo, window.panel.random_seed):
        assert widget.accessibleName() and widget.toolTip()


def test_each_conversation_keeps_its_system_prompt_and_sampling_for_its_replies(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    first = history.create_conversation("Terse", system_prompt="Be terse.", sampling={"temperature": 0.1})
    second = history.create_conversation("Wordy", system_prompt="Be wordy.", sampling={"temperature": 1.5})
    window.refresh_conversations()
    for conv, prompt, temperature in ((first, "Be terse.", 0.1), (second, "Be wordy.", 1.5)):
        window.select_conversation(conv.id)
        window.send("hello")
        qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
        receipt = history.messages(conv.id)[-1].receipt or {}
        assert receipt["system_prompt"] == prompt and receipt["sampling"]["temperature"] == temperature

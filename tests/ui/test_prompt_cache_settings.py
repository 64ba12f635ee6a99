"""Settings → Advanced model settings: the prompt cache's size on its Clear button, which deletes the saved states
at once; the prompt-lookup switch goes to the settings and into the next load's options."""

from __future__ import annotations

from PySide6.QtCore import QLocale, Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.engines import prompt_cache
from llamadesk.core.settings import AppSettings
from llamadesk.ui.settings.advanced import AdvancedModelBox


def test_clear_prompt_cache_shows_the_size_and_deletes_the_states(qtbot: QtBot) -> None:
    state = prompt_cache.cache_root() / "0123abcd" / "feed.state"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"\0" * 3_000_000)
    box = AdvancedModelBox()
    qtbot.addWidget(box)
    assert box.cache_button.text() == f"Clear prompt cache ({QLocale().formattedDataSize(3_000_000)})"
    qtbot.mouseClick(box.cache_button, Qt.MouseButton.LeftButton)
    assert not state.exists()
    assert prompt_cache.disk_usage() == 0
    assert box.cache_button.text() == f"Clear prompt cache ({QLocale().formattedDataSize(0)})"


def test_prompt_lookup_is_a_stored_setting_and_a_load_option(qtbot: QtBot) -> None:
    box = AdvancedModelBox()
    qtbot.addWidget(box)
    box.set_values(AppSettings())
    assert box.values()["prompt_lookup"] is AppSettings().prompt_lookup
    box.lookup_check.setChecked(True)
    assert box.values()["prompt_lookup"] is True
    settings = AppSettings(prompt_lookup=True, prompt_cache_mb=512)
    assert settings.load_kwargs()["prompt_lookup"] is True and settings.load_kwargs()["prompt_cache_mb"] == 512

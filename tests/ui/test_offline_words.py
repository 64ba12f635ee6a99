"""The model manager offline (issue 20, defect 5): a download that cannot reach the Hub ends with one plain
sentence beside Retry, the footer no longer says it "is queued", and a Hub search says it is offline after one try."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core import hub
from llamadesk.core.downloads import RetryPolicy, State
from llamadesk.paths import Paths
from llamadesk.ui.models import ModelManagerDialog
from llamadesk.ui.models.downloads_page import OFFLINE_TEXT

WAIT_MS = 60_000
GB = 10**9
QUICK = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def dialog(
    qtbot: QtBot, paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_hub: tuple[str, list[Any]]
) -> Iterator[ModelManagerDialog]:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for var in ("HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS", "XDG_DATA_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(var, raising=False)
    d = ModelManagerDialog(paths, endpoint=offline_hub[0])
    qtbot.addWidget(d)
    d.show()
    qtbot.waitUntil(lambda: d.machine.known and d.downloads.loaded and d.library_page.loaded, timeout=WAIT_MS)
    d.machine.set_memory(8 * GB, 0, ram_total=16 * GB)
    d.downloads.policy = QUICK
    yield d
    assert d.shutdown(), "a background task did not stop"
    d.close()


def test_an_offline_download_says_one_plain_sentence_beside_retry(dialog: ModelManagerDialog, qtbot: QtBot) -> None:
    page = dialog.catalog_page
    page.select("smollm2", "135m", "Q4_K_M")
    qtbot.mouseClick(page.download_button, Qt.MouseButton.LeftButton)
    assert "is queued" in dialog.status.text()
    qtbot.waitUntil(lambda: any(j.state is State.FAILED for j in dialog.downloads.jobs()), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: OFFLINE_TEXT in dialog.status.text(), timeout=WAIT_MS)
    assert "is queued" not in dialog.status.text()
    dialog.show_tab("downloads")
    [row] = dialog.downloads_page.rows.values()
    qtbot.waitUntil(lambda: row.error.text() == OFFLINE_TEXT, timeout=WAIT_MS)
    assert row.retry_button.isVisibleTo(dialog)
    for jargon in ("ConnectError", "times in a row", ".gguf", "("):
        assert jargon not in row.error.text()


def test_an_offline_hub_search_says_so_after_one_try(
    dialog: ModelManagerDialog, qtbot: QtBot, offline_hub: tuple[str, list[Any]]
) -> None:
    page = dialog.hub_page
    dialog.show_tab("hub")
    page.search_box.setText("qwen")
    qtbot.mouseClick(page.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.search_button.isEnabled() and page.message.is_error, timeout=WAIT_MS)
    assert page.message.text() == hub.UNREACHABLE
    assert len(offline_hub[1]) == 1, f"the search tried {len(offline_hub[1])} times"

"""The welcome page (issue 20): above an empty chat while the starter is the only model, two sentences on what it
can and cannot do, three catalog chat models that fit (one Download button each, size, plain-words label); offline,
it says so once and the starter stays ready."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakehub import FakeHub
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from llamadesk.core.catalog import PICK_LABELS, load_catalog, welcome_picks
from llamadesk.core.downloads import RetryPolicy, State
from llamadesk.core.starter import STARTER
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.welcome import OFFLINE_WORDS, STARTER_WORDS

LOAD_TIMEOUT_MS = 120_000
WAIT_MS = 60_000
GB = 10**9


@pytest.fixture
def starter_only(paths: Paths, tiny_model: Path) -> Path:
    """The models folder with a stand-in for the starter model (the tiny model under the starter's file name)."""
    shutil.copy(tiny_model, paths.models / STARTER.file_name)
    return paths.models


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> str:
    """HF_ENDPOINT is a loopback port nothing listens on; any traffic beyond loopback fails the test."""
    with FakeHub() as dead:
        url = dead.url
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network traffic beyond loopback: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return url


def ready(make_window: Callable[..., MainWindow], qtbot: QtBot) -> MainWindow:
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    window.welcome.set_memory(16 * GB)  # the suggestions must not depend on this machine's memory
    return window


def test_the_welcome_page_offers_three_models_that_fit(
    make_window: Callable[..., MainWindow], starter_only: Path, qtbot: QtBot
) -> None:
    window = ready(make_window, qtbot)
    page = window.welcome.page
    qtbot.waitUntil(page.isVisible)
    assert page.about.text() == STARTER_WORDS and STARTER_WORDS.count(". ") == 1  # two sentences
    expected = welcome_picks(load_catalog(), ram_free=16 * GB)
    assert [p.label for p in page.picks] == list(PICK_LABELS)
    assert [p.name for p in page.picks] == [p.name for p in expected]
    assert len(page.buttons) == 3 and all(b.text() == "Download" and b.accessibleName() for b in page.buttons)
    window.welcome.set_memory(8 * GB)  # other suggestions: the old rows go at once, not at the next event loop
    qtbot.waitUntil(lambda: len([b for b in page.findChildren(QPushButton) if b.isVisibleTo(page)]) == 3)
    window.welcome.set_memory(16 * GB)
    texts = [page.grid.itemAtPosition(row, 1).widget().text() for row in range(3)]  # type: ignore[union-attr]
    for pick, text in zip(expected, texts, strict=True):
        assert pick.name in text and ("GB" in text or "MB" in text)
    labels = [page.grid.itemAtPosition(row, 0).widget().text() for row in range(3)]  # type: ignore[union-attr]
    assert labels == ["Fast, basic", "Balanced", "Best that fits"]
    assert not page.offline.isVisible()
    assert all(b.focusPolicy() & Qt.FocusPolicy.TabFocus for b in page.buttons)


def test_it_goes_away_when_the_chat_starts_or_another_model_is_there(
    make_window: Callable[..., MainWindow], starter_only: Path, tiny_model: Path, qtbot: QtBot
) -> None:
    window = ready(make_window, qtbot)
    page = window.welcome.page
    qtbot.waitUntil(page.isVisible)
    window.send("hello")
    qtbot.waitUntil(lambda: not page.isVisible(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=LOAD_TIMEOUT_MS)
    window.new_chat()
    qtbot.waitUntil(page.isVisible)
    shutil.copy(tiny_model, starter_only / "another.gguf")
    window.picker.refresh()
    qtbot.waitUntil(lambda: not page.isVisible())


def test_offline_it_says_so_once_and_the_starter_stays_ready(
    make_window: Callable[..., MainWindow], starter_only: Path, offline: str, qtbot: QtBot, dialogs: Any
) -> None:
    window = ready(make_window, qtbot)
    page = window.welcome.page
    qtbot.waitUntil(page.isVisible)
    window.navigation.show_model_manager()
    manager = window.navigation.model_manager
    assert manager is not None
    qtbot.waitUntil(lambda: manager.downloads.loaded, timeout=WAIT_MS)
    manager.downloads.policy = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)
    pick = page.picks[0]
    qtbot.mouseClick(page.buttons[0], Qt.MouseButton.LeftButton)
    assert not page.buttons[0].isEnabled()
    qtbot.waitUntil(lambda: any(j.state is State.FAILED for j in manager.downloads.jobs()), timeout=WAIT_MS)
    [job] = manager.downloads.jobs()
    assert job.repo_id == pick.quant.repo and job.filename == pick.quant.files[0]
    qtbot.waitUntil(page.offline.isVisible, timeout=WAIT_MS)
    assert page.offline.text() == OFFLINE_WORDS
    manager.downloads.start(job.id)  # Retry, still offline: the page says nothing more
    qtbot.waitUntil(
        lambda: (
            not manager.downloads.is_running(job.id)
            and not manager.downloads.is_waiting(job.id)
            and manager.downloads.job(job.id).state is State.FAILED
        ),
        timeout=WAIT_MS,
    )  # type: ignore[union-attr]
    assert page.findChildren(type(page.offline), "welcomeOffline") == [page.offline]
    assert dialogs.warnings == []  # no dialog for being offline
    assert window.model_info is not None
    window.send("still here?")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=LOAD_TIMEOUT_MS)
    assert window.chat_model.rowCount() >= 2  # the starter answered

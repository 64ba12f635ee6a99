"""GUI fixtures: offscreen Qt, the real window over the real engine and history, no thread left behind."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, QTimer, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.settings import AppSettings, save_settings
from llamadesk.paths import Paths, get_paths
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.sidebar import Sidebar
from llamadesk.ui.workers import live_hosts, live_query_runners

LOAD_TIMEOUT_MS = 60_000
REPLY_TIMEOUT_MS = 60_000


class Dialogs:
    """Stands in for the QMessageBox calls the window makes, so no test ever blocks on a modal dialog."""

    def __init__(self) -> None:
        self.warnings: list[tuple[str, str]] = []
        self.questions: list[str] = []
        self.answer = QMessageBox.StandardButton.Cancel

    def warning(self, _parent: Any, title: str, text: str, *_: Any, **__: Any) -> QMessageBox.StandardButton:
        self.warnings.append((title, text))
        return QMessageBox.StandardButton.Ok

    def question(self, _parent: Any, _title: str, text: str, *_: Any, **__: Any) -> QMessageBox.StandardButton:
        self.questions.append(text)
        return self.answer


@pytest.fixture(autouse=True)
def dialogs(monkeypatch: pytest.MonkeyPatch) -> Dialogs:
    recorder = Dialogs()
    monkeypatch.setattr(QMessageBox, "warning", recorder.warning)
    monkeypatch.setattr(QMessageBox, "critical", recorder.warning)
    monkeypatch.setattr(QMessageBox, "question", recorder.question)
    return recorder


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    yield
    assert live_hosts() == [], "an engine thread is still running after the test"
    assert live_query_runners() == [], "a history query thread is still running after the test"


@pytest.fixture
def paths(llamadesk_home: Path) -> Paths:
    """The test's folders, with one engine thread: the tiny models need no more, and on a busy two-core machine
    llama.cpp's spinning worker threads otherwise wait for each other for whole scheduler slices."""
    p = get_paths().ensure()
    save_settings(p.settings_file, AppSettings(n_threads=1))
    return p


@pytest.fixture
def models_dir(paths: Paths, tiny_model: Path) -> Path:
    """The models folder with the tiny ChatML model in it."""
    shutil.copy(tiny_model, paths.models / "tiny-chatml.gguf")
    return paths.models


@pytest.fixture
def history(paths: Paths) -> Iterator[History]:
    h = History(paths.history_db)
    yield h
    h.close()


@pytest.fixture
def make_window(qtbot: QtBot, paths: Paths, history: History) -> Iterator[Callable[..., MainWindow]]:
    """Builds real windows; each is closed (engine closed, thread joined) at the end of the test."""
    made: list[MainWindow] = []

    def make(**kwargs: Any) -> MainWindow:
        window = MainWindow(paths, history, **kwargs)
        made.append(window)
        window.show()
        return window

    yield make
    for window in made:
        window.close()
        assert not window.host.thread_running
        window.deleteLater()


def _ready(make_window: Callable[..., MainWindow], qtbot: QtBot, max_tokens: int) -> MainWindow:
    w = make_window()
    qtbot.waitUntil(lambda: w.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    w.panel.rows["max_tokens"].spin.setValue(max_tokens)
    return w


@pytest.fixture
def window(make_window: Callable[..., MainWindow], models_dir: Path, qtbot: QtBot) -> MainWindow:
    """A window with the tiny model loaded and a short reply length."""
    return _ready(make_window, qtbot, 64)


@pytest.fixture
def endless_window(
    make_window: Callable[..., MainWindow], paths: Paths, endless_model: Path, qtbot: QtBot
) -> MainWindow:
    """A window whose model only stops at max tokens (4000 here) or when told to."""
    shutil.copy(endless_model, paths.models / endless_model.name)
    return _ready(make_window, qtbot, 4000)


def run_menu_action(sidebar: Sidebar, cid: int, text: str) -> list[str]:
    """Opens the real context menu on `cid`, picks `text`, returns the entries it offered."""
    rect = sidebar.list.visualRect(sidebar.model.index(sidebar.model.row_of(cid), 0))
    seen: list[list[str]] = []

    def pick() -> None:
        menu = QApplication.activePopupWidget()
        assert isinstance(menu, QMenu)
        seen.append([a.text() for a in menu.actions()])
        action = next(a for a in menu.actions() if a.text() == text)
        menu.close()
        action.trigger()

    QTimer.singleShot(0, pick)
    sidebar.list.customContextMenuRequested.emit(rect.center())
    assert seen and text in seen[0]
    return seen[0]


class FileUrls(QObject):
    """Receives the file: URLs the app asks the desktop to open (Qt's own hook, QDesktopServices.setUrlHandler)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


@pytest.fixture
def file_urls() -> Iterator[FileUrls]:
    handler = FileUrls()
    QDesktopServices.setUrlHandler("file", handler, "open")
    yield handler
    QDesktopServices.unsetUrlHandler("file")


def help_action(window: MainWindow, text: str) -> object:
    for action in window.menuBar().actions():
        if action.text().replace("&", "") == "Help" and action.menu() is not None:
            return next(a for a in action.menu().actions() if a.text() == text)
    raise AssertionError("no Help menu")

"""The window on a full disk: a start that cannot open the history is one dialog and a clean exit; settings that
cannot be saved are one sentence in the status bar; the log falls silent, never a traceback. The disk is a real
16 MB tmpfs filled to the last byte where mounting is allowed (root, as in CI), else the same refusals injected
(tests/full_disk.py)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from full_disk import FullDisk, small_disk
from PySide6.QtNetwork import QLocalServer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from llamadesk import logsetup
from llamadesk.core.history.db import DISK_FULL_OPEN_MESSAGE
from llamadesk.paths import Paths, get_paths
from llamadesk.ui.app import run_gui
from llamadesk.ui.main_window import MainWindow

from .conftest import LOAD_TIMEOUT_MS


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[FullDisk]:
    with small_disk(tmp_path / "small-disk") as small:
        print(f"full disk: {small.kind}")
        yield small


@pytest.fixture
def app_logging() -> Iterator[None]:
    """Lets a test configure logging as the app does; the root logger is put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.mark.usefixtures("app_logging")
def test_starting_on_a_full_disk_is_one_dialog_and_a_clean_exit(
    qtbot: QtBot, disk: FullDisk, dialogs: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLAMADESK_HOME", str(disk.root / "home"))
    paths = get_paths().ensure()  # the folders of an earlier start; the disk filled up since
    disk.fill()
    disk.inject(monkeypatch.setattr)
    logsetup.configure(paths.logs)  # as `llamadesk` does before the window
    logging.getLogger("llamadesk.test").warning("a line the full disk cannot take")

    assert run_gui(["llamadesk"]) == 1
    assert dialogs.warnings == [("LlamaDesk", DISK_FULL_OPEN_MESSAGE.format(folder=paths.data))]
    app = QApplication.instance()
    assert app is not None
    assert [s for s in app.findChildren(QLocalServer) if s.isListening()] == []  # a later start is not handed over
    assert logsetup.failure() is not None and "is full" in logsetup.failure()  # type: ignore[operator]
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err, err


def test_settings_that_cannot_be_saved_are_one_sentence_in_the_status_bar(
    disk: FullDisk,  # first: it is unmounted only after the window closed (and tried to save once more)
    make_window: Callable[..., MainWindow],
    paths: Paths,
    models_dir: Path,
    dialogs: Any,
    monkeypatch: pytest.MonkeyPatch,
    qtbot: QtBot,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    config = disk.root / "config"
    shutil.copytree(paths.config, config)
    shutil.rmtree(paths.config)
    paths.config.symlink_to(config)  # the config folder lies on the small disk
    disk.fill()
    disk.inject(monkeypatch.setattr)

    window = make_window()  # it loads the model, then saves it as the last one used: the start-up's own write
    messages: list[str] = []
    window.statusBar().messageChanged.connect(messages.append)
    qtbot.waitUntil(lambda: any(m.startswith("Settings could not be saved") for m in messages),
                    timeout=LOAD_TIMEOUT_MS)  # fmt: skip
    sentence = next(m for m in messages if m.startswith("Settings could not be saved"))
    assert sentence == f"Settings could not be saved to {paths.settings_file}: No space left on device."

    def attempts() -> int:
        return sum(r.getMessage() == f"Settings not saved: {sentence}" for r in caplog.records)

    before = attempts()
    window.panel.rows["max_tokens"].spin.setValue(77)  # a change while the disk is full: the same sentence, no dialog
    qtbot.waitUntil(lambda: attempts() > before, timeout=LOAD_TIMEOUT_MS)
    assert window.statusBar().currentMessage() == sentence
    assert dialogs.warnings == [] and window.isVisible()
    assert [p.name for p in config.iterdir() if p.name.startswith(".settings-")] == []  # no half-written file
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err, err

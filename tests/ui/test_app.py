"""The GUI entry point: --smoke-test shows the window, quits by itself, and leaves nothing running."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from llamadesk.paths import get_paths
from llamadesk.ui.app import _make_excepthook, run_gui


def test_smoke_test_shows_the_window_and_exits_zero(qtbot: QtBot, llamadesk_home: Path) -> None:
    hook = sys.excepthook
    assert run_gui(["llamadesk"], smoke_test=True) == 0
    assert sys.excepthook is hook  # the app's error dialog hook is removed again
    app = QApplication.instance()
    assert isinstance(app, QApplication) and app.applicationName() == "LlamaDesk"
    assert app.desktopFileName() == "io.github.llamadesk.LlamaDesk"
    paths = get_paths()
    assert paths.history_db.exists() and paths.settings_file.exists()
    assert str(paths.data).startswith(str(llamadesk_home))


def test_smoke_test_with_a_model_loads_it_in_the_background(qtbot: QtBot, models_dir: Path) -> None:
    assert run_gui(["llamadesk"], smoke_test=True) == 0


def test_an_unexpected_error_is_logged_and_shown_as_a_sentence(qtbot: QtBot, dialogs: Any) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    hook = _make_excepthook(app)
    try:
        raise ValueError("the widget was gone")
    except ValueError as exc:
        hook(type(exc), exc, exc.__traceback__)
    title, text = dialogs.warnings[-1]
    assert title == "LlamaDesk"
    assert text.startswith("Something went wrong: the widget was gone.") and "Traceback" not in text


def test_many_signal_emits_do_not_crash(qtbot: QtBot) -> None:
    """PySide6 6.12.0 dropped a reference to True on every emit; Python 3.11 then aborts the whole process.
    pyproject excludes that release; this keeps the reference counts honest whatever version is installed."""
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        fired = Signal(int)

    emitter = Emitter()
    seen: list[int] = []
    emitter.fired.connect(seen.append)
    before_true, before_none = sys.getrefcount(True), sys.getrefcount(None)
    for i in range(200):
        emitter.fired.emit(i)
    assert len(seen) == 200
    if sys.version_info < (3, 12):  # immortal from 3.12 on: their counts mean nothing there
        assert abs(sys.getrefcount(True) - before_true) < 50
        assert abs(sys.getrefcount(None) - before_none) < 50


def test_an_unexpected_error_leaves_a_local_crash_report_without_secrets(
    qtbot: QtBot, dialogs: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    hook = _make_excepthook(app)
    try:
        raise RuntimeError("the engine thread vanished")
    except RuntimeError as exc:
        hook(type(exc), exc, exc.__traceback__)
    reports = sorted(get_paths().logs.glob("crash-*.txt"))
    assert len(reports) == 1
    text = reports[0].read_text()
    assert "the engine thread vanished" in text and "LlamaDesk" in text
    assert "hf_secret_token_value" not in text
    assert str(reports[0]) in dialogs.warnings[-1][1]

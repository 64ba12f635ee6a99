"""Two starts on one data folder: the second hands over to the running window and exits; a killed first one
leaves a stale socket that the next start clears. Real `llamadesk` processes, offscreen Qt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from llamadesk.logsetup import LOG_FILE_NAME
from llamadesk.paths import get_paths
from llamadesk.ui import single_instance

START_TIMEOUT_S = 60


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "LLAMADESK_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}


def _start_gui(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "llamadesk"], env=_env(home), text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_listening(name: str, process: subprocess.Popen[str]) -> None:
    """Until the window's instance server answers (each try is a real hand-over, which the window logs)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not single_instance.hand_over(name, timeout_ms=500):
        assert process.poll() is None, f"the first LlamaDesk exited: {process.stderr.read() if process.stderr else ''}"
        assert time.monotonic() < deadline, "the first LlamaDesk never listened"
        time.sleep(0.1)  # the window is still starting; ask again


@pytest.fixture
def first(llamadesk_home: Path) -> Iterator[subprocess.Popen[str]]:
    process = _start_gui(llamadesk_home)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def test_second_start_hands_over_to_the_running_window(
    llamadesk_home: Path, first: subprocess.Popen[str], qapp: QApplication
) -> None:  # qapp: Qt's sockets want an application object (pytest-qt's, shared with the GUI tests)
    name = single_instance.server_name(get_paths(llamadesk_home).data)
    _wait_listening(name, first)

    second = subprocess.run(
        [sys.executable, "-m", "llamadesk"], env=_env(llamadesk_home), capture_output=True, text=True, timeout=60
    )

    assert second.returncode == 0
    assert "already running; its window was brought to the front" in second.stderr
    assert first.poll() is None  # the first window is still there
    log = (get_paths(llamadesk_home).logs / LOG_FILE_NAME).read_text(encoding="utf-8")
    assert log.count("Another start handed over to this window") >= 2  # our probe, then the second start


def test_a_killed_first_start_leaves_no_lock_behind(
    llamadesk_home: Path, first: subprocess.Popen[str], qapp: QApplication
) -> None:
    name = single_instance.server_name(get_paths(llamadesk_home).data)
    _wait_listening(name, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert not single_instance.hand_over(name, timeout_ms=500)  # a stale socket: nobody answers

    again = _start_gui(llamadesk_home)
    try:
        _wait_listening(name, again)  # it removed the stale socket and listens
    finally:
        again.kill()
        again.wait(timeout=30)


def test_other_data_folders_get_their_own_instance(tmp_path: Path) -> None:
    assert single_instance.server_name(tmp_path / "a") != single_instance.server_name(tmp_path / "b")
    assert single_instance.server_name(tmp_path / "a") == single_instance.server_name(tmp_path / "a")

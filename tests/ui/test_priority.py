"""llama.cpp's threads yield the cores to the GUI thread: they run at a higher niceness, the GUI thread as it was."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from pytestqt.qtbot import QtBot

from llamadesk.core import priority
from llamadesk.ui.main_window import MainWindow
from tests.ui.conftest import REPLY_TIMEOUT_MS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")


def nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def thread_name(tid: int) -> str:
    try:
        with open(f"/proc/self/task/{tid}/comm", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:  # ended meanwhile
        return ""


def test_a_thread_asks_and_every_thread_but_the_gui_one_yields() -> None:
    main = threading.main_thread().native_id
    before = nice(main)
    seen: list[int] = []

    def work() -> None:
        priority.yield_to()
        seen.append(nice(threading.get_native_id()))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen == [max(before, priority.COMPUTE_NICE)]
    assert nice(main) == before


def test_the_engine_thread_yields_to_the_window(window: MainWindow, qtbot: QtBot) -> None:
    main = threading.main_thread().native_id
    before = nice(main)
    window.send("hello")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    engine = [tid for tid in map(int, os.listdir("/proc/self/task")) if thread_name(tid).startswith("llamadesk-engi")]
    assert engine and all(nice(tid) >= priority.COMPUTE_NICE for tid in engine)  # Qt names the thread after it
    assert nice(main) == before

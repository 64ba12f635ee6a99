"""Full garbage collections wait for an idle window: never while a reply streams, as soon as it is over."""

from __future__ import annotations

import gc
import weakref

from pytestqt.qtbot import QtBot

from llamadesk.ui import idle_gc
from llamadesk.ui.main_window import MainWindow
from tests.ui.conftest import REPLY_TIMEOUT_MS


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def make_full_collection_due() -> None:
    while gc.get_count()[2] < 10:
        gc.collect(1)  # each collection of the young generations counts towards the next full one


def test_full_collections_wait_for_the_reply_to_end(endless_window: MainWindow, qtbot: QtBot) -> None:
    window = endless_window
    original = idle_gc._saved[0]
    assert gc.get_threshold()[2] == idle_gc.NEVER  # CPython's own full collections are off while the window lives

    window.send("Write a long story")
    assert window.is_generating
    qtbot.waitUntil(lambda: len(window.chat_model.row(window.chat_model.rowCount() - 1).content) > 20,
                    timeout=REPLY_TIMEOUT_MS)  # fmt: skip
    node = Node()
    gone = weakref.ref(node)
    gc.collect(0)
    gc.collect(1)  # the cycle is in the old generation now: only a full collection frees it
    del node
    make_full_collection_due()
    assert not window.idle_gc.collect_if_idle()  # a reply streams: not now
    assert gone() is not None

    window.stop_generation()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    make_full_collection_due()
    qtbot.waitUntil(lambda: gone() is None, timeout=5 * idle_gc.CHECK_INTERVAL_MS)  # the timer ran it when idle
    assert window.idle_gc.collections >= 1

    window.close()
    assert gc.get_threshold() == original  # CPython's schedule is back once the last window is gone


def test_nothing_is_collected_when_no_collection_is_due(window: MainWindow) -> None:
    gc.collect()  # counts start from zero
    assert not window.idle_gc.collect_if_idle()

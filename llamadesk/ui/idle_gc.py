"""Python's full garbage collections happen while the window is idle, not while a reply streams.

A full (generation 2) collection walks every container object; with a 10,000-message conversation open it takes
30–55 ms on a 2-core machine, and CPython starts one whenever enough objects have survived: in the middle of a
stream, as a visible hitch (bench/bench_gui.py measured 54 ms stalls). While the window lives, automatic full
collections are off; a timer runs one when CPython would have (its generation-2 count reached the usual
threshold) and no reply is streaming. Young generations are collected as usual. Reference counting frees almost
everything anyway; only cyclic garbage waits for the idle moment.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

CHECK_INTERVAL_MS = 1000
NEVER = 1 << 30  # a generation-2 threshold CPython never reaches
_saved: list[tuple[int, int, int]] = []  # CPython's thresholds while any collector lives (several windows in tests)


class IdleCollector(QObject):
    """Owned by the main window; `busy()` says when a collection must wait (a reply streams, a model loads)."""

    def __init__(self, busy: Callable[[], bool], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._busy = busy
        if not _saved:
            _saved.append(gc.get_threshold())
        _saved.append(_saved[0])  # one entry per live collector after the original
        first, second, third = _saved[0]
        self._due = third or 10  # CPython's own trigger, counted in generation-1 collections
        gc.set_threshold(first, second, NEVER)
        self._stopped = False
        self._timer = QTimer(self, interval=CHECK_INTERVAL_MS)
        self._timer.timeout.connect(self.collect_if_idle)
        self._timer.start()
        self.collections = 0

    def collect_if_idle(self) -> bool:
        """Runs a full collection when one is due and nothing is streaming; True when it ran."""
        if gc.get_count()[2] < self._due or self._busy():
            return False
        gc.collect()
        self.collections += 1
        return True

    def stop(self) -> None:
        """Gives CPython its own schedule back when the last window closes."""
        if self._stopped:
            return
        self._stopped = True
        self._timer.stop()
        _saved.pop()
        if len(_saved) == 1:
            gc.set_threshold(*_saved.pop())

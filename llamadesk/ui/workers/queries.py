"""BackgroundQueries: one thread running read-mostly jobs (searches, Ctrl+F, export, import) on its own resource."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from llamadesk.core.errors import LlamaDeskError

log = logging.getLogger(__name__)

SHUTDOWN_WAIT_MS = 60_000


class _QueryWorker(QObject):
    """Lives in a query thread with its own resource (e.g. a History connection: one per thread), opened there."""

    done = Signal(int, object)  # ticket, result
    failed = Signal(int, str)  # ticket, a sentence

    def __init__(self, open_resource: Callable[[], Any], is_stale: Callable[[int, str], bool]) -> None:
        super().__init__()
        self._open, self._is_stale = open_resource, is_stale
        self._resource: Any = None

    @Slot(int, str, object)
    def run(self, ticket: int, channel: str, job: Callable[[Any], Any]) -> None:
        if self._is_stale(ticket, channel):
            return  # a newer request of the same kind is queued behind this one: skip the work
        try:
            if self._resource is None:
                self._resource = self._open()
            result = job(self._resource)
        except LlamaDeskError as exc:
            self.failed.emit(ticket, str(exc))
            return
        except Exception as exc:  # a bug: logged, and still one sentence for the user
            log.exception("Background query %s failed", channel)
            self.failed.emit(ticket, f"The operation failed unexpectedly: {exc}.")
            return
        self.done.emit(ticket, result)

    @Slot()
    def close(self) -> None:
        try:
            close = getattr(self._resource, "close", None)
            if callable(close):
                close()
        except Exception:
            log.exception("Closing the query resource failed")
        finally:
            self._resource = None
            thread = self.thread()
            if thread is not None:
                thread.quit()


_live_runners: set[BackgroundQueries] = set()  # strong references: a QThread must not be collected while it runs


class BackgroundQueries(QObject):
    """One thread that runs read-mostly jobs one at a time on a resource opened in it (a History of its own).

    `submit(channel, job, on_done, on_failed)`: `job(resource)` runs in the thread; `on_done(result)` or
    `on_failed(sentence)` runs on the GUI thread, but only for the newest job of its channel: a newer submit (or
    `cancel(channel)`) makes older ones stale, so they are skipped if not started and their results dropped.
    """

    _runRequested = Signal(int, str, object)
    _closeRequested = Signal()

    def __init__(
        self, open_resource: Callable[[], Any], parent: QObject | None = None, *, name: str = "queries"
    ) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName(f"llamadesk-{name}")
        self._latest: dict[str, int] = {}
        self._callbacks: dict[int, tuple[str, Callable[[Any], None], Callable[[str], None]]] = {}
        self._tickets = itertools.count(1)
        self.worker = _QueryWorker(open_resource, self._is_stale)
        self.worker.moveToThread(self._thread)
        self._runRequested.connect(self.worker.run)
        self._closeRequested.connect(self.worker.close)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self._thread.start()
        _live_runners.add(self)

    def _is_stale(self, ticket: int, channel: str) -> bool:
        return self._latest.get(channel, ticket) != ticket  # read from the query thread: one dict look-up

    @property
    def thread_running(self) -> bool:
        return self._thread.isRunning()

    def submit(
        self, channel: str, job: Callable[[Any], Any], on_done: Callable[[Any], None], on_failed: Callable[[str], None]
    ) -> int:
        """Queues `job`; returns its ticket. Ignored (0) after shutdown."""
        if not self._thread.isRunning():
            return 0
        ticket = next(self._tickets)
        self._latest[channel] = ticket
        self._callbacks[ticket] = (channel, on_done, on_failed)
        self._runRequested.emit(ticket, channel, job)
        return ticket

    def cancel(self, channel: str) -> None:
        """Drops the pending job of `channel` (its callbacks will not run)."""
        self._latest[channel] = -1

    def busy(self, channel: str) -> bool:
        """Whether the newest job of `channel` has not reported yet."""
        return self._latest.get(channel, -1) in self._callbacks

    def _take(self, ticket: int) -> tuple[Callable[[Any], None], Callable[[str], None]] | None:
        entry = self._callbacks.pop(ticket, None)
        if entry is None or self._latest.get(entry[0]) != ticket:
            return None
        return entry[1], entry[2]

    def _on_done(self, ticket: int, result: Any) -> None:
        callbacks = self._take(ticket)
        if callbacks is not None:
            callbacks[0](result)

    def _on_failed(self, ticket: int, message: str) -> None:
        callbacks = self._take(ticket)
        if callbacks is not None:
            callbacks[1](message)

    def shutdown(self, wait_ms: int = SHUTDOWN_WAIT_MS) -> bool:
        """Drops what is queued, closes the resource in its thread and waits for the thread to end."""
        for channel in list(self._latest):
            self._latest[channel] = -1
        self._callbacks.clear()
        if self._thread.isRunning():
            self._closeRequested.emit()
            if not self._thread.wait(wait_ms):
                log.error("The query thread did not stop within %d ms", wait_ms)
                return False
        _live_runners.discard(self)
        return True


def live_query_runners() -> list[BackgroundQueries]:
    """Query threads not shut down yet (tests assert that none is left)."""
    return [r for r in _live_runners if r.thread_running]

"""TaskRunner: a thread pool for independent jobs (the model manager's, the picker's, the endpoints dialog's) whose
results, errors and progress arrive on the GUI thread."""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot

from llamadesk.core.errors import LlamaDeskError

log = logging.getLogger(__name__)

T = TypeVar("T")
PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress signals a second per task: the GUI repaints no faster
SHUTDOWN_WAIT_MS = 60_000


class TaskContext:
    """What a background function gets: the cancel Event to check, and `progress()` to report (any object)."""

    def __init__(self, task_id: int, cancel: threading.Event, emit: Callable[[int, object], None]) -> None:
        self.task_id = task_id
        self.cancel = cancel
        self._emit = emit
        self._last = 0.0

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def progress(self, value: object, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            self._emit(self.task_id, value)


@dataclass
class Task(Generic[T]):
    """A handle on one background call; `discard()` cancels it and drops whatever it still reports."""

    id: int
    name: str
    on_done: Callable[[T], None] | None
    on_error: Callable[[str], None] | None
    on_progress: Callable[[Any], None] | None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    discarded: bool = False
    finished: bool = False

    def cancel(self) -> None:
        """Asks the function to stop (it checks the Event); its result or error still arrives."""
        self.cancel_event.set()

    def discard(self) -> None:
        """Cancels and forgets: no callback runs any more (a newer search replaced this one, a page closed)."""
        self.discarded = True
        self.cancel_event.set()


class _Relay(QObject):
    """Lives in the GUI thread; worker threads emit these signals, Qt queues them to the runner's slots."""

    done = Signal(int, object)
    failed = Signal(int, str)
    progress = Signal(int, object)


class TaskRunner(QObject):
    """Runs plain functions on its own QThreadPool; callbacks run on the GUI thread, never in the worker."""

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 4) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._relay.failed.connect(self._on_failed)
        self._relay.progress.connect(self._on_progress)
        self._ids = itertools.count(1)
        self._tasks: dict[int, Task[Any]] = {}
        self._closed = False

    def run_in_background(
        self,
        fn: Callable[[TaskContext], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        *,
        name: str = "",
    ) -> Task[T]:
        """Calls `fn(ctx)` in a pool thread. `fn` must not touch widgets: it returns a value or raises.

        A LlamaDeskError's sentence goes to `on_error` as is; any other exception is logged with its traceback
        and `on_error` gets a short sentence (no traceback reaches a dialog)."""
        task: Task[T] = Task(next(self._ids), name or getattr(fn, "__name__", "task"), on_done, on_error, on_progress)
        if self._closed:
            task.discarded = task.finished = True
            return task
        self._tasks[task.id] = task
        relay = self._relay
        ctx = TaskContext(task.id, task.cancel_event, relay.progress.emit)

        def work() -> None:
            try:
                result = fn(ctx)
            except LlamaDeskError as exc:
                relay.failed.emit(task.id, str(exc))
            except Exception as exc:
                log.exception("Background task %s failed", task.name)
                relay.failed.emit(task.id, f"Something went wrong ({type(exc).__name__}: {exc}); see the log.")
            else:
                relay.done.emit(task.id, result)

        self._submit(work)
        return task

    def _submit(self, work: Callable[[], None]) -> None:
        self.pool.start(work)

    def active_count(self) -> int:
        """Tasks started whose result has not been delivered yet."""
        return len(self._tasks)

    def _take(self, task_id: int) -> Task[Any] | None:
        task = self._tasks.pop(task_id, None)
        if task is None:
            return None
        task.finished = True
        return None if task.discarded else task

    @Slot(int, object)
    def _on_done(self, task_id: int, result: object) -> None:
        task = self._take(task_id)
        if task is not None and task.on_done is not None:
            task.on_done(result)

    @Slot(int, str)
    def _on_failed(self, task_id: int, message: str) -> None:
        task = self._take(task_id)
        if task is None:
            return
        if task.on_error is not None:
            task.on_error(message)
        else:
            log.warning("Background task %s failed: %s", task.name, message)

    @Slot(int, object)
    def _on_progress(self, task_id: int, value: object) -> None:
        task = self._tasks.get(task_id)
        if task is not None and not task.discarded and task.on_progress is not None:
            task.on_progress(value)

    def shutdown(self, wait_ms: int = SHUTDOWN_WAIT_MS) -> bool:
        """Cancels every task, waits for the pool's threads to finish their function, drops late results."""
        self._closed = True
        for task in list(self._tasks.values()):
            task.discard()
        self.pool.clear()  # tasks not started yet never start
        ok = self.pool.waitForDone(wait_ms)
        if not ok:
            log.error("Background tasks did not stop within %d ms", wait_ms)
        self._tasks.clear()
        return ok


class SerialRunner(TaskRunner):
    """Jobs one at a time, in order, on ONE Python thread that lives as long as the runner, so what a job keeps in
    threading.local (a cached Embedder: a Llama belongs to the thread that made it) serves the next job.

    A QThreadPool thread cannot do this: PySide ends a pool thread's Python state after each job (its thread-locals
    are deleted there and then, a Llama among them) and the next job may run on another thread. `on_exit` runs on
    the thread when the runner shuts down (to close what the jobs kept)."""

    def __init__(self, parent: QObject | None = None, *, name: str = "serial-tasks",
                 on_exit: Callable[[], object] | None = None) -> None:  # fmt: skip
        super().__init__(parent, max_threads=1)
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._on_exit = on_exit
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (work := self._jobs.get()) is not None:
            work()
        if self._on_exit is not None:
            try:
                self._on_exit()
            except Exception:
                log.exception("The end of %s failed", self._thread.name)

    def _submit(self, work: Callable[[], None]) -> None:
        self._jobs.put(work)

    def shutdown(self, wait_ms: int = SHUTDOWN_WAIT_MS) -> bool:
        """Drops the jobs not started, lets the running one end (its result is dropped), runs `on_exit`, and waits
        for the thread to end."""
        self._closed = True
        for task in list(self._tasks.values()):
            task.discard()
        with contextlib.suppress(queue.Empty):
            while True:
                self._jobs.get_nowait()
        self._jobs.put(None)
        self._thread.join(wait_ms / 1000)
        self._tasks.clear()
        if self._thread.is_alive():
            log.error("%s did not stop within %d ms", self._thread.name, wait_ms)
            return False
        return True

"""Runs for the Documents pane, one at a time in the background, with pause, cancel and a queue: indexing a collection,
and embedding its passages with the embedding model chosen for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from llamadesk.ui.documents import jobs
from llamadesk.ui.workers import Task, TaskContext, TaskRunner


class Indexer(QObject):
    """Queues collections to index (or to embed with a model) and runs them one after another on one pool thread.

    A collection asked for while it runs is queued once more (a file may have changed behind the run). Cancel stops
    the run between files, keeps what it did and empties the queue. Pause holds the run between files (it holds no
    write lock while paused). `after(name, fn)` calls `fn` once no run of that collection is in flight: deleting a
    collection waits for its run to stop."""

    started = Signal(str)  # the collection whose run began
    progressed = Signal(str, object)  # the collection, index.Progress or jobs.EmbedProgress (at most ~20 a second)
    finished = Signal(str, object)  # the collection, jobs.IndexResult: a run ended, cancelled or not
    failed = Signal(str, str)  # the collection, one sentence: an indexing run stopped on an error (a full disk)
    embedFailed = Signal(str, str)  # the collection, one sentence: the model could not embed (nothing was changed)
    pausedChanged = Signal(bool)

    def __init__(self, folder: Path | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.folder = folder
        self.runner = TaskRunner(self, max_threads=1)
        self._queue: list[tuple[str, Path | None]] = []  # (collection, embedding model: None for an indexing run)
        self._running: str | None = None
        self._embedding: Path | None = None
        self._task: Task[jobs.IndexResult] | None = None
        self._pause = threading.Event()  # set: the run holds between files
        self._after: dict[str, list[Callable[[], None]]] = {}
        self._closed = False

    # --- what it does ------------------------------------------------------------------------------------------------
    @property
    def running(self) -> str | None:
        """The collection being indexed now, if any."""
        return self._running

    @property
    def embedding(self) -> Path | None:
        """The model the run in flight embeds with; None for an indexing run (or none)."""
        return self._embedding

    @property
    def queued(self) -> tuple[str, ...]:
        return tuple(name for name, _model in self._queue)

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    def busy_with(self, name: str) -> bool:
        return name == self._running or name in self.queued

    # --- requests ----------------------------------------------------------------------------------------------------
    def request(self, name: str) -> None:
        """Indexes the collection soon (incrementally); at once when nothing else runs."""
        if self._closed or (name, None) in self._queue:
            return
        self._queue.append((name, None))
        self._next()

    def embed(self, name: str, model: Path) -> None:
        """Makes `model` the collection's embedding model and embeds its passages soon (instead of another model
        asked for before and not yet started)."""
        if self._closed:
            return
        self._queue = [(n, m) for n, m in self._queue if n != name or m is None] + [(name, model)]
        self._next()

    def drop_embedding(self, name: str) -> None:
        """Drops the collection's queued embedding run and cancels its running one (an indexing run goes on)."""
        self._queue = [(n, m) for n, m in self._queue if n != name or m is None]
        if self._running == name and self._embedding is not None and self._task is not None:
            self._task.cancel()

    def forget(self, name: str) -> None:
        """No more runs of this collection: its queued run is dropped and its running one cancelled."""
        self._queue = [(n, m) for n, m in self._queue if n != name]
        if self._running == name and self._task is not None:
            self._task.cancel()

    def after(self, name: str, fn: Callable[[], None]) -> None:
        """Calls `fn` now when no run of `name` is in flight, else when that run has ended."""
        if self._running == name:
            self._after.setdefault(name, []).append(fn)
        else:
            fn()

    def cancel(self) -> None:
        """Stops the run between files (what it did is kept) and drops the queued ones."""
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
        self.set_paused(False)

    def set_paused(self, on: bool) -> None:
        if on == self._pause.is_set():
            return
        if on:
            self._pause.set()
        else:
            self._pause.clear()
        self.pausedChanged.emit(on)

    def shutdown(self) -> bool:
        """Cancels the run (a paused one wakes for it), waits for its thread; no signal is emitted afterwards."""
        self._closed = True
        self._queue.clear()
        return self.runner.shutdown()

    # --- the runs ----------------------------------------------------------------------------------------------------
    def _next(self) -> None:
        if self._running is not None or not self._queue or self._closed:
            return
        name, model = self._queue.pop(0)
        self._running, self._embedding = name, model
        folder, pause = self.folder, self._pause

        def work(ctx: TaskContext) -> jobs.IndexResult:
            if model is not None:
                return jobs.embed(name, folder, model, ctx.progress, ctx.cancel, pause)
            return jobs.index(name, folder, ctx.progress, ctx.cancel, pause)

        self._task = self.runner.run_in_background(
            work,
            lambda result: self._ended(name, result, None),
            lambda sentence: self._ended(name, None, sentence),
            lambda progress: self.progressed.emit(name, progress),
            name=f"embed {name}" if model is not None else f"index {name}",
        )
        self.started.emit(name)

    def _ended(self, name: str, result: jobs.IndexResult | None, sentence: str | None) -> None:
        embedding = self._embedding
        self._running, self._task, self._embedding = None, None, None
        if not self._queue:
            self.set_paused(False)  # the next run, whenever it comes, starts unpaused
        if result is not None:
            self.finished.emit(name, result)
        elif embedding is not None:
            self.embedFailed.emit(name, sentence or "")
        else:
            self.failed.emit(name, sentence or "")
        for fn in self._after.pop(name, []):
            fn()
        self._next()

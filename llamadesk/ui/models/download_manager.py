"""The GUI side of the download queue: starts, pauses, resumes, cancels and retries jobs on background tasks."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QObject, Signal

from llamadesk.core import secrets
from llamadesk.core.downloads import OFFLINE, Downloader, DownloadJob, DownloadQueue, Progress, RetryPolicy, State
from llamadesk.ui.workers import Task, TaskContext, TaskRunner

T = TypeVar("T")

MAX_PARALLEL = 2  # two files at once keep a fast line busy without starving either
RESUMABLE = (State.QUEUED, State.INTERRUPTED, State.PAUSED)


@dataclasses.dataclass
class _Running:
    task: Task[DownloadJob]
    pause: threading.Event
    cancel: threading.Event  # its own Event: shutting the task runner down must pause a download, never cancel it


class DownloadManager(QObject):
    """Keeps the jobs of <models>/.downloads as the GUI sees them; one background task per running download."""

    jobsChanged = Signal()  # jobs added, removed or reloaded
    jobChanged = Signal(str)  # one job's state, error or running flag changed
    progressed = Signal(object)  # Progress
    jobFinished = Signal(object)  # DownloadJob, DONE: the model is in the library now
    message = Signal(str)  # a sentence for the status line (an error of a queue operation)

    def __init__(
        self,
        models_dir: Path,
        runner: TaskRunner,
        *,
        endpoint: str | None = None,
        parent: QObject | None = None,
        max_parallel: int = MAX_PARALLEL,
    ) -> None:
        super().__init__(parent)
        self.queue = DownloadQueue(models_dir)
        self.runner = runner  # the downloads themselves
        # Reading and writing job records, one at a time and in order: a Retry never races the Cancel before it.
        self._ops = TaskRunner(self, max_threads=1)
        self.endpoint = endpoint
        self.policy: RetryPolicy | None = None  # None: the Downloader's own (tests shorten the waits)
        self.max_parallel = max_parallel
        self._jobs: dict[str, DownloadJob] = {}
        self._progress: dict[str, Progress] = {}
        self._running: dict[str, _Running] = {}
        self._wanted: list[str] = []  # asked to run, waiting for a free slot, in order
        self._pausing: set[str] = set()
        self._closed = False
        self.loaded = False

    # -- what the page reads ------------------------------------------------------------------------------------
    def jobs(self) -> list[DownloadJob]:
        return sorted(self._jobs.values(), key=lambda j: j.created)

    def job(self, job_id: str) -> DownloadJob | None:
        return self._jobs.get(job_id)

    def progress(self, job_id: str) -> Progress | None:
        return self._progress.get(job_id)

    def is_running(self, job_id: str) -> bool:
        return job_id in self._running

    def is_waiting(self, job_id: str) -> bool:
        return job_id in self._wanted

    def is_pausing(self, job_id: str) -> bool:
        return job_id in self._pausing

    def is_cancelling(self, job_id: str) -> bool:
        return job_id in self._running and self._running[job_id].cancel.is_set()

    def active_count(self) -> int:
        return len(self._running) + len(self._wanted)

    def resumable(self) -> list[DownloadJob]:
        return [
            j for j in self.jobs() if j.state in RESUMABLE and not self.is_running(j.id) and not self.is_waiting(j.id)
        ]

    def state_of(self, repo_id: str, filename: str) -> str | None:
        """ "downloaded", "downloading", "queued", "paused", "failed" or None, for marking catalog and Hub rows."""
        for job in self._jobs.values():
            if job.repo_id.lower() == repo_id.lower() and job.filename == filename:
                if job.id in self._running:
                    return "downloading"
                if job.id in self._wanted:
                    return "queued"
                return {State.DONE: "downloaded", State.FAILED: "failed", State.CANCELLED: None}.get(
                    job.state, "paused"
                )
        return None

    # -- loading and adding -------------------------------------------------------------------------------------
    def _record_op(self, fn: Callable[[TaskContext], T], on_done: Callable[[T], None] | None, name: str) -> None:
        """Runs a job-record operation in order; downloads start only once none is pending (see `_pump`)."""

        def done(result: T) -> None:
            if on_done is not None:
                on_done(result)
            self._pump()

        def failed(message: str) -> None:
            self.message.emit(message)
            self._pump()

        self._ops.run_in_background(fn, done, failed, name=name)

    def reload(self) -> None:
        """Reads the persistent queue (in the background): downloads from before a restart show up too."""
        self._record_op(lambda _ctx: self.queue.jobs(), self._on_loaded, name="read download queue")

    def _on_loaded(self, jobs: list[DownloadJob]) -> None:
        for job in jobs:
            if job.id not in self._running:
                self._jobs[job.id] = job
        self.loaded = True
        self.jobsChanged.emit()

    def enqueue(
        self, repo_id: str, files: Sequence[str], *, revision: str = "main", license: str = "", display_name: str = ""
    ) -> None:
        """Queues every file of a model (all parts of a split one) and starts them when a slot is free."""

        def add(_ctx: TaskContext) -> list[DownloadJob]:
            return [
                self.queue.add(
                    repo_id,
                    f,
                    revision=revision,
                    license=license or None,
                    display_name=(display_name or None) if i == 0 else None,
                )
                for i, f in enumerate(files)
            ]

        self._record_op(add, self._on_added, name="queue download")

    def _on_added(self, jobs: list[DownloadJob]) -> None:
        for job in jobs:
            if job.id in self._running:
                continue
            self._jobs[job.id] = job
            if job.id not in self._wanted:
                self._wanted.append(job.id)
        self.jobsChanged.emit()
        self._pump()

    # -- actions ------------------------------------------------------------------------------------------------
    def start(self, job_id: str) -> None:
        """Resume a paused or interrupted download, retry a failed or cancelled one."""
        if job_id in self._jobs and job_id not in self._running and job_id not in self._wanted:
            self._wanted.append(job_id)
            self.jobChanged.emit(job_id)
            self._pump()

    def resume_all(self) -> None:
        for job in self.resumable():
            self._wanted.append(job.id)
            self.jobChanged.emit(job.id)
        self._pump()

    def pause(self, job_id: str) -> None:
        if job_id in self._running:
            self._running[job_id].pause.set()  # answered within one network read; the task then reports PAUSED
            self._pausing.add(job_id)
            self.jobChanged.emit(job_id)
        elif job_id in self._wanted:
            self._wanted.remove(job_id)
            self._set_state(job_id, State.PAUSED)

    def cancel(self, job_id: str) -> None:
        """Stops the download and deletes its partial data (the record stays, as Cancelled, until removed)."""
        if job_id in self._running:
            self._running[job_id].cancel.set()
            self.jobChanged.emit(job_id)
            return
        if job_id in self._wanted:
            self._wanted.remove(job_id)
        self._set_state(job_id, State.CANCELLED, drop_partial=True)

    def remove(self, job_id: str) -> None:
        """Forgets a finished, failed or cancelled download (never deletes a finished model file)."""
        if job_id in self._running or job_id not in self._jobs:
            return
        if job_id in self._wanted:
            self._wanted.remove(job_id)
        self._jobs.pop(job_id)
        self._progress.pop(job_id, None)
        self._record_op(lambda _ctx: self.queue.remove(job_id), None, name="remove download")
        self.jobsChanged.emit()

    def _set_state(self, job_id: str, state: State, *, drop_partial: bool = False) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        updated = dataclasses.replace(job, state=state, bytes_done=0 if drop_partial else job.bytes_done)
        self._jobs[job_id] = updated
        if drop_partial:
            self._progress.pop(job_id, None)
        queue = self.queue

        def save(_ctx: TaskContext) -> None:
            if drop_partial:
                queue.part_path(updated).unlink(missing_ok=True)
            queue.save(updated)

        self._record_op(save, None, name="record download state")
        self.jobChanged.emit(job_id)

    # -- running ------------------------------------------------------------------------------------------------
    def _pump(self) -> None:
        if self._ops.active_count():  # a record is being written: start once it is on disk
            return
        while not self._closed and self._wanted and len(self._running) < self.max_parallel:
            self._launch(self._wanted.pop(0))

    def _launch(self, job_id: str) -> None:
        pause, cancel = threading.Event(), threading.Event()
        queue, endpoint, policy = self.queue, self.endpoint, self.policy

        def work(ctx: TaskContext) -> DownloadJob:
            token = secrets.get_hf_token()  # read here: the keyring may be slow, and it is never logged
            downloader = Downloader(queue, endpoint=endpoint, token=token, policy=policy)
            return downloader.download(
                job_id, progress=lambda p: ctx.progress(p, force=True), cancel=cancel, pause=pause
            )

        task = self.runner.run_in_background(
            work,
            lambda job: self._on_job_done(job_id, job),
            lambda msg: self._on_job_failed(job_id, msg),
            lambda p: self._on_progress(p),
            name=f"download {job_id}",
        )
        self._running[job_id] = _Running(task, pause, cancel)
        job = self._jobs[job_id]
        self._jobs[job_id] = dataclasses.replace(job, state=State.DOWNLOADING, error=None, error_kind=None)
        self.jobChanged.emit(job_id)

    def _on_progress(self, p: Progress) -> None:
        self._progress[p.job_id] = p
        self.progressed.emit(p)

    def _on_job_done(self, job_id: str, job: DownloadJob) -> None:
        self._finish(job_id, job)
        if job.state is State.CANCELLED:
            self._progress.pop(job_id, None)
        if job.state is State.DONE:
            self.jobFinished.emit(job)

    def _on_job_failed(self, job_id: str, message: str) -> None:
        old = self._jobs.get(job_id)
        if old is not None:
            kind = "offline" if message == OFFLINE else None  # the core's sentence for "the Hub could not be reached"
            self._finish(job_id, dataclasses.replace(old, state=State.FAILED, error=message, error_kind=kind))

    def _finish(self, job_id: str, job: DownloadJob) -> None:
        self._running.pop(job_id, None)
        self._pausing.discard(job_id)
        self._jobs[job_id] = job
        self.jobChanged.emit(job_id)
        self._pump()

    def shutdown(self) -> None:
        """Pauses running downloads (their .part files stay for the next start); the runner then waits for them."""
        self._closed = True
        self._wanted.clear()
        for running in self._running.values():
            running.pause.set()
        self._ops.shutdown()

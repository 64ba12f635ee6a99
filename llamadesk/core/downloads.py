"""Resumable, verified downloads of Hub files: Range GETs into a .part file, sha256 as the bytes arrive, retries
with backoff, quarantine of bad files. The persistent queue is in download_queue.py (its names are re-exported)."""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpcore2
import httpx2

from llamadesk.core import hub
from llamadesk.core.download_queue import (
    DISK_MARGIN,
    QUARANTINE_DIR,
    STATE_DIR,
    DiskFullError,
    DownloadBusyError,
    DownloadError,
    DownloadJob,
    DownloadQueue,
    HashMismatchError,
    HubUnreachableError,
    State,
    check_free_space,
)
from llamadesk.core.download_writer import STOP_POLL, BlockWriter, Hasher, Stopped, call_stoppable, stop_requested
from llamadesk.core.errors import LlamaDeskError, ModelLoadError
from llamadesk.core.gguf_header import validate_model_file
from llamadesk.core.library import write_sidecar
from llamadesk.core.remote import SocketWatch, make_client, open_stream
from llamadesk.core.socket_stop import StopWatcher

__all__ = [
    "DISK_MARGIN", "OFFLINE", "QUARANTINE_DIR", "STATE_DIR", "DiskFullError", "DownloadBusyError", "DownloadError",
    "DownloadJob", "DownloadQueue", "Downloader", "HashMismatchError", "HubUnreachableError", "Progress",
    "ProgressCallback", "RetryPolicy", "State", "check_free_space",
]

log = logging.getLogger(__name__)

MiB = 1 << 20
# httpcore2 reads HTTP/1.1 bodies 64 KiB at a time, and the Python work per read (h11 events, buffer copies)
# then costs more than the bytes: 1 MiB reads take ~2.5x less CPU per byte (bench/bench_download.py; the
# maintainers' own measurements in encode/httpcore#135). It is a class attribute with no per-client setting,
# so this applies process-wide; a read still returns whatever the socket has, so small responses are unaffected.
READ_SIZE = 1 * MiB
if getattr(httpcore2.HTTP11Connection, "READ_NUM_BYTES", READ_SIZE) < READ_SIZE:
    httpcore2.HTTP11Connection.READ_NUM_BYTES = READ_SIZE
BLOCK = 4 * MiB  # socket reads (up to READ_SIZE each) are gathered into blocks this big for the writer thread


@dataclass(frozen=True)
class Progress:
    job_id: str
    label: str
    state: State
    bytes_done: int
    total: int | None
    speed: float  # bytes per second over the last few seconds
    eta: float | None  # seconds
    attempt: int = 1
    note: str = ""  # e.g. "retrying in 4 s after server error 503"

    @property
    def fraction(self) -> float | None:
        return self.bytes_done / self.total if self.total else None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # consecutive failures without progress before giving up
    base_delay: float = 1.0
    max_delay: float = 60.0
    stall_timeout: float = 30.0  # seconds without a byte: the connection is dropped and resumed

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


OFFLINE = "Could not reach the Hugging Face Hub; the download will resume where it stopped when you try again."


class _Retry(Exception):
    """A failure worth another try (network error, 5xx, 429, early end of the body); `offline` when no connection
    to the server could be made at all."""

    def __init__(self, why: str, *, offline: bool = False) -> None:
        super().__init__(why)
        self.offline = offline


class _Meter:
    """Speed over a sliding window and a rate-limited progress callback."""

    def __init__(self, job: DownloadJob, callback: ProgressCallback | None, interval: float) -> None:
        self.job, self.callback, self.interval = job, callback, interval
        self.samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        self.last_emit = 0.0
        self.attempt = 1

    def emit(self, done: int, *, force: bool = False, note: str = "") -> None:
        now = time.monotonic()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > 5.0:
            self.samples.popleft()
        if self.callback is None or (not force and now - self.last_emit < self.interval):
            return
        self.last_emit = now
        t0, b0 = self.samples[0]
        speed = (done - b0) / (now - t0) if now > t0 else 0.0
        total = self.job.size
        eta = (total - done) / speed if total and speed > 0 else None
        self.callback(Progress(self.job.id, self.job.label, self.job.state, done, total, speed, eta,
                               self.attempt, note))


class Downloader:
    """Runs one job at a time: HEAD for size/sha256/commit, Range GETs from the .part file, verify, register."""

    def __init__(
        self, queue: DownloadQueue, *, endpoint: str | None = None, token: str | None = None,
        policy: RetryPolicy | None = None, progress_interval: float = 0.1,
        client_factory: Callable[..., httpx2.Client] = make_client,
    ) -> None:
        self.queue = queue
        self.endpoint = endpoint
        self._token = token  # sent only to the Hub's own origin (see remote.auth_headers); never logged
        self.policy = policy or RetryPolicy()
        self.progress_interval = progress_interval
        self._client_factory = client_factory

    def download(self, job: DownloadJob | str, *, progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None, pause: threading.Event | None = None) -> DownloadJob:
        """Downloads (or resumes) a job; returns it DONE, PAUSED or CANCELLED, or raises DownloadError (FAILED)."""
        found = self.queue.get(job) if isinstance(job, str) else self.queue.get(job.id) or job
        if found is None:
            raise DownloadError(f"There is no download with the id {job}.")
        job = found
        if job.state is State.DONE and Path(job.dest).is_file():
            return job
        cancel, pause = cancel or threading.Event(), pause or threading.Event()
        with self.queue.locked(job):
            meter = _Meter(job, progress, self.progress_interval)
            job.state, job.error, job.error_kind = State.DOWNLOADING, None, None
            self.queue.save(job)
            try:
                stop = StopWatcher(lambda: stop_requested(cancel, pause), name="download-stop-watcher", poll=STOP_POLL)
                with stop as watch, \
                        self._client_factory(read_timeout=self.policy.stall_timeout) as client:
                    self._run(job, client, watch, meter, cancel, pause)
            except Stopped:
                if cancel.is_set():
                    self.queue.part_path(job).unlink(missing_ok=True)
                    job.state, job.bytes_done = State.CANCELLED, 0
                else:
                    job.state = State.PAUSED
            except DownloadError as exc:
                job.state, job.error, job.error_kind = State.FAILED, str(exc), exc.kind
                raise
            except LlamaDeskError as exc:  # the Hub's sentences (gated, not found, unsafe name): one error type
                job.state, job.error = State.FAILED, str(exc)
                raise DownloadError(str(exc)) from exc
            except BaseException:  # KeyboardInterrupt in the CLI: keep the .part for the next run
                job.state = State.PAUSED
                raise
            finally:
                try:
                    self.queue.save(job)
                except OSError as exc:  # a full disk must not hide the error that explains it
                    log.warning("Could not record the state of %s: %s", job.label, exc)
                meter.emit(job.bytes_done, force=True)
        return job

    def _run(self, job: DownloadJob, client: httpx2.Client, watch: SocketWatch, meter: _Meter,
             cancel: threading.Event, pause: threading.Event) -> None:
        part = self.queue.part_path(job)
        self._with_retries(job, meter, cancel, pause, lambda: self._resolve(job, part, cancel, pause))
        have = part.stat().st_size if part.is_file() else 0
        check_free_space(self.queue.models_dir, max(0, (job.size or 0) - have), job.label)
        digest = Hasher()
        digest.load(part, cancel, pause)
        while True:
            have = part.stat().st_size if part.is_file() else 0
            if job.size is not None and have >= job.size:
                break
            before = have
            try:
                self._fetch(job, client, watch, part, digest, meter, cancel, pause)
                break
            except _Retry as exc:
                now = part.stat().st_size if part.is_file() else 0
                if now > before:
                    meter.attempt = 1  # progress was made: the failure budget starts again
                if now < before:
                    digest.load(part, cancel, pause)
                self._backoff(job, meter, cancel, pause, str(exc), offline=exc.offline)
        self._finish(job, part, digest)

    def _with_retries(self, job: DownloadJob, meter: _Meter, cancel: threading.Event, pause: threading.Event,
                      step: Callable[[], None]) -> None:
        while True:
            try:
                return step()
            except hub.HubUnavailable as exc:
                self._backoff(job, meter, cancel, pause, str(exc), offline=isinstance(exc, hub.HubUnreachable))

    def _backoff(self, job: DownloadJob, meter: _Meter, cancel: threading.Event, pause: threading.Event,
                 why: str, *, offline: bool = False) -> None:
        if meter.attempt >= self.policy.max_attempts:
            log.info("Download of %s gave up after %d tries: %s", job.label, meter.attempt, why)
            if offline:
                raise HubUnreachableError(OFFLINE)
            raise DownloadError(f"The download of {job.label} failed {meter.attempt} times in a row ({why}); "
                                "run it again later to resume.")
        delay = self.policy.delay(meter.attempt)
        log.info("Download of %s: %s; retrying in %.1f s", job.label, why, delay)
        meter.attempt += 1
        note = f"no connection to the Hub; trying again in {delay:.3g} s" if offline else \
            f"retrying in {delay:.3g} s: {why}"
        meter.emit(job.bytes_done, force=True, note=note)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:  # wait on the events so Pause/Cancel answer at once
            if cancel.wait(min(0.05, max(0.0, deadline - time.monotonic()))) or pause.is_set():
                raise Stopped

    def _resolve(self, job: DownloadJob, part: Path, cancel: threading.Event, pause: threading.Event) -> None:
        """Pins the job to the commit the Hub names; a file that changed since the .part started restarts.
        The HEAD runs on a helper thread, so that Pause and Cancel need not wait for a silent Hub."""
        def head() -> hub.FileMetadata:
            return hub.file_metadata(job.repo_id, job.filename, revision=job.commit or job.revision,
                                     endpoint=self.endpoint, token=self._token)

        meta = call_stoppable(head, cancel, pause)
        if job.etag and meta.etag and job.etag != meta.etag:
            log.info("%s changed on the Hub since the partial download; starting again", job.label)
            part.unlink(missing_ok=True)
        job.size, job.sha256, job.etag = meta.size, meta.sha256, meta.etag
        job.commit, job.url = meta.commit or job.commit, meta.url
        self.queue.save(job)

    def _fetch(self, job: DownloadJob, client: httpx2.Client, watch: SocketWatch, part: Path, digest: Hasher,
               meter: _Meter, cancel: threading.Event, pause: threading.Event) -> None:
        have = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        done = have
        try:
            with open_stream(client, job.url or "", headers=headers, token=self._token, endpoint=self.endpoint,
                             watch=watch) as response:
                status = response.status_code
                if status in (401, 403):
                    raise DownloadError(f"{job.repo_id} is gated or private: accept its license on the Hub and "
                                        "store your token with `llamadesk models login`.")
                if status == 404:
                    raise DownloadError(f"{job.repo_id} has no file named {job.filename} (any more).")
                if status == 416 or (status == 206 and not _range_starts_at(response, have)):
                    part.unlink(missing_ok=True)
                    raise _Retry(f"the server did not resume at byte {have}")
                if status == 429 or status >= 500:
                    raise _Retry(f"server error {status}")
                if status not in (200, 206):
                    raise DownloadError(f"The server answered error {status} for {job.label}.")
                mode = "ab" if status == 206 else "wb"  # 200: the server ignored Range and sends it all
                if status == 200:
                    digest.reset()
                    have = 0
                with open(part, mode, buffering=0) as f:
                    done = self._receive(job, response, BlockWriter(f, digest, have, cancel, pause, response),
                                         meter, cancel, pause)
        except (httpx2.TimeoutException, httpx2.TransportError) as exc:
            if cancel.is_set() or pause.is_set():  # Pause/Cancel shut the socket of a silent server
                raise Stopped from exc
            kind = "stalled" if isinstance(exc, httpx2.TimeoutException) else "failed"
            offline = isinstance(exc, (httpx2.ConnectError, httpx2.ConnectTimeout))
            raise _Retry(f"the connection {kind} ({type(exc).__name__})", offline=offline) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"The disk filled up while downloading {job.label}; free some space and run "
                                    "the download again to resume.") from exc
            raise DownloadError(f"{job.label} could not be written: {exc.strerror or exc}.") from exc
        if job.size is not None and done < job.size:
            raise _Retry("the connection closed early")

    def _receive(self, job: DownloadJob, response: httpx2.Response, writer: BlockWriter, meter: _Meter,
                 cancel: threading.Event, pause: threading.Event) -> int:
        """Reads the body on this thread and hands it to the writer in BLOCK pieces; returns the bytes on disk.
        Whatever happens, the writer has written (and hashed) everything it was given before this returns."""
        writer.start()
        received = writer.written
        last_save = time.monotonic()
        pending: list[bytes] = []
        pending_bytes = 0
        try:
            for data in response.iter_raw():  # as the socket delivers (64 KiB reads)
                pending.append(data)
                pending_bytes += len(data)
                received += len(data)
                if pending_bytes >= BLOCK:
                    writer.put(b"".join(pending))
                    pending, pending_bytes = [], 0
                if cancel.is_set() or pause.is_set():
                    raise Stopped
                meter.emit(received)
                if time.monotonic() - last_save > 1.0:
                    job.bytes_done = writer.written
                    self.queue.save(job)
                    last_save = time.monotonic()
        finally:
            try:  # every byte received is kept, also when the connection failed or Pause stopped it
                if pending and writer.error is None:
                    writer.put(b"".join(pending))
            finally:
                writer.finish()  # raises the writer's OSError (a full disk) over whatever the read saw
            job.bytes_done = writer.written
        return writer.written

    def _finish(self, job: DownloadJob, part: Path, digest: Hasher) -> None:
        size = part.stat().st_size if part.is_file() else 0
        if job.size is not None and size != job.size:
            raise self._quarantine(job, part, f"{job.label} has {size} bytes instead of {job.size}")
        actual = digest.hexdigest()
        if job.sha256 and actual != job.sha256:
            raise self._quarantine(job, part, f"{job.label} failed its checksum (expected {job.sha256[:12]}…, got "
                                              f"{actual[:12]}…)", HashMismatchError)
        first = hub.split_info(job.filename)
        if first is None or first[1] == 1:  # only a split model's first part holds the whole header
            try:
                validate_model_file(part)
            except ModelLoadError as exc:
                raise self._quarantine(job, part, f"{job.label} is not a usable model ({exc})") from exc
        dest = Path(job.dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        commit = f" at commit {job.commit[:12]}" if job.commit else ""
        write_sidecar(dest, {  # the notes first: a crash in between leaves a harmless orphan note, not a bare model
            "source": f"Hugging Face {job.repo_id}{commit}", "repo_id": job.repo_id, "filename": job.filename,
            "revision": job.revision, "commit": job.commit, "sha256": actual, "license": job.license or "",
            "display_name": job.display_name or "",
        })
        os.replace(part, dest)
        job.state, job.bytes_done, job.sha256 = State.DONE, size, job.sha256 or actual
        log.info("Downloaded %s:%s (%d bytes, sha256 %s)", job.repo_id, job.filename, size, actual)

    def _quarantine(self, job: DownloadJob, part: Path, why: str,
                    kind: type[DownloadError] = DownloadError) -> DownloadError:
        folder = self.queue.models_dir / QUARANTINE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{job.label}.{int(time.time())}.corrupt"  # not .gguf: the library never lists it
        os.replace(part, target)
        job.bytes_done = 0
        return kind(f"{why}; it was set aside in {target} and not added to your models. Download it again.")

    def run_pending(self, *, progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                    pause: threading.Event | None = None) -> list[DownloadJob]:
        """Works through the queue in order; a failed job is recorded and the next one starts."""
        finished: list[DownloadJob] = []
        for job in self.queue.pending():
            if (cancel and cancel.is_set()) or (pause and pause.is_set()):
                break
            with contextlib.suppress(LlamaDeskError):  # recorded as FAILED with its sentence
                finished.append(self.download(job, progress=progress, cancel=cancel, pause=pause))
        return finished


def _range_starts_at(response: httpx2.Response, offset: int) -> bool:
    value = response.headers.get("content-range", "")  # "bytes 100-199/1000"
    try:
        return int(value.split()[1].split("-")[0]) == offset
    except (IndexError, ValueError):
        return False

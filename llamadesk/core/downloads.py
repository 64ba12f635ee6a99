"""Resumable, verified downloads of Hub files with a persistent queue; driven by a worker thread or the CLI."""

from __future__ import annotations

import collections
import contextlib
import enum
import errno
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psutil

from llamadesk.core import hub
from llamadesk.core.errors import LlamaDeskError, ModelLoadError
from llamadesk.core.gguf_header import validate_model_file
from llamadesk.core.library import write_sidecar
from llamadesk.core.remote import make_client, open_stream

log = logging.getLogger(__name__)

MiB = 1 << 20
STATE_DIR = ".downloads"  # inside the models folder: the .part files then sit on the same file system
QUARANTINE_DIR = ".quarantine"
DISK_MARGIN = 64 * MiB  # never fill a disk to the last byte: the OS and the history database need room


class DownloadError(LlamaDeskError):
    """A download failed; the partial file is kept for a later resume unless the message says otherwise."""


class DiskFullError(DownloadError):
    """Not enough free space for the file."""


class HashMismatchError(DownloadError):
    """The file's sha256 is not the one the Hub announced; it was quarantined."""


class DownloadBusyError(DownloadError):
    """Another LlamaDesk process is downloading the same file."""


class State(str, enum.Enum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    INTERRUPTED = "interrupted"  # the process died mid-way; resumes from the .part file
    FAILED = "failed"
    CANCELLED = "cancelled"
    DONE = "done"


@dataclass
class DownloadJob:
    id: str
    repo_id: str
    filename: str
    revision: str
    dest: str  # final path of the model file
    state: State = State.QUEUED
    size: int | None = None
    sha256: str | None = None
    etag: str | None = None
    commit: str | None = None
    url: str | None = None
    bytes_done: int = 0
    error: str | None = None
    license: str | None = None
    display_name: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        return self.filename.rsplit("/", 1)[-1]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DownloadJob:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["state"] = State(known.get("state", "queued"))
        return cls(**known)


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


class _Retry(Exception):
    """A failure worth another try (network error, 5xx, 429, early end of the body)."""


class _Stopped(Exception):
    pass


class DownloadQueue:
    """Jobs as one JSON file each in <models>/.downloads, next to their .part files; survives restarts."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self.state_dir = models_dir / STATE_DIR

    def dest_for(self, repo_id: str, filename: str) -> Path:
        """A readable place: <models>/<owner>/<repo>/<file>, as LM Studio lays its folder out."""
        hub.check_repo_id(repo_id)
        hub.check_remote_name(filename)
        return self.models_dir.joinpath(*repo_id.split("/"), *filename.split("/"))

    def part_path(self, job: DownloadJob) -> Path:
        return self.state_dir / f"{job.id}.part"

    def _state_path(self, job_id: str) -> Path:
        return self.state_dir / f"{job_id}.json"

    def add(self, repo_id: str, filename: str, *, revision: str = "main", license: str | None = None,
            display_name: str | None = None) -> DownloadJob:
        """Queues a file (or returns the job already queued for it); names are checked before anything is written."""
        hub.check_revision(revision)
        dest = self.dest_for(repo_id, filename)
        job_id = hashlib.sha256(f"{repo_id}\n{revision}\n{filename}".encode()).hexdigest()[:16]
        job = self.get(job_id)
        if job is None:
            job = DownloadJob(job_id, repo_id, filename, revision, str(dest), license=license,
                              display_name=display_name)
        elif job.state in (State.FAILED, State.CANCELLED, State.DONE) and not Path(job.dest).is_file():
            job.state, job.error = State.QUEUED, None
        self.save(job)
        return job

    def save(self, job: DownloadJob) -> None:
        job.updated = time.time()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self._state_path(job.id)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(job.to_json(), indent=2), encoding="utf-8")
        os.replace(tmp, path)

    def get(self, job_id: str) -> DownloadJob | None:
        try:
            job = DownloadJob.from_json(json.loads(self._state_path(job_id).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("Ignoring the unreadable download record %s: %s", job_id, exc)
            return None
        if job.state is State.DOWNLOADING and not self._locked_by_live_process(job_id):
            job.state = State.INTERRUPTED
        if job.state is not State.DONE:
            part = self.part_path(job)
            job.bytes_done = part.stat().st_size if part.is_file() else 0
        return job

    def jobs(self) -> list[DownloadJob]:
        """Every known download, oldest first (the GUI lists them after a restart too)."""
        if not self.state_dir.is_dir():
            return []
        found = [self.get(p.stem) for p in self.state_dir.glob("*.json")]
        return sorted((j for j in found if j is not None), key=lambda j: j.created)

    def pending(self) -> list[DownloadJob]:
        return [j for j in self.jobs() if j.state in (State.QUEUED, State.INTERRUPTED)]

    def remove(self, job_id: str) -> None:
        """Forgets a job and deletes its partial data (never the finished model file)."""
        for path in (self.state_dir / f"{job_id}.part", self._state_path(job_id)):
            path.unlink(missing_ok=True)

    def partial_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.state_dir.glob("*.part")) if self.state_dir.is_dir() else 0

    # A lock file holding the owner's pid: a process killed mid-download leaves it behind, and a dead pid frees it.
    def _lock_path(self, job_id: str) -> Path:
        return self.state_dir / f"{job_id}.lock"

    def _locked_by_live_process(self, job_id: str) -> bool:
        try:
            pid = int(self._lock_path(job_id).read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            return False
        return pid > 0 and (pid == os.getpid() or psutil.pid_exists(pid))

    @contextlib.contextmanager
    def locked(self, job: DownloadJob) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock = self._lock_path(job.id)
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._locked_by_live_process(job.id):
                    raise DownloadBusyError(f"{job.label} is already being downloaded by another LlamaDesk window.") \
                        from None
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(str(os.getpid()))
            break
        else:
            raise DownloadBusyError(f"{job.label} is locked by another process; try again.")
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def check_free_space(folder: Path, needed: int, label: str) -> None:
    """Raises DiskFullError with a sentence when `folder`'s disk has less than `needed` + a margin free."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed + DISK_MARGIN > free:
        raise DiskFullError(
            f"Not enough free space for {label}: it needs {_gb(needed)} more and {folder} has {_gb(free)} free; "
            "free some space or choose another models folder."
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


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
            job.state, job.error = State.DOWNLOADING, None
            self.queue.save(job)
            try:
                with self._client_factory(read_timeout=self.policy.stall_timeout) as client:
                    self._run(job, client, meter, cancel, pause)
            except _Stopped:
                if cancel.is_set():
                    self.queue.part_path(job).unlink(missing_ok=True)
                    job.state, job.bytes_done = State.CANCELLED, 0
                else:
                    job.state = State.PAUSED
            except DownloadError as exc:
                job.state, job.error = State.FAILED, str(exc)
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

    def _run(self, job: DownloadJob, client: httpx2.Client, meter: _Meter, cancel: threading.Event,
             pause: threading.Event) -> None:
        part = self.queue.part_path(job)
        self._with_retries(job, meter, cancel, pause, lambda: self._resolve(job, part))
        have = part.stat().st_size if part.is_file() else 0
        check_free_space(self.queue.models_dir, max(0, (job.size or 0) - have), job.label)
        digest = _Hasher()
        digest.load(part, cancel, pause)
        while True:
            have = part.stat().st_size if part.is_file() else 0
            if job.size is not None and have >= job.size:
                break
            before = have
            try:
                self._fetch(job, client, part, digest, meter, cancel, pause)
                break
            except _Retry as exc:
                now = part.stat().st_size if part.is_file() else 0
                if now > before:
                    meter.attempt = 1  # progress was made: the failure budget starts again
                if now < before:
                    digest.load(part, cancel, pause)
                self._backoff(job, meter, cancel, pause, str(exc))
        self._finish(job, part, digest)

    def _with_retries(self, job: DownloadJob, meter: _Meter, cancel: threading.Event, pause: threading.Event,
                      step: Callable[[], None]) -> None:
        while True:
            try:
                return step()
            except hub.HubUnavailable as exc:
                self._backoff(job, meter, cancel, pause, str(exc))

    def _backoff(self, job: DownloadJob, meter: _Meter, cancel: threading.Event, pause: threading.Event,
                 why: str) -> None:
        if meter.attempt >= self.policy.max_attempts:
            raise DownloadError(f"The download of {job.label} failed {meter.attempt} times in a row ({why}); "
                                "run it again later to resume.")
        delay = self.policy.delay(meter.attempt)
        log.info("Download of %s: %s; retrying in %.1f s", job.label, why, delay)
        meter.attempt += 1
        meter.emit(job.bytes_done, force=True, note=f"retrying in {delay:.3g} s: {why}")
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:  # wait on the events so Pause/Cancel answer at once
            if cancel.wait(min(0.05, max(0.0, deadline - time.monotonic()))) or pause.is_set():
                raise _Stopped

    def _resolve(self, job: DownloadJob, part: Path) -> None:
        """Pins the job to the commit the Hub names; a file that changed since the .part started restarts."""
        meta = hub.file_metadata(job.repo_id, job.filename, revision=job.commit or job.revision,
                                 endpoint=self.endpoint, token=self._token)
        if job.etag and meta.etag and job.etag != meta.etag:
            log.info("%s changed on the Hub since the partial download; starting again", job.label)
            part.unlink(missing_ok=True)
        job.size, job.sha256, job.etag = meta.size, meta.sha256, meta.etag
        job.commit, job.url = meta.commit or job.commit, meta.url
        self.queue.save(job)

    def _fetch(self, job: DownloadJob, client: httpx2.Client, part: Path, digest: _Hasher, meter: _Meter,
               cancel: threading.Event, pause: threading.Event) -> None:
        have = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        last_save = time.monotonic()
        try:
            with open_stream(client, job.url or "", headers=headers, token=self._token,
                             endpoint=self.endpoint) as response:
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
                with open(part, mode, buffering=0) as f:  # unbuffered: a killed process loses no byte it got
                    done = have
                    for data in response.iter_raw():  # as the socket delivers: Pause answers within one read
                        f.write(data)
                        digest.update(data)
                        done += len(data)
                        job.bytes_done = done
                        meter.emit(done)
                        if cancel.is_set() or pause.is_set():
                            raise _Stopped
                        if time.monotonic() - last_save > 1.0:
                            self.queue.save(job)
                            last_save = time.monotonic()
        except httpx2.TimeoutException as exc:
            raise _Retry(f"the connection stalled ({type(exc).__name__})") from exc
        except httpx2.TransportError as exc:
            raise _Retry(f"the connection failed ({type(exc).__name__})") from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"The disk filled up while downloading {job.label}; free some space and run "
                                    "the download again to resume.") from exc
            raise DownloadError(f"{job.label} could not be written: {exc.strerror or exc}.") from exc
        if job.size is not None and done < job.size:
            raise _Retry("the connection closed early")

    def _finish(self, job: DownloadJob, part: Path, digest: _Hasher) -> None:
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


class _Hasher:
    """sha256 of the .part file as it grows; rebuilt from the disk when the file is cut or started again."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._digest.update(data)

    def reset(self) -> None:
        self._digest = hashlib.sha256()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def load(self, path: Path, cancel: threading.Event, pause: threading.Event) -> None:
        """Hashes the bytes already on disk: a resumed download reads its .part once, locally."""
        self._digest = hashlib.sha256()
        if path.is_file():
            with open(path, "rb") as f:
                while chunk := f.read(4 * MiB):
                    self._digest.update(chunk)
                    if cancel.is_set() or pause.is_set():
                        raise _Stopped


def _range_starts_at(response: httpx2.Response, offset: int) -> bool:
    value = response.headers.get("content-range", "")  # "bytes 100-199/1000"
    try:
        return int(value.split()[1].split("-")[0]) == offset
    except (IndexError, ValueError):
        return False

"""The persistent download queue: one JSON record per job in <models>/.downloads beside its .part file, the
lock that keeps two processes off one file, and the free-space check."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from llamadesk.core import hub
from llamadesk.core.errors import LlamaDeskError

log = logging.getLogger(__name__)

MiB = 1 << 20
STATE_DIR = ".downloads"  # inside the models folder: the .part files then sit on the same file system
QUARANTINE_DIR = ".quarantine"
DISK_MARGIN = 64 * MiB  # never fill a disk to the last byte: the OS and the history database need room


class DownloadError(LlamaDeskError):
    """A download failed; the partial file is kept for a later resume unless the message says otherwise."""

    kind: str | None = None  # recorded on the job (error_kind), so a window can word it for its own buttons


class HubUnreachableError(DownloadError):
    """The Hub could not be reached at all, try after try; the partial file waits for the next try."""

    kind = "offline"


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
    error_kind: str | None = None  # DownloadError.kind: "offline" when the Hub could not be reached
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

    def add(
        self,
        repo_id: str,
        filename: str,
        *,
        revision: str = "main",
        license: str | None = None,
        display_name: str | None = None,
    ) -> DownloadJob:
        """Queues a file (or returns the job already queued for it); names are checked before anything is written."""
        hub.check_revision(revision)
        dest = self.dest_for(repo_id, filename)
        job_id = hashlib.sha256(f"{repo_id}\n{revision}\n{filename}".encode()).hexdigest()[:16]
        job = self.get(job_id)
        if job is None:
            job = DownloadJob(
                job_id, repo_id, filename, revision, str(dest), license=license, display_name=display_name
            )
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
                    raise DownloadBusyError(
                        f"{job.label} is already being downloaded by another LlamaDesk window."
                    ) from None
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

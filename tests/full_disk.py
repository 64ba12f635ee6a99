"""A full disk for tests: a small tmpfs filled to its last byte where mounting is allowed (root, as in CI), else the
same refusals injected — ENOSPC from /dev/full for files, SQLITE_FULL for every write to the history — in this
process (`inject`) or in a child process (`child_env`: a sitecustomize injects them at its start). Never a skip:
LLAMADESK_TEST_NO_MOUNT=1 runs the injected form where a tmpfs could be mounted.

Plain standard library: the child's sitecustomize imports this module before anything else.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ARMED_ENV = "LLAMADESK_TEST_FULL_DISK"  # in a child: the folder whose writes are refused
NO_MOUNT_ENV = "LLAMADESK_TEST_NO_MOUNT"  # "1": use the injected refusals even where a tmpfs could be mounted
SITE = Path(__file__).resolve().parent / "full_disk_site"
SIZE = "16m"


class FullDisk:
    """A folder on a small filesystem: `fill()` takes the space left, `free()` gives it back."""

    def __init__(self, root: Path, mounted: bool) -> None:
        self.root, self.mounted, self.full = root, mounted, False

    @property
    def kind(self) -> str:
        return "tmpfs" if self.mounted else "injected ENOSPC / SQLITE_FULL"

    def fill(self) -> None:
        if self.mounted:
            chunk = b"\0" * (1 << 20)
            with open(self.root / "filler", "ab", buffering=0) as f, contextlib.suppress(OSError):  # until ENOSPC
                while True:
                    f.write(chunk)
            probe = self.root / "probe"
            try:  # the proof: not one more byte fits
                probe.write_bytes(b"x")
            except OSError:
                pass
            else:
                raise AssertionError(f"the tmpfs at {self.root} still has room")
            finally:
                probe.unlink(missing_ok=True)
        self.full = True

    def free(self) -> None:
        (self.root / "filler").unlink(missing_ok=True)
        self.full = False

    def child_env(self) -> dict[str, str]:
        """Environment additions for a child process that must meet the full disk (nothing when it is real)."""
        if self.mounted or not self.full:
            return {}
        paths = [str(SITE), str(SITE.parent), os.environ.get("PYTHONPATH", "")]
        return {"PYTHONPATH": os.pathsep.join(p for p in paths if p), ARMED_ENV: str(self.root)}

    def inject(self, setattr_: Callable[[Any, str, Any], None]) -> None:
        """In this process, once full (pass monkeypatch.setattr, which undoes it): refuse writes under the root."""
        assert self.full, "fill() first"
        if not self.mounted:
            install(self.root, setattr_)


@contextlib.contextmanager
def small_disk(folder: Path) -> Iterator[FullDisk]:
    """A 16 MB tmpfs at `folder` (root), or the same folder with injected refusals where mounting fails."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = False
    if os.environ.get(NO_MOUNT_ENV) != "1":
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(folder)],
                              capture_output=True, check=False)  # fmt: skip
        mounted = done.returncode == 0
    try:
        yield FullDisk(folder, mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def _under(path: str | os.PathLike[str] | bytes, root: Path) -> bool:
    if isinstance(path, bytes) or str(path).startswith(("file:", ":memory:")) or not str(path):
        return False
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def _full_error() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = 13  # type: ignore[attr-defined]  # SQLITE_FULL, as SQLite reports a full disk
    exc.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    return exc


class _FullConnection(sqlite3.Connection):
    """Every statement that would write fails as on a full disk; reads go through."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.lstrip().upper().startswith(_WRITES):
            raise _full_error()
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.lstrip().upper().startswith(_WRITES):
            raise _full_error()
        return super().executemany(sql, *args)


def _writes(mode: str) -> bool:
    return any(c in mode for c in "wax+")


def install(root: Path, setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """The injected full disk under `root`: the log file and files written through io.open (Path.write_text) or
    os.fdopen (after mkstemp) are /dev/full — created, but every flush fails with ENOSPC, as on a full disk — and
    an SQLite file refuses every write with SQLITE_FULL, as on a full disk."""
    real_open = logging.FileHandler._open
    real_io_open = io.open
    real_fdopen = os.fdopen
    real_connect = sqlite3.connect

    def full(mode: str, *args: Any, **kwargs: Any) -> Any:
        return real_io_open("/dev/full", mode.replace("x", "w"), *args, **kwargs)

    def open_log(self: logging.FileHandler) -> Any:
        if _under(self.baseFilename, root):
            real_io_open(self.baseFilename, "ab").close()
            return full("a", encoding=self.encoding or "utf-8")
        return real_open(self)

    def io_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if not isinstance(file, int) and _writes(mode) and _under(file, root):
            real_io_open(file, "ab").close()
            return full(mode, *args, **kwargs)
        return real_io_open(file, mode, *args, **kwargs)

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if _writes(mode):
            with contextlib.suppress(OSError):
                if _under(os.readlink(f"/proc/self/fd/{fd}"), root):
                    os.close(fd)
                    return full(mode, *args, **kwargs)
        return real_fdopen(fd, mode, *args, **kwargs)

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if _under(database, root):
            kwargs["factory"] = _FullConnection
        return real_connect(database, *args, **kwargs)

    setattr_(logging.FileHandler, "_open", open_log)
    setattr_(io, "open", io_open)
    setattr_(os, "fdopen", fdopen)
    setattr_(sqlite3, "connect", connect)

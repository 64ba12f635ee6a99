"""Logging: a rotating file in the user's log folder that falls silent when it cannot write; stderr when asked for."""

from __future__ import annotations

import contextlib
import errno
import logging
import logging.handlers
import sys
from pathlib import Path

LOG_FILE_NAME = "llamadesk.log"

_failure: str | None = None  # why the log stopped in this process, as one sentence; None while it writes


class QuietFileHandler(logging.handlers.RotatingFileHandler):
    """The log file. A write that fails (a full disk, a folder removed) turns it off for the rest of the run,
    silently: Python's default prints a traceback per record (one per llama.cpp log line), and logging must never
    talk over the app. `failure()` gives the reason once, for the front end to say it in its own place."""

    def emit(self, record: logging.LogRecord) -> None:
        if _failure is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)  # a mistake in a log call itself (bad format arguments): Python's report
            return
        _stop(_sentence(Path(self.baseFilename), exc))
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()  # its buffer still holds the unwritten text: closing drops it (and raises)


def _sentence(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk holding the log folder {path.parent} is full, so logging stopped; free some space there."
    return f"The log file {path} could not be written ({exc.strerror or exc}), so logging stopped."


def _stop(sentence: str) -> None:
    global _failure
    if _failure is None:
        _failure = sentence


def _mark(handler: logging.Handler) -> None:
    handler._llamadesk = True  # type: ignore[attr-defined]  # ours: replaced when configure() runs again


def failure() -> str | None:
    """Why the log file stopped being written in this process (one sentence), or None while all is well."""
    return _failure


def configure(log_dir: Path, *, verbose: bool = False) -> Path | None:
    """Sends every LlamaDesk and llama.cpp record (debug and up) to <log_dir>/llamadesk.log, 3 × 2 MB."""
    global _failure
    _failure = None
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "_llamadesk", False):
            root.removeHandler(handler)
            handler.close()
    path: Path | None = None
    file_handler: logging.Handler
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = QuietFileHandler(log_dir / LOG_FILE_NAME, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        path = log_dir / LOG_FILE_NAME
    except OSError as exc:
        # A log folder that cannot be written must not stop the app, nor send its records to stderr (with no
        # handler at all, Python's last resort would print every warning there).
        _stop(_sentence(log_dir / LOG_FILE_NAME, exc))
        file_handler = logging.NullHandler()
    _mark(file_handler)
    root.addHandler(file_handler)
    if verbose:
        stream = logging.StreamHandler()
        stream.setLevel(logging.INFO)
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        _mark(stream)
        root.addHandler(stream)
    return path

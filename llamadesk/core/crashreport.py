"""Crash reports, written locally only: a text file per unexpected error, and native crashes via faulthandler."""

from __future__ import annotations

import faulthandler
import platform
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import IO

from llamadesk import __version__

_native_log: IO[str] | None = None  # faulthandler writes into this file from a signal handler: keep it open


def enable_native_crash_log(log_dir: Path) -> Path | None:
    """A segfault or abort inside llama.cpp or Qt leaves the Python stacks of every thread in this file."""
    global _native_log
    path = log_dir / "native-crashes.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        if _native_log is None:
            _native_log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - must outlive this function
        faulthandler.enable(_native_log, all_threads=True)
    except OSError:
        return None
    return path


def write_report(
    log_dir: Path, kind: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> Path | None:
    """Writes one report (versions, platform, traceback) and returns its path; nothing is ever sent anywhere.
    No environment variables or settings are included, so no token or private path beyond the traceback's."""
    try:
        import llama_cpp

        llama_version = str(llama_cpp.__version__)
    except Exception:  # the report must be written even when the library is what broke
        llama_version = "unavailable"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = log_dir / f"crash-{stamp}.txt"
    text = (
        f"LlamaDesk {__version__} crash report ({time.strftime('%Y-%m-%d %H:%M:%S')})\n"
        f"Python {sys.version.split()[0]} on {platform.platform()}\n"
        f"llama-cpp-python {llama_version}\n\n" + "".join(traceback.format_exception(kind, exc, tb))
    )
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError:
        return None
    return path

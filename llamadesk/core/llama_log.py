"""Routes llama.cpp's native log into Python logging with the right levels, and keeps its recent errors."""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import deque
from typing import Any

log = logging.getLogger("llamadesk.llama_cpp")

# ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the previous message).
# llama_cpp/_logger.py maps an older numbering, which files real errors as DEBUG; hence this bridge.
_LEVELS = {0: logging.INFO, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_CONT = 5

_lock = threading.Lock()
_partial: list[str] = []
_partial_level = logging.INFO
_recent: deque[tuple[int, int, str]] = deque(maxlen=64)  # (sequence number, level, line), WARNING and above
_seq = 0
_callback: Any = None  # the ctypes callback must outlive every call from C


def _emit_line(level: int, line: str) -> None:
    global _seq
    line = line.rstrip()
    if not line:
        return
    if level >= logging.WARNING:
        _seq += 1
        _recent.append((_seq, level, line))
    log.log(level, "%s", line)


def _on_log(level: int, text: bytes | None, _user_data: ctypes.c_void_p) -> None:
    global _partial_level
    chunk = (text or b"").decode("utf-8", errors="replace")
    with _lock:
        if level != _CONT:
            if _partial:  # a new message starts: flush what the previous one left unterminated
                _emit_line(_partial_level, "".join(_partial))
                _partial.clear()
            _partial_level = _LEVELS.get(level, logging.INFO)
        *complete, rest = chunk.split("\n")
        for piece in complete:
            _partial.append(piece)
            _emit_line(_partial_level, "".join(_partial))
            _partial.clear()
        if rest:
            _partial.append(rest)


def install() -> None:
    """Replaces llama-cpp-python's own log callback (which prints to stderr) with ours. Idempotent."""
    global _callback
    if _callback is not None:
        return
    import llama_cpp

    _callback = llama_cpp.llama_log_callback(_on_log)
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def mark() -> int:
    """A position in the error record; pass it to `reason_since` after an operation."""
    with _lock:
        return _seq


def reason_since(position: int) -> str | None:
    """The most telling error llama.cpp logged since `mark()`, as plain text, or None."""
    with _lock:
        lines = [(level, text) for seq, level, text in _recent if seq > position]
    errors = [text for level, text in lines if level >= logging.ERROR] or [text for _, text in lines]
    for text in reversed(errors):
        if "error loading model:" in text:
            return text.split("error loading model:", 1)[1].strip()
    return errors[-1].split(": ", 1)[-1].strip() if errors else None


def install_mtmd() -> None:
    """Routes the multimodal library's log (libmtmd: projector loading, image encoding) here too; by default it
    prints to stderr, and its reasons (a projector that does not match its model) would not reach `reason_since`."""
    install()
    import llama_cpp.mtmd_cpp as mtmd_cpp

    mtmd_cpp.mtmd_log_set(_callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_callback, ctypes.c_void_p(0))

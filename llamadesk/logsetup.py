"""Logging: a rotating file in the user's log folder; stderr only when asked for."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_FILE_NAME = "llamadesk.log"


def configure(log_dir: Path, *, verbose: bool = False) -> Path | None:
    """Sends every LlamaDesk and llama.cpp record (debug and up) to <log_dir>/llamadesk.log, 3 × 2 MB."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "_llamadesk", False):
            root.removeHandler(handler)
    path: Path | None = None
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_dir / LOG_FILE_NAME, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        file_handler._llamadesk = True  # type: ignore[attr-defined]
        root.addHandler(file_handler)
        path = log_dir / LOG_FILE_NAME
    except OSError:
        pass  # a read-only log folder must not stop the app
    if verbose:
        stream = logging.StreamHandler()
        stream.setLevel(logging.INFO)
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        stream._llamadesk = True  # type: ignore[attr-defined]
        root.addHandler(stream)
    return path

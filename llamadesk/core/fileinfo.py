"""SHA-256 of model files, computed once per file version and remembered in the cache folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from llamadesk.paths import get_paths

log = logging.getLogger(__name__)
_lock = threading.Lock()
CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_version_key(path: Path) -> str:
    """Names one version of a file: its resolved path, size and modification time."""
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def recall(cache_file: Path, key: str) -> object:
    """What `remember` stored under `key` in a small JSON file, or None (missing or unreadable file)."""
    with _lock:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return cache.get(key) if isinstance(cache, dict) else None


def remember(cache_file: Path, key: str, value: object) -> None:
    """Stores `value` under `key`, written through a temporary file; failing only costs the work again later."""
    with _lock:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache = {}
        if not isinstance(cache, dict):
            cache = {}
        cache[key] = value
        tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(cache), encoding="utf-8")
            os.replace(tmp, cache_file)
        except OSError as exc:
            log.warning("Could not write %s: %s", cache_file, exc)
            with contextlib.suppress(OSError):  # a full disk leaves no half-written temporary file behind
                tmp.unlink(missing_ok=True)


def sha256_cached(path: Path, cache_file: Path | None = None) -> str:
    """The file's SHA-256; reused while its size and modification time are unchanged."""
    cache_file = cache_file or get_paths().cache / "sha256.json"
    key = file_version_key(path)
    known = recall(cache_file, key)
    if isinstance(known, str):
        return known
    digest = sha256_file(path)
    remember(cache_file, key, digest)
    return digest

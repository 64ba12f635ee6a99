"""SHA-256 of model files, computed once per file version and remembered in the cache folder."""

from __future__ import annotations

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


def sha256_cached(path: Path, cache_file: Path | None = None) -> str:
    """The file's SHA-256; reused while its size and modification time are unchanged."""
    cache_file = cache_file or get_paths().cache / "sha256.json"
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    with _lock:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache = {}
        if not isinstance(cache, dict):
            cache = {}
        if isinstance(cache.get(key), str):
            return str(cache[key])
    digest = sha256_file(path)
    with _lock:
        cache[key] = digest
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(cache_file.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache), encoding="utf-8")
            os.replace(tmp, cache_file)
        except OSError as exc:  # a read-only cache only costs a re-hash next time
            log.warning("Could not remember the hash of %s: %s", path, exc)
    return digest

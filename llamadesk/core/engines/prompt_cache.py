"""Saved llama.cpp KV states of conversations' prompts: several in RAM, then on disk (LRU, bounded), so that switching
conversations, two clients on the server or reopening a chat restores the prompt instead of reading it again.

A state is llama.cpp's own serialization of sequence 0 (`llama_state_seq_get_data`): only the KV cells in use, no
logits (Llama.save_state() also copies the whole context's logits and the Python-side score matrix; with speculative
decoding, which needs every token's logits, that is n_ctx × n_vocab floats — hundreds of MB — per state). It is keyed
by the model file's SHA-256, every context setting that shapes the KV bytes, the library version, and the exact
tokens it holds; a state is used only under the same key, for a prompt that shares its first tokens.

On disk: one file per state under the cache folder's prompt-states/<key digest>/, written to a temporary file, synced
and renamed (a kill -9 during a save leaves the old files and at most a stray temporary file, removed later), with a
CRC of its tokens and state: a corrupt or truncated file is deleted and the prompt is read again. A full disk loses
nothing but that save (one log line). Files are written by one background thread, so a reply's end never waits on
the disk; the engine's thread alone touches the Llama.

Hand-written rather than llama_state_seq_save_file(): that one writes in place (no atomic rename, no checksum) and
keeps no index or size bound; llama-cpp-python's LlamaDiskCache pickles Llama.save_state() (the full context).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import queue
import struct
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llamadesk.paths import get_paths

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FOLDER = "prompt-states"
DEFAULT_DISK_MB = 4096  # AppSettings.prompt_cache_mb's default; 0 turns the cache off
RAM_CAP = 1 << 30  # RAM budget: at most this, and at most 1/16 of the machine's memory
MIN_TOKENS = 32  # shorter prompts are read again in no time: not worth a state
MIN_GAIN = 16  # restore a state only when it saves reading at least this many tokens
STALE_TMP_S = 600  # a temporary file this old was left by a killed process (a live save takes seconds)
MAGIC = b"LDPS"
FORMAT = 1
_HEAD = struct.Struct("<4sIQ")  # magic, format, header length; then the JSON header, the tokens (int32), the state

# Test seam: called between the two halves of a state's data while it is written (a test kills the process there).
_mid_write_hook: Callable[[Path], None] | None = None

_cleared = 0  # bumped by clear(): caches in this process drop their RAM states too
_cleared_lock = threading.Lock()


def cache_root(paths: Any = None) -> Path:
    """The folder that holds every prompt state (the user's cache folder, or `paths`'s)."""
    return (paths or get_paths()).cache / FOLDER


def _state_files(root: Path) -> list[os.DirEntry[str]]:
    found: list[os.DirEntry[str]] = []
    with contextlib.suppress(OSError), os.scandir(root) as folders:
        for folder in folders:
            if folder.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError), os.scandir(folder.path) as files:
                    found += [f for f in files if f.name.endswith(".state") and f.is_file(follow_symlinks=False)]
    return found


def disk_usage(root: Path | None = None) -> int:
    """Bytes the saved states take on disk."""
    total = 0
    for f in _state_files(root or cache_root()):
        with contextlib.suppress(OSError):
            total += f.stat().st_size
    return total


def describe(root: Path | None = None) -> dict[str, Any]:
    """What the cache holds: its folder, the number of states, their bytes, and for how many model settings."""
    root = root or cache_root()
    files = _state_files(root)
    return {
        "folder": str(root),
        "states": len(files),
        "bytes": disk_usage(root),
        "models": len({Path(f.path).parent.name for f in files}),
    }


def clear(root: Path | None = None) -> int:
    """Deletes every saved state (and the RAM states of this process's caches); returns the bytes freed."""
    global _cleared
    root = root or cache_root()
    freed = 0
    for f in _state_files(root):
        with contextlib.suppress(OSError):
            size = f.stat().st_size
            os.unlink(f.path)
            freed += size
    with _cleared_lock:
        _cleared += 1
    log.info("Prompt cache cleared: %d bytes freed", freed)
    return freed


def ram_budget() -> int:
    import psutil

    return int(min(RAM_CAP, psutil.virtual_memory().total // 16))


def context_key(sha256: str, llama: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a KV state's bytes depend on: the exact model file, the context's shape and the library."""
    import llama_cpp

    params = llama.context_params
    return {
        "model_sha256": sha256,
        "n_ctx": int(llama.n_ctx()),
        "n_batch": int(params.n_batch),
        "n_ubatch": int(params.n_ubatch),
        "n_seq_max": int(params.n_seq_max),
        "type_k": int(params.type_k),
        "type_v": int(params.type_v),
        "swa_full": bool(params.swa_full),
        "llama_cpp_python": llama_cpp.__version__,
        "format": FORMAT,
        **extra,
    }


def _digest(data: bytes, n: int = 40) -> str:
    return hashlib.sha256(data).hexdigest()[:n]


def _common(a: np.ndarray, b: np.ndarray) -> int:
    import numpy as np

    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


@dataclass(eq=False)
class _Entry:
    name: str  # digest of the tokens: the file's name
    tokens: np.ndarray  # int32
    n_bytes: int  # the state's size
    data: bytearray | None = None  # in RAM
    path: Path | None = None  # on disk
    dropped: bool = False  # superseded or evicted: a pending write is skipped
    supersedes: list[Path] = field(default_factory=list)  # files deleted once this one is on disk


@dataclass
class RestoreInfo:
    """What the last restore did, for the receipt."""

    tokens: int = 0
    source: str = ""  # "ram" or "disk"
    seconds: float = 0.0
    rejected: list[str] = field(default_factory=list)  # files found corrupt and deleted


class PromptCache:
    """The states of one model under one set of context settings. The engine's thread calls restore() and save();
    a background thread writes the files. close() waits for pending writes."""

    def __init__(self, key: Mapping[str, Any], root: Path, *, disk_bytes: int, ram_bytes: int) -> None:
        self.key = dict(key)
        self.root = root
        self.folder = root / _digest(json.dumps(self.key, sort_keys=True).encode(), 24)
        self.disk_bytes, self.ram_bytes = disk_bytes, ram_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._queue: queue.Queue[tuple[_Entry, bytearray] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._cleared = _cleared
        self.last = RestoreInfo()
        self._scan()

    # -- the index -------------------------------------------------------------------------------------------------
    def _scan(self) -> None:
        """Reads the headers (and tokens) of this key's files; drops broken ones and stale temporary files."""
        import numpy as np

        found: list[tuple[float, _Entry]] = []
        with contextlib.suppress(OSError), os.scandir(self.folder) as files:
            for f in files:
                path = Path(f.path)
                try:
                    st = f.stat()
                    if f.name.endswith(".tmp"):
                        if time.time() - st.st_mtime > STALE_TMP_S:
                            path.unlink(missing_ok=True)
                        continue
                    if not f.name.endswith(".state"):
                        continue
                    with open(path, "rb") as fh:
                        header, tokens_bytes = self._read_head(fh, st.st_size)
                    tokens = np.frombuffer(tokens_bytes, dtype="<i4").astype(np.int32)
                    found.append((st.st_mtime, _Entry(f.name[: -len(".state")], tokens, header["state_bytes"],
                                                      path=path)))  # fmt: skip
                except (OSError, ValueError) as exc:
                    log.info("Deleting unusable prompt state %s: %s", path.name, exc)
                    path.unlink(missing_ok=True)
        for _, entry in sorted(found, key=lambda x: x[0]):
            self._entries[entry.name] = entry

    def _read_head(self, fh: Any, size: int) -> tuple[dict[str, Any], bytes]:
        head = fh.read(_HEAD.size)
        if len(head) != _HEAD.size:
            raise ValueError("truncated header")
        magic, version, n_header = _HEAD.unpack(head)
        if magic != MAGIC or version != FORMAT or n_header > 1 << 20:
            raise ValueError("not a prompt state of this version")
        header = json.loads(fh.read(n_header))
        if not isinstance(header, dict) or header.get("key") != self.key:
            raise ValueError("made for another model or other context settings")
        n_tokens, n_state = int(header["n_tokens"]), int(header["state_bytes"])
        if size != _HEAD.size + n_header + 4 * n_tokens + n_state:
            raise ValueError("truncated or padded file")
        tokens = fh.read(4 * n_tokens)
        return header, tokens

    def _check_cleared(self) -> None:
        if self._cleared != _cleared:
            self._cleared = _cleared
            with self._lock:
                for entry in self._entries.values():
                    entry.dropped = True
                self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def ram_used(self) -> int:
        return sum(e.n_bytes for e in self._entries.values() if e.data is not None)

    def best(self, tokens: np.ndarray) -> tuple[_Entry | None, int]:
        """The state that shares the most first tokens with `tokens` (RAM before disk on a tie, then the smaller)."""
        self._check_cleared()
        best: tuple[int, int, int] = (0, 0, 0)
        chosen = None
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            rank = (_common(entry.tokens, tokens), entry.data is not None, -entry.n_bytes)
            if rank > best:
                best, chosen = rank, entry
        return chosen, best[0]

    # -- restore ---------------------------------------------------------------------------------------------------
    def restore(self, llama: Any, prompt: Sequence[int]) -> int:
        """Before `prompt` is evaluated: if a saved state shares more of it than the Llama's KV cache does (by
        MIN_GAIN tokens), saves the current state and loads that one. Returns the tokens restored (0: none)."""
        import numpy as np

        self.last = RestoreInfo()
        tokens = np.asarray(prompt, dtype=np.int32)
        if len(tokens) < MIN_TOKENS:
            return 0
        n_now = int(llama.n_tokens)
        current = _common(np.asarray(llama.input_ids[:n_now], dtype=np.int32), tokens)
        if n_now - current >= MIN_GAIN:
            # This prompt overwrites another conversation's state: keep that first (like a server's slot), also for
            # callers that stop reading a stream at its Done and so never reach the save after it.
            self.save(llama)
        started = time.perf_counter()
        while True:
            entry, common = self.best(tokens)
            if entry is None or common < max(MIN_TOKENS, current + MIN_GAIN):
                return 0
            data, source = entry.data, "ram"
            if data is None:
                data, source = self._read(entry), "disk"
                if data is None:
                    self.last.rejected.append(entry.name)
                    continue  # deleted; the next best, if any
            self.save(llama)  # the conversation that held the KV cache keeps its state too
            if self._load(llama, entry, data):
                break
            self.last.rejected.append(entry.name)
            current = 0
        with self._lock:
            if entry.name in self._entries:
                self._entries.move_to_end(entry.name)
        if entry.path is not None:
            with contextlib.suppress(OSError):
                os.utime(entry.path)  # the disk's LRU order
        if entry.data is None and entry.n_bytes <= self.ram_bytes:
            entry.data = data  # read from disk: keep it in RAM for the next switch
            self._fit_ram(keep=entry)
        n = min(len(entry.tokens), len(tokens) - 1)  # the last prompt token is evaluated again for its logits
        llama.n_tokens = min(common, n)
        self.last = RestoreInfo(int(llama.n_tokens), source, time.perf_counter() - started, self.last.rejected)
        return int(llama.n_tokens)

    def _load(self, llama: Any, entry: _Entry, data: bytearray) -> bool:
        import llama_cpp

        buffer = (ctypes.c_uint8 * len(data)).from_buffer(data)
        done = llama_cpp.llama_state_seq_set_data(llama.ctx, buffer, len(data), 0)
        del buffer
        if done != len(data):
            log.warning("llama.cpp refused the prompt state %s; it is deleted and the prompt read again", entry.name)
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llama.ctx), -1, -1, -1)
            llama.n_tokens = 0
            self._drop(entry)
            return False
        n = len(entry.tokens)
        llama.input_ids[:n] = entry.tokens
        llama.n_tokens = n
        return True

    def _read(self, entry: _Entry) -> bytearray | None:
        """The state's bytes from its file, checked; a broken file is deleted (None)."""
        path = entry.path
        if path is None:
            self._drop(entry)
            return None
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                header, tokens = self._read_head(fh, size)
                if tokens != entry.tokens.astype("<i4").tobytes():
                    raise ValueError("its tokens changed")
                data = bytearray(int(header["state_bytes"]))
                if fh.readinto(data) != len(data):
                    raise ValueError("truncated file")
                if zlib.crc32(data, zlib.crc32(tokens)) != header["crc32"]:
                    raise ValueError("checksum mismatch")
        except FileNotFoundError:
            self._drop(entry)
            return None
        except (OSError, ValueError, KeyError) as exc:
            log.warning("Deleting corrupt prompt state %s (%s); the prompt is read again", path.name, exc)
            self._drop(entry)
            return None
        return data

    # -- save ------------------------------------------------------------------------------------------------------
    def save(self, llama: Any) -> None:
        """Keeps the state of what the Llama's KV cache holds now (in RAM, and queued for the disk)."""
        import llama_cpp
        import numpy as np

        self._check_cleared()
        n = int(llama.n_tokens)
        if n < MIN_TOKENS:
            return
        tokens = np.array(llama.input_ids[:n], dtype=np.int32)
        if (tokens < 0).any():  # an image's positions (engines/vision.py): M-RoPE positions are not one per token
            return
        name = _digest(tokens.tobytes())
        with self._lock:
            if name in self._entries:
                self._entries.move_to_end(name)
                return
        ctx = llama.ctx
        # Cells past n_tokens (a stopped draft, an interrupted evaluation) are not part of this state.
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), 0, n, -1)
        size = int(llama_cpp.llama_state_seq_get_size(ctx, 0))
        if size <= 0 or size > self.ram_bytes:
            return
        data = bytearray(size)
        buffer = (ctypes.c_uint8 * size).from_buffer(data)
        got = int(llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0))
        del buffer
        if got <= 0:
            return
        del data[got:]
        entry = _Entry(name, tokens, got, data=data)
        with self._lock:
            # A state whose tokens begin this one's is no longer needed: this one serves every prompt it served. Its
            # file goes once this one is on disk, so that a crash in between leaves the old state, never none.
            for old in list(self._entries.values()):
                if len(old.tokens) < n and np.array_equal(old.tokens, tokens[: len(old.tokens)]):
                    if old.path is not None and self.disk_bytes > 0:
                        entry.supersedes.append(old.path)
                        old.path = None
                    self._drop_locked(old)
            self._entries[name] = entry
        self._fit_ram(keep=entry)
        if self.disk_bytes > 0:
            self._start_writer()
            self._queue.put((entry, data))

    def _fit_ram(self, keep: _Entry) -> None:
        with self._lock:
            used = sum(e.n_bytes for e in self._entries.values() if e.data is not None)
            for entry in list(self._entries.values()):
                if used <= self.ram_bytes:
                    break
                if entry is keep or entry.data is None:
                    continue
                used -= entry.n_bytes
                entry.data = None  # its write, if pending, holds its own reference
                if entry.path is None and (self.disk_bytes <= 0 or entry.dropped):
                    self._drop_locked(entry)

    def _drop(self, entry: _Entry) -> None:
        with self._lock:
            self._drop_locked(entry)

    def _drop_locked(self, entry: _Entry) -> None:
        entry.dropped = True
        entry.data = None
        self._entries.pop(entry.name, None)
        if entry.path is not None:
            with contextlib.suppress(OSError):
                entry.path.unlink(missing_ok=True)
            entry.path = None

    # -- the writer thread -----------------------------------------------------------------------------------------
    def _start_writer(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._write_loop, name="prompt-cache-writer", daemon=True)
            self._writer.start()

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                entry, data = item
                if not entry.dropped:
                    self._write(entry, data)
            except Exception:  # the writer must outlive one bad save
                log.exception("Saving a prompt state failed")
            finally:
                self._queue.task_done()

    def _write(self, entry: _Entry, data: bytearray) -> None:
        tokens = entry.tokens.astype("<i4").tobytes()
        header = json.dumps({
            "key": self.key,
            "n_tokens": len(entry.tokens),
            "state_bytes": len(data),
            "crc32": zlib.crc32(data, zlib.crc32(tokens)),
        }).encode()  # fmt: skip
        final = self.folder / f"{entry.name}.state"
        tmp: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{entry.name[:12]}-", suffix=".tmp", dir=self.folder)
            with os.fdopen(fd, "wb") as f:
                f.write(_HEAD.pack(MAGIC, FORMAT, len(header)))
                f.write(header)
                f.write(tokens)
                half = len(data) // 2
                f.write(memoryview(data)[:half])
                if _mid_write_hook is not None:
                    f.flush()
                    _mid_write_hook(Path(tmp))
                f.write(memoryview(data)[half:])
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            tmp = None
        except OSError as exc:
            log.warning("A prompt state was not saved to %s: %s", self.folder, exc.strerror or exc)
            return
        finally:
            if tmp is not None:  # a full disk or a failed write leaves no partial file
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        with self._lock:
            if entry.dropped:  # superseded while it was written
                final.unlink(missing_ok=True)
                return
            entry.path = final
        for path in entry.supersedes:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        entry.supersedes.clear()
        self._fit_disk()

    def _fit_disk(self) -> None:
        """Deletes the least recently used files (of every model) until the folder is within its bound."""
        files = []
        for f in _state_files(self.root):
            with contextlib.suppress(OSError):
                st = f.stat()
                files.append((st.st_mtime, st.st_size, Path(f.path)))
        total = sum(size for _, size, _ in files)
        if total <= self.disk_bytes:
            return
        gone: set[Path] = set()
        for _, size, path in sorted(files):
            if total <= self.disk_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                gone.add(path)
                total -= size
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.path in gone:
                    entry.path = None
                    if entry.data is None:
                        self._drop_locked(entry)

    def flush(self) -> None:
        """Waits until every queued state is on disk (or failed)."""
        if self._writer is not None and self._writer.is_alive():
            self._queue.join()

    def close(self, llama: Any = None) -> None:
        """Saves what the Llama holds (when given), writes what is pending, and stops the writer."""
        if llama is not None:
            try:
                self.save(llama)
            except Exception:  # closing must go on
                log.exception("Saving the prompt state at close failed")
        if self._writer is not None and self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()
        self._writer = None


def for_engine(info: Any, llama: Any, disk_mb: float, root: Path | None = None) -> PromptCache | None:
    """The cache of a just-loaded model (`info`: its ModelInfo), or None when it is off (0 MB) or the file's hash
    is unknown. RAM holds at most what the disk may."""
    if disk_mb <= 0 or not getattr(info, "sha256", ""):
        return None
    key = context_key(info.sha256, llama, {"flash_attn": info.flash_attn})
    disk_bytes = int(disk_mb * (1 << 20))
    return PromptCache(key, root or cache_root(), disk_bytes=disk_bytes, ram_bytes=min(ram_budget(), disk_bytes))


def receipt_field(cache: PromptCache | None) -> dict[str, Any]:
    """{"prompt_state": {tokens, from, seconds}} when the reply's prompt began with a restored state; else {}."""
    if cache is None or not cache.last.tokens:
        return {}
    last = cache.last
    return {"prompt_state": {"restored_tokens": last.tokens, "from": last.source, "seconds": round(last.seconds, 4)}}

"""Incremental indexing of a collection: walk its roots, read what changed, forget what vanished.

A file whose size and mtime are unchanged is skipped; otherwise it is hashed (streamed) and read again only if
its hash changed. Every file that cannot be read becomes a `problem` row with its sentence, and the index goes on.
Work is committed in batches; cancel (between files) keeps what was done, and the index is consistent at every
commit. Memory stays bounded: one file's text at a time, plus the list of paths walked.

When the collection has an embedding model, the run ends by embedding the passages that have no vector yet
(vectors.py); a model that cannot be loaded leaves the index as it is and is reported in one sentence.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llamadesk.core.documents import extract as extract_module
from llamadesk.core.documents.chunks import chunk_sections
from llamadesk.core.documents.extract import DocumentError, extract, is_document
from llamadesk.core.documents.store import Collection, collection_error
from llamadesk.core.fileinfo import sha256_file

SKIPPED_FOLDERS = frozenset({".git", "node_modules", "__pycache__"})
BATCH_FILES = 200
BATCH_SECONDS = 0.5
PAUSE_POLL_S = 0.1
OPTIMIZE_AFTER_FILES = 500


@dataclass(frozen=True)
class Progress:
    """How far an indexing run is: files (and their bytes) done of those walked, speed and time left."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    files_per_s: float
    eta_s: float | None
    path: str = ""


@dataclass
class IndexReport:
    """What one run did. `cancelled`: stopped early; what was done is kept."""

    read: int = 0
    unchanged: int = 0
    rehashed: int = 0  # touched but the same bytes: only hashed
    removed: int = 0
    problems: int = 0
    passages: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    problem_files: list[tuple[str, str]] = field(default_factory=list)
    embedded: int = 0  # passages that got a vector in this run
    embedding_problem: str = ""  # why the collection's embedding model could not embed them


@dataclass(frozen=True)
class _Walked:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class _Known:
    id: int
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    status: str


Pause = threading.Event | Callable[[], object] | None


def walk(roots: list[Path], cancel: threading.Event | None = None) -> tuple[list[_Walked], list[tuple[str, str]]]:
    """The document files under the roots (a root that is a file counts as one), sorted; and the folders that could
    not be read, each with its sentence. Directory symlinks are never followed (no loops); hidden folders and files,
    `.git`, `node_modules` and `__pycache__` are skipped. `cancel` is checked between folders (a folder of 100,000
    files takes seconds to list): what is returned then is partial."""
    found: dict[str, _Walked] = {}
    unreadable: list[tuple[str, str]] = []
    for root in roots:
        try:
            st = root.stat()
        except OSError as exc:
            unreadable.append((str(root), _missing_sentence(root, exc)))
            continue
        if root.is_dir():
            _walk_dir(str(root), found, unreadable, cancel)
        else:
            found[str(root)] = _Walked(str(root), st.st_size, st.st_mtime_ns)
    return [found[p] for p in sorted(found)], unreadable


def _missing_sentence(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path} no longer exists; its files stay in the collection until you remove it."
    return f"{path} could not be read ({exc.strerror or exc}); its files stay in the collection."


def _walk_dir(top: str, found: dict[str, _Walked], unreadable: list[tuple[str, str]],
              cancel: threading.Event | None = None) -> None:  # fmt: skip
    stack = [top]
    while stack and not (cancel is not None and cancel.is_set()):
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or entry.name in SKIPPED_FOLDERS:
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file() and not entry.is_dir() and is_document(Path(entry.name)):
                            st = entry.stat()  # follows a file symlink: its target is what is read
                            found[entry.path] = _Walked(entry.path, st.st_size, st.st_mtime_ns)
                    except OSError:
                        continue  # a dangling symlink, or a file gone since scandir listed it
        except OSError as exc:
            unreadable.append((folder, _missing_sentence(Path(folder), exc)))


def index_collection(
    collection: Collection,
    progress: Callable[[Progress], object] | None = None,
    cancel: threading.Event | None = None,
    pause: Pause = None,
    *,
    batch_files: int = BATCH_FILES,
    batch_seconds: float = BATCH_SECONDS,
    embed: bool = True,
    embed_progress: Callable[[int, int], object] | None = None,
) -> IndexReport:
    """Brings the collection's index up to date with its roots; returns what it did.

    `cancel` is checked between files: what was done is committed and kept, report.cancelled is True. `pause`
    (an Event that is set, or a callable that blocks) holds the run between files. A failure of the collection's
    own file (a full disk) is raised as a CollectionError; the files of the batch it hit are read again next time.
    `embed`: give the new passages vectors when the collection has an embedding model (`embed_progress(done,
    total)` after each batch of them).
    """
    started = time.monotonic()
    report = IndexReport()
    roots = collection.roots()
    walked, unreadable = walk(roots, cancel)
    if cancel is not None and cancel.is_set():  # the listing is partial: nothing may be taken for vanished
        report.cancelled = True
        report.seconds = time.monotonic() - started
        return report
    known = {
        str(r[0]): _Known(int(r[1]), r[2], r[3], r[4], str(r[5]))  # type: ignore[arg-type, call-overload]
        for r in collection.read("SELECT path, id, size, mtime_ns, sha256, status FROM files")
    }
    kept_under = tuple(p.rstrip(os.sep) + os.sep for p, _ in unreadable)
    seen = {w.path for w in walked} | {p for p, _ in unreadable}
    vanished = [k for p, k in known.items() if p not in seen and not p.startswith(kept_under)]
    batch = _Batch(collection, batch_files, batch_seconds)
    try:
        batch.begin()
        for k in vanished:
            _delete_file(collection.conn, k.id)
            report.removed += 1
        for path, sentence in unreadable:
            _set_problem(collection.conn, path, None, None, sentence, known.get(path))
        bytes_total = sum(w.size for w in walked)
        bytes_done = 0
        for done, w in enumerate(walked):
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                break
            if pause is not None:
                if isinstance(pause, threading.Event) and pause.is_set():
                    batch.commit()  # a paused run holds no write lock
                _wait(pause, cancel)
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    break
            _index_one(collection.conn, w, known.get(w.path), report)
            batch.maybe_commit()
            bytes_done += w.size
            if progress is not None:
                elapsed = max(time.monotonic() - started, 1e-6)
                rate = (done + 1) / elapsed
                left = len(walked) - done - 1
                progress(Progress(done + 1, len(walked), bytes_done, bytes_total, rate, left / rate, w.path))
        batch.commit()
        if report.read + report.removed >= OPTIMIZE_AFTER_FILES and not report.cancelled:
            # Merge the index's segments into one after a big change: ~2x smaller, and a search reads one doclist
            # per term instead of dozens. Then fold the WAL back into the file so its size on disk is the index's.
            with collection.write() as db:
                db.execute("INSERT INTO passages_fts (passages_fts) VALUES ('optimize')")
            collection.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error as exc:
        collection.rollback()
        raise collection_error(exc, collection.path) from exc
    except BaseException:
        collection.rollback()
        raise
    report.problems = int(collection.read("SELECT COUNT(*) FROM files WHERE status = 'problem'")[0][0])  # type: ignore[call-overload]
    if embed and not report.cancelled:
        _embed_new(collection, report, embed_progress, cancel)
    report.seconds = time.monotonic() - started
    return report


def _embed_new(collection: Collection, report: IndexReport, progress: Callable[[int, int], object] | None,
               cancel: threading.Event | None) -> None:  # fmt: skip
    """The embedding hook: vectors for the passages that have none, with a model loaded for this run only (an
    indexing thread may be a pool's, which must not keep a model alive)."""
    model = collection.embedding_model()
    if model is None:
        return
    from llamadesk.core.documents import vectors
    from llamadesk.core.documents.embeddings import Embedder, EmbeddingError

    if not vectors.pending(collection):
        return
    try:
        embedder = Embedder(model.path)
    except EmbeddingError as exc:
        report.embedding_problem = str(exc)
        return
    try:
        if embedder.dimension != model.dimension:
            report.embedding_problem = (
                f"{embedder.name} now gives vectors of {embedder.dimension} numbers, not "
                f"{model.dimension}; choose it again with `llamadesk docs embed --model`."
            )
            return
        report.embedded = vectors.embed_missing(collection, embedder, progress=progress, cancel=cancel)
        report.cancelled = cancel is not None and cancel.is_set()
    except EmbeddingError as exc:
        report.embedding_problem = str(exc)
    finally:
        embedder.close()


def _wait(pause: Pause, cancel: threading.Event | None) -> None:
    if isinstance(pause, threading.Event):
        while pause.is_set() and not (cancel is not None and cancel.is_set()):
            if cancel is not None:
                cancel.wait(PAUSE_POLL_S)  # wakes at once on cancel
            else:
                time.sleep(PAUSE_POLL_S)
    elif pause is not None:
        pause()


class _Batch:
    """A write transaction committed every `files` files or `seconds` seconds, whichever comes first."""

    def __init__(self, collection: Collection, files: int, seconds: float) -> None:
        self.collection, self.files, self.seconds = collection, files, seconds
        self.count = 0
        self.since = time.monotonic()

    def begin(self) -> None:
        if not self.collection.conn.in_transaction:
            self.collection.begin()
        self.count, self.since = 0, time.monotonic()

    def commit(self) -> None:
        if self.collection.conn.in_transaction:
            self.collection.commit()

    def maybe_commit(self) -> None:
        self.count += 1
        if self.count >= self.files or time.monotonic() - self.since >= self.seconds:
            self.commit()
            self.begin()
        elif not self.collection.conn.in_transaction:
            self.begin()


def _index_one(db: sqlite3.Connection, w: _Walked, old: _Known | None, report: IndexReport) -> None:
    if old is not None and old.size == w.size and old.mtime_ns == w.mtime_ns and old.sha256 is not None:
        report.unchanged += 1
        return
    name = Path(w.path).name
    path = Path(w.path)
    try:
        too_big = w.size > extract_module.MAX_TEXT_BYTES and path.suffix.lower() not in extract_module.READERS
        if too_big:  # not worth hashing gigabytes: extract() says why in one sentence, from the size alone
            extract(path)
        digest = sha256_file(Path(w.path))
        if old is not None and old.sha256 == digest:
            db.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (w.size, w.mtime_ns, old.id))
            report.rehashed += 1
            return
        sections = extract(path)
        after = os.stat(w.path)
    except DocumentError as exc:
        _problem(db, w, str(exc), old, report)
        return
    except FileNotFoundError:
        _problem(db, w, f"{name} disappeared while it was being read.", old, report, retry=True)
        return
    except OSError as exc:
        _problem(db, w, f"{name} could not be read: {exc.strerror or exc}.", old, report)
        return
    if (after.st_size, after.st_mtime_ns) != (w.size, w.mtime_ns):
        _problem(db, w, f"{name} changed while it was being read; it is read again next time.", old, report,
                 retry=True)  # fmt: skip
        return
    file_id = _upsert_file(db, w, digest, sum(len(s.text) for s in sections), "ok", None, old)
    rows = ((file_id, i, c.text, c.page, c.line) for i, c in enumerate(chunk_sections(sections)))
    cur = db.executemany("INSERT INTO passages (file_id, ordinal, text, page, line) VALUES (?, ?, ?, ?, ?)", rows)
    report.passages += max(cur.rowcount, 0)
    report.read += 1


def _problem(db: sqlite3.Connection, w: _Walked, sentence: str, old: _Known | None, report: IndexReport,
             retry: bool = False) -> None:  # fmt: skip
    """Records the sentence; `retry`: forget size and mtime so that the next run reads the file again."""
    size, mtime = (None, None) if retry else (w.size, w.mtime_ns)
    _set_problem(db, w.path, size, mtime, sentence, old)
    report.problem_files.append((w.path, sentence))


def _set_problem(db: sqlite3.Connection, path: str, size: int | None, mtime_ns: int | None, sentence: str,
                 old: _Known | None) -> None:  # fmt: skip
    # A problem file's sha256 stays NULL unless it is known not to change: a same-size-and-mtime problem file is
    # skipped only when its size and mtime were recorded (retry=False).
    walked = _Walked(path, size or 0, mtime_ns or 0)
    file_id = _upsert_file(db, walked, "" if size is not None else None, 0, "problem", sentence, old)
    if size is None:
        db.execute("UPDATE files SET size = NULL, mtime_ns = NULL WHERE id = ?", (file_id,))


def _upsert_file(db: sqlite3.Connection, w: _Walked, digest: str | None, chars: int, status: str,
                 problem: str | None, old: _Known | None) -> int:  # fmt: skip
    now = time.time()
    if old is None:
        cur = db.execute(
            "INSERT INTO files (path, size, mtime_ns, sha256, chars, status, problem, indexed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (w.path, w.size, w.mtime_ns, digest, chars, status, problem, now),
        )
        return int(cur.lastrowid or 0)
    db.execute("DELETE FROM passages WHERE file_id = ?", (old.id,))
    db.execute(
        "UPDATE files SET size = ?, mtime_ns = ?, sha256 = ?, chars = ?, status = ?, problem = ?, indexed_at = ?"
        " WHERE id = ?",
        (w.size, w.mtime_ns, digest, chars, status, problem, now, old.id),
    )
    return old.id


def _delete_file(db: sqlite3.Connection, file_id: int) -> None:
    db.execute("DELETE FROM passages WHERE file_id = ?", (file_id,))  # the trigger keeps the FTS index in step
    db.execute("DELETE FROM files WHERE id = ?", (file_id,))

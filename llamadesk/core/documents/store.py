"""Collections on disk: one SQLite file each under `paths.data / "documents"` (roots, files, passages, FTS5 index).

Deleting a collection deletes its file (and the -wal/-shm beside it), so its index goes with it. A collection's
name is any text the user typed; the file is named by a safe slug of it plus a short hash, and the real name is
stored inside. The schema's version is PRAGMA user_version; MIGRATIONS are applied in order (1: passages and FTS5;
2: vectors, one float32 BLOB per passage, from the embedding model the collection's meta names).
"""

from __future__ import annotations

import errno
import hashlib
import re
import sqlite3
import time
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from llamadesk.core.errors import LlamaDeskError

SCHEMA_VERSION = 2
SUFFIX = ".sqlite3"
BUSY_TIMEOUT_MS = 5000
MAX_NAME_CHARS = 200

# External content: the passages' text is stored once (in `passages`), the FTS5 table holds only the index, and
# snippet()/highlight() still work. A contentless table (content='') measured the same size on the 100 MB bench, but
# cannot give the text back and, before SQLite 3.43, cannot delete rows without being handed the old text anyway.
# porter: "indexing" finds "index", "indexed"; on the bench's queries it finds more and costs ~10 % more index.
TOKENIZER = "porter unicode61 remove_diacritics 2"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 0 → 1
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE roots (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, added_at REAL NOT NULL)",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER, mtime_ns INTEGER,"
        " sha256 TEXT, chars INTEGER NOT NULL DEFAULT 0,"
        " status TEXT NOT NULL CHECK (status IN ('ok', 'problem')), problem TEXT, indexed_at REAL NOT NULL)",
        "CREATE TABLE passages (id INTEGER PRIMARY KEY,"
        " file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,"
        " ordinal INTEGER NOT NULL, text TEXT NOT NULL, page INTEGER, line INTEGER NOT NULL,"
        " UNIQUE (file_id, ordinal))",
        f"CREATE VIRTUAL TABLE passages_fts USING fts5(text, content='passages', content_rowid='id',"
        f" tokenize='{TOKENIZER}')",
        "CREATE TRIGGER passages_ai AFTER INSERT ON passages BEGIN"
        " INSERT INTO passages_fts (rowid, text) VALUES (new.id, new.text); END",
        "CREATE TRIGGER passages_ad AFTER DELETE ON passages BEGIN"
        " INSERT INTO passages_fts (passages_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    ),
    (  # 1 → 2: a passage's vector goes with it (ON DELETE CASCADE). AUTOINCREMENT: every insert raises the
        # table's sequence, so (sequence, count) tells a reader that the vectors changed (vectors.py's cache).
        "CREATE TABLE vectors (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " passage_id INTEGER NOT NULL UNIQUE REFERENCES passages(id) ON DELETE CASCADE, vector BLOB NOT NULL)",
    ),
)
EMBEDDING_KEYS = ("embedding.path", "embedding.name", "embedding.sha256", "embedding.dimension")


class CollectionError(LlamaDeskError):
    """A collection could not be made, found, read or written; the text is one sentence."""


class UnknownCollection(CollectionError):
    """No collection has this name."""


class CollectionDiskFull(CollectionError):
    """The disk holding the collections is full."""


@dataclass(frozen=True)
class Stats:
    """What a collection holds: files read, passages, their characters, problem files, and its size on disk."""

    files: int
    passages: int
    chars: int
    problems: int
    bytes_on_disk: int


@dataclass(frozen=True)
class Problem:
    """A file (or folder) that could not be indexed, with the sentence saying why."""

    path: str
    sentence: str


@dataclass(frozen=True)
class EmbeddingModel:
    """The model a collection's vectors come from: where it is, its file name, its sha256 and its dimension."""

    path: str
    name: str
    sha256: str
    dimension: int


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    path: Path
    created: float


def default_folder() -> Path:
    """The folder of the collections: `paths.data / "documents"`."""
    from llamadesk.paths import get_paths

    return get_paths().data / "documents"


def normalize_name(name: str) -> str:
    """The name as stored: NFC, surrounding spaces removed; an empty or overlong name is a CollectionError."""
    clean = unicodedata.normalize("NFC", name).strip()
    if not clean:
        raise CollectionError("A collection needs a name.")
    if len(clean) > MAX_NAME_CHARS or any(unicodedata.category(c) == "Cc" for c in clean):
        raise CollectionError(f"A collection's name must be at most {MAX_NAME_CHARS} characters, without control "
                              "characters.")  # fmt: skip
    return clean


def file_name(name: str) -> str:
    """`<slug>-<hash8>.sqlite3`: readable in a file manager, safe on every file system, one file per name."""
    clean = normalize_name(name)
    ascii_name = unicodedata.normalize("NFKD", clean).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-") or "collection"
    return f"{slug}-{hashlib.sha256(clean.encode('utf-8')).hexdigest()[:8]}{SUFFIX}"


def _sidecars(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def collection_error(exc: sqlite3.Error | OSError, path: Path) -> CollectionError:
    """One sentence for a failure of the collection's file."""
    text = str(exc).lower()
    code = getattr(exc, "sqlite_errorcode", None)
    code = None if code is None else int(code) & 0xFF
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return CollectionDiskFull(f"The disk holding {path.parent} is full; free some space and try again.")
        return CollectionError(f"{path} could not be written ({exc.strerror or exc}); check the disk and the folder's "
                               "permissions.")  # fmt: skip
    if code == 13 or "disk is full" in text:
        return CollectionDiskFull(f"The disk holding {path.parent} is full; free some space and try again.")
    if code in (5, 6) or "locked" in text or "busy" in text:
        return CollectionError(f"The collection {path.name} is busy in another program; try again when it is done.")
    if code in (11, 26) or "not a database" in text or "malformed" in text:
        return CollectionError(f"{path} is not a readable collection; delete it and add the documents again.")
    return CollectionError(f"The collection {path} reported an error ({exc}); try again.")


class Collection:
    """One open collection: a connection for the thread that opened it."""

    def __init__(self, path: Path, conn: sqlite3.Connection, name: str) -> None:
        self.path = path
        self.name = name
        self._conn: sqlite3.Connection | None = conn

    # -- connection ---------------------------------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise CollectionError(f"The collection {self.name} is closed; open it again.")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def begin(self) -> None:
        """BEGIN IMMEDIATE: the write lock up front, so a write never has to upgrade a read lock (WAL)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise collection_error(exc, self.path) from exc

    def commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.rollback()
            raise collection_error(exc, self.path) from exc

    def rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; an SQLite failure becomes a CollectionError sentence."""
        self.begin()
        try:
            yield self.conn
        except sqlite3.Error as exc:
            self.rollback()
            raise collection_error(exc, self.path) from exc
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise collection_error(exc, self.path) from exc

    # -- roots --------------------------------------------------------------------------------------------------
    def roots(self) -> list[Path]:
        return [Path(str(r[0])) for r in self.read("SELECT path FROM roots ORDER BY path")]

    def add_roots(self, paths: Iterable[Path]) -> list[Path]:
        """Adds files or folders (made absolute, symlinks resolved); returns those that were new."""
        added = []
        with self.write() as db:
            for p in paths:
                root = str(Path(p).expanduser().resolve())
                cur = db.execute("INSERT OR IGNORE INTO roots (path, added_at) VALUES (?, ?)", (root, time.time()))
                if cur.rowcount:
                    added.append(Path(root))
        return added

    def remove_roots(self, paths: Iterable[Path]) -> list[Path]:
        """Forgets roots; their files leave the index at the next indexing. Returns those that were there."""
        removed = []
        with self.write() as db:
            for p in paths:
                for candidate in {str(Path(p).expanduser()), str(Path(p).expanduser().resolve())}:
                    if db.execute("DELETE FROM roots WHERE path = ?", (candidate,)).rowcount:
                        removed.append(Path(candidate))
        return removed

    # -- what it holds ------------------------------------------------------------------------------------------
    def stats(self) -> Stats:
        files, chars, problems = self.read(
            "SELECT COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(chars), 0), COALESCE(SUM(status = 'problem'), 0)"
            " FROM files"
        )[0]
        passages = self.read("SELECT COUNT(*) FROM passages")[0][0]
        size = sum(p.stat().st_size for p in _sidecars(self.path) if p.exists())
        return Stats(int(files), int(passages), int(chars), int(problems), size)  # type: ignore[call-overload]

    def problems(self) -> list[Problem]:
        rows = self.read("SELECT path, problem FROM files WHERE status = 'problem' ORDER BY path")
        return [Problem(str(path), str(sentence or "")) for path, sentence in rows]

    # -- the embedding model (meta) -------------------------------------------------------------------------------
    def embedding_model(self) -> EmbeddingModel | None:
        """The model the collection's vectors come from; None: the collection is searched by BM25 alone."""
        rows = self.read(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(EMBEDDING_KEYS))})",
                         EMBEDDING_KEYS)  # fmt: skip
        meta = {str(key): str(value) for key, value in rows}
        if not all(k in meta for k in EMBEDDING_KEYS):
            return None
        try:
            dimension = int(meta["embedding.dimension"])
        except ValueError:
            return None
        return EmbeddingModel(meta["embedding.path"], meta["embedding.name"], meta["embedding.sha256"], dimension)

    def set_embedding_model(self, model: EmbeddingModel | None) -> bool:
        """Names the model (None: no model). When it is another model (another sha256 or dimension), or none, the
        old vectors are deleted in the same transaction; returns whether they were."""
        old = self.embedding_model()
        drop = old is not None and (model is None or (old.sha256, old.dimension) != (model.sha256, model.dimension))
        with self.write() as db:
            db.execute(f"DELETE FROM meta WHERE key IN ({','.join('?' * len(EMBEDDING_KEYS))})", EMBEDDING_KEYS)
            if model is not None:
                values = (model.path, model.name, model.sha256, str(int(model.dimension)))
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", zip(EMBEDDING_KEYS, values, strict=True))
            if drop or (old is None and model is not None):
                db.execute("DELETE FROM vectors")  # none should be there; vectors of an unknown model never count
        return drop

    @property
    def created(self) -> float:
        rows = self.read("SELECT value FROM meta WHERE key = 'created'")
        return float(rows[0][0]) if rows else 0.0  # type: ignore[arg-type]


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(str(path), isolation_level=None)
    except sqlite3.Error as exc:
        raise collection_error(exc, path) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # refused on some network file systems: the default mode still works
            conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a crash loses nothing committed
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise collection_error(exc, path) from exc
    return conn


def _migrate(conn: sqlite3.Connection, path: Path, name: str | None) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise CollectionError(f"The collection {path.name} was made by a newer LlamaDesk; update LlamaDesk to use it.")
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for step in MIGRATIONS[version:]:
            for sql in step:
                conn.execute(sql)
        if version == 0 and name is not None:
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                             [("name", name), ("created", repr(time.time()))])  # fmt: skip
        conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _open(path: Path, create_as: str | None) -> Collection:
    conn = _connect(path)
    try:
        _migrate(conn, path, create_as)
        row = conn.execute("SELECT value FROM meta WHERE key = 'name'").fetchone()
        if row is None:
            raise CollectionError(f"{path} is not a readable collection; delete it and add the documents again.")
    except sqlite3.Error as exc:
        conn.close()
        raise collection_error(exc, path) from exc
    except BaseException:
        conn.close()
        raise
    return Collection(path, conn, str(row[0]))


def _folder(folder: Path | None) -> Path:
    return default_folder() if folder is None else Path(folder)


def collection_path(name: str, folder: Path | None = None) -> Path:
    return _folder(folder) / file_name(name)


def exists(name: str, folder: Path | None = None) -> bool:
    return collection_path(name, folder).exists()


def create_collection(name: str, folder: Path | None = None) -> Collection:
    """A new, empty collection; CollectionError if one of that name exists."""
    clean = normalize_name(name)
    path = collection_path(clean, folder)
    if path.exists():
        raise CollectionError(f"A collection named {clean!r} already exists.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise collection_error(exc, path) from exc
    try:
        return _open(path, clean)
    except BaseException:
        for p in _sidecars(path):  # a half-made file would look like a broken collection
            p.unlink(missing_ok=True)
        raise


def open_collection(name: str, folder: Path | None = None) -> Collection:
    """The collection of this name; UnknownCollection when there is none."""
    clean = normalize_name(name)
    path = collection_path(clean, folder)
    if not path.exists():
        raise UnknownCollection(f"There is no collection named {clean!r}; `llamadesk docs list` shows them.")
    return _open(path, None)


def open_or_create(name: str, folder: Path | None = None) -> tuple[Collection, bool]:
    """The collection, and whether it was made just now."""
    if exists(name, folder):
        return open_collection(name, folder), False
    return create_collection(name, folder), True


def list_collections(folder: Path | None = None) -> list[CollectionInfo]:
    """Every readable collection in the folder, by name. A file that is not one is left out."""
    base = _folder(folder)
    found = []
    for path in sorted(base.glob(f"*{SUFFIX}")) if base.is_dir() else []:
        try:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            try:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            finally:
                conn.close()
        except sqlite3.Error:
            continue
        if "name" in meta:
            found.append(CollectionInfo(str(meta["name"]), path, float(meta.get("created", 0.0))))
    return sorted(found, key=lambda c: c.name.casefold())


def delete_collection(name: str, folder: Path | None = None) -> Path:
    """Deletes the collection's file and its -wal/-shm (its whole index); returns the path it had."""
    clean = normalize_name(name)
    path = collection_path(clean, folder)
    if not path.exists():
        raise UnknownCollection(f"There is no collection named {clean!r}; `llamadesk docs list` shows them.")
    for p in _sidecars(path):
        try:
            p.unlink(missing_ok=True)
        except OSError as exc:
            raise CollectionError(f"{p} could not be deleted ({exc.strerror or exc}).") from exc
    return path

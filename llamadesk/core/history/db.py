"""SQLite connection for the history: pragmas, transactions, schema version, and errors as user sentences."""

from __future__ import annotations

import random
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llamadesk.core.errors import HistoryError

BUSY_TIMEOUT_MS = 5000
# BEGIN IMMEDIATE is tried this many times, each waiting up to busy_timeout: a long write in another process
# (an import of thousands of messages) then delays a write by up to ~25 s instead of failing it.
BEGIN_ATTEMPTS = 5
# After a big write (an import) the WAL file is truncated back to this size at the next checkpoint, instead of
# keeping its largest size forever.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024

# SQLite's primary result codes (stable C API values); the sqlite3 module only names them from Python 3.11.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT = 5, 6, 8, 10, 11
SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 13, 14, 26

DISK_FULL_MESSAGE = "The disk is full; the conversation could not be saved. Free some space and try again."
DISK_FULL_OPEN_MESSAGE = "The disk holding {folder} is full, so the history cannot be opened; free some space there."
# Below this much free space an I/O error is the disk being full: SQLite's shared-memory file (WAL) then fails
# with SQLITE_IOERR_SHMSIZE, not SQLITE_FULL.
NEARLY_FULL_BYTES = 1024 * 1024


class HistoryDiskFull(HistoryError):
    """SQLite found no room on the disk (SQLITE_FULL, or an I/O error with no free space left)."""


def connect(path: Path) -> sqlite3.Connection:
    """Opens `path` (created if missing) with the pragmas the history relies on; raises HistoryError.

    The connection belongs to the thread that opened it (sqlite3's default check_same_thread).
    """
    try:
        # isolation_level=None: the sqlite3 module must not open transactions behind our back;
        # `transaction()` issues BEGIN IMMEDIATE itself so a write never has to upgrade a read lock
        # (which fails at once with SQLITE_BUSY in WAL mode instead of waiting for busy_timeout).
        conn = sqlite3.connect(str(path), isolation_level=None)
    except sqlite3.Error as exc:
        raise translate_error(exc, path) from exc
    try:
        # busy_timeout first, so that the pragmas below already wait for a writer in another process.
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # journal_mode is the first statement that reads the file: a file that is not a database fails here.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            # WAL is refused on some network file systems; the history still works in the default mode,
            # only readers may then wait for writers.
            conn.execute("PRAGMA journal_mode = DELETE")
        # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts the file;
        # an application crash loses nothing that was committed.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise translate_error(exc, path) from exc
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when the block raises; nested use becomes a savepoint."""
    if conn.in_transaction:
        # A savepoint keeps the inner block all-or-nothing without committing the outer transaction early.
        conn.execute("SAVEPOINT nested")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK TO nested")
            conn.execute("RELEASE nested")
            raise
        conn.execute("RELEASE nested")
        return
    # IMMEDIATE takes the write lock up front (waiting up to busy_timeout for other writers), so two
    # processes can never both read, then both try to write and deadlock.
    begin_immediate(conn)
    try:
        yield conn
    except BaseException:
        _rollback(conn)
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def begin_immediate(conn: sqlite3.Connection, attempts: int = BEGIN_ATTEMPTS) -> None:
    """BEGIN IMMEDIATE, retried while another process holds the write lock past busy_timeout.

    Retrying is safe here and nowhere later: nothing of the transaction has run yet.
    """
    for attempt in range(1, attempts + 1):
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if attempt == attempts or not is_busy(exc):
                raise
            # A short pause with jitter: a busy handler may not be called at all in rare states (a WAL being
            # recovered), and two waiting writers should not retry in lockstep.
            time.sleep(0.01 * attempt + random.random() * 0.01)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether the error means "another connection holds the lock" (worth waiting for), not a real failure."""
    code = _primary_code(exc)
    if code is not None:
        return code in (SQLITE_BUSY, SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back by itself (e.g. after SQLITE_FULL); ROLLBACK would then fail.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def get_user_version(conn: sqlite3.Connection) -> int:
    """The schema version stored in the database header (0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def set_user_version(conn: sqlite3.Connection, version: int) -> None:
    """Stores the schema version; inside a transaction it commits or rolls back with the migration."""
    # PRAGMA takes no bound parameters; int() keeps the statement free of anything but digits.
    conn.execute(f"PRAGMA user_version = {int(version)}")


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; older versions fall back to the text
    return None if code is None else int(code) & 0xFF


def translate_error(exc: sqlite3.Error, path: Path) -> HistoryError:
    """The sentence a user can act on for an SQLite failure on the history database at `path`."""
    known = known_error(exc, path)
    if known is not None:
        return known
    return HistoryError(f"The history database {path} reported an error ({exc}); restart LlamaDesk and try again.")


def known_error(exc: sqlite3.Error, path: Path) -> HistoryError | None:
    """The sentence for a failure of the file or the disk (full, locked, read-only, damaged), else None."""
    code = _primary_code(exc)
    text = str(exc).lower()
    if code == SQLITE_FULL or "disk is full" in text or (code == SQLITE_IOERR and _nearly_full(path)):
        return HistoryDiskFull(DISK_FULL_MESSAGE)
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "locked" in text or "busy" in text:
        return HistoryError(
            f"The history database {path} is busy in another program; close other LlamaDesk windows and try again."
        )
    if code == SQLITE_READONLY or "readonly" in text or "read-only" in text:
        return HistoryError(f"The history database is read-only; check the permissions of {path}.")
    if code in (SQLITE_NOTADB, SQLITE_CORRUPT) or "not a database" in text or "malformed" in text:
        return HistoryError(
            f"The file {path} is not a readable LlamaDesk history; move it elsewhere and restart LlamaDesk "
            "to begin a new history."
        )
    if code == SQLITE_CANTOPEN or "unable to open" in text:
        return HistoryError(
            f"The history database {path} could not be opened; check that its folder exists and is writable."
        )
    if code == SQLITE_IOERR or "i/o error" in text:
        return HistoryError(f"The history database {path} could not be read or written; check the disk and try again.")
    return None


def _nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < NEARLY_FULL_BYTES
    except OSError:
        return False

"""The connection a `History` owns: open and migrate the file, transactions, retried reads, snapshots, checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from llamadesk.core.errors import HistoryError
from llamadesk.core.history.db import (
    DISK_FULL_OPEN_MESSAGE,
    HistoryDiskFull,
    connect,
    is_busy,
    transaction,
    translate_error,
)
from llamadesk.core.history.migrations import migrate

T = TypeVar("T")
_READ_ATTEMPTS: Final = 3


def _in_transaction(conn: sqlite3.Connection) -> bool:
    # A function, not the attribute inline: the attribute changes behind a type checker's back (execute).
    return conn.in_transaction


class Store:
    """One connection to the history file, for the thread that opened it; `History` adds the operations."""

    def __init__(self, db_path: Path) -> None:
        """Opens or creates the database and brings it to the latest schema (backing it up first)."""
        self.path = Path(db_path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(
                f"The folder {self.path.parent} could not be created; check its permissions and free space."
            ) from exc
        try:
            conn = connect(self.path)
        except HistoryDiskFull as exc:
            raise HistoryDiskFull(DISK_FULL_OPEN_MESSAGE.format(folder=self.path.parent)) from exc
        self._conn: sqlite3.Connection | None = conn
        try:
            #: the copy made before a schema upgrade, or None when this open upgraded nothing
            self.backup_path: Path | None = migrate(conn, self.path)
        except HistoryDiskFull as exc:  # a new history's tables, or an upgrade, found no room
            self.close()
            raise HistoryDiskFull(DISK_FULL_OPEN_MESSAGE.format(folder=self.path.parent)) from exc
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Closes the connection; further calls raise HistoryError. Closing twice is fine."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise HistoryError("The history is closed; reopen it to continue.")
        return self._conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on this thread's connection (retried while another writer holds the file); a
        failure is raised as a HistoryError with one sentence."""
        conn = self._connection()
        try:
            with transaction(conn):
                yield conn
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path) from exc

    def _query(self, run: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                return run(conn)
            except sqlite3.Error as exc:
                # A read only meets a lock in rare moments (another process recovering the WAL); reading has
                # no effect, so trying again is always safe.
                if attempt == _READ_ATTEMPTS or not is_busy(exc) or conn.in_transaction:
                    raise translate_error(exc, self.path) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        # fetchall() at once: an unfinished cursor would hold a read snapshot open.
        return self._query(lambda db: db.execute(sql, params).fetchall())

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside the block sees the database as of its start (one read transaction), e.g. an export.

        Writers in other processes go on meanwhile (WAL); writing through this History inside the block is an error.
        """
        conn = self._connection()
        if _in_transaction(conn):
            yield
            return
        try:
            conn.execute("BEGIN DEFERRED")
            # The snapshot begins at the first read, so read now: that is the moment the caller asked for.
            conn.execute("SELECT 1 FROM conversations LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            if _in_transaction(conn):
                conn.execute("ROLLBACK")
            raise translate_error(exc, self.path) from exc
        try:
            yield
        finally:
            if _in_transaction(conn):
                conn.execute("COMMIT")

    def rebuild_search_index(self) -> None:
        """Rebuilds the full-text index from the messages and titles (a repair; never needed in normal use)."""
        with self.write() as db:
            db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
            db.execute("INSERT INTO conversations_fts (conversations_fts) VALUES ('rebuild')")

    def check_integrity(self) -> list[str]:
        """SQLite's own check of the file and of the search index: an empty list when it is sound."""
        problems = [str(r[0]) for r in self._read("PRAGMA integrity_check")]
        problems += [f"broken reference in {r[0]} row {r[1]}" for r in self._read("PRAGMA foreign_key_check")]
        problems = [p for p in problems if p != "ok"]
        conn = self._connection()
        for table in ("messages_fts", "conversations_fts"):
            try:
                # rank 1: also compare the index with the rows it was built from (the triggers' work). FTS5 runs
                # this check as an INSERT, hence inside a write transaction; it changes nothing.
                with transaction(conn):
                    conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 1)")
            except sqlite3.Error as exc:
                if is_busy(exc):
                    raise translate_error(exc, self.path) from exc
                problems.append(f"the search index {table} does not match the history ({exc})")
        return problems

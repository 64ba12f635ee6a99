"""The conversation history on SQLite: conversations, branching messages and replies saved while they stream."""

from __future__ import annotations

import enum
import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from llamadesk.core.errors import HistoryError
from llamadesk.core.history.db import connect, transaction, translate_error
from llamadesk.core.history.migrations import migrate

log = logging.getLogger(__name__)

ROLES: Final = ("system", "user", "assistant")
STATUSES: Final = ("complete", "streaming", "interrupted", "cancelled", "error")
FINISH_STATUSES: Final = ("complete", "cancelled", "error")
DEFAULT_FLUSH_INTERVAL_S: Final = 0.5


class _Unset(enum.Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks a keyword argument as not given, where None is a meaningful value (no parent, no model)."""


@dataclass(frozen=True)
class Conversation:
    """One chat: its settings and the last message of the branch the user is looking at."""

    id: int
    title: str
    created_at: float
    updated_at: float
    model: str | None
    system_prompt: str
    sampling: dict[str, Any]
    pinned: bool
    leaf_message_id: int | None


@dataclass(frozen=True)
class Message:
    """One message; `parent_id` links it into the conversation's tree of branches."""

    id: int
    conversation_id: int
    parent_id: int | None
    role: str
    content: str
    created_at: float
    status: str
    finish_reason: str | None
    receipt: dict[str, Any] | None


_MESSAGE_COLUMNS = "id, conversation_id, parent_id, role, content, created_at, status, finish_reason, receipt_json"
_CONVERSATION_COLUMNS = (
    "id, title, created_at, updated_at, model, system_prompt, sampling_json, pinned, leaf_message_id"
)

# Walks parent_id from the leaf up to the root in one query. The depth bound only guards against a cycle
# written by hand into the file; the app always points a message at an older one.
_BRANCH_SQL = f"""
WITH RECURSIVE branch(id, depth) AS (
    SELECT leaf_message_id, 0 FROM conversations WHERE id = ? AND leaf_message_id IS NOT NULL
    UNION ALL
    SELECT m.parent_id, b.depth + 1 FROM messages AS m JOIN branch AS b ON m.id = b.id
    WHERE m.parent_id IS NOT NULL AND b.depth < 1000000
)
SELECT {", ".join("m." + c.strip() for c in _MESSAGE_COLUMNS.split(","))}
FROM branch AS b JOIN messages AS m ON m.id = b.id
ORDER BY b.depth DESC
"""


def _dump(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), ensure_ascii=False, sort_keys=True)


def _load(text: str | None, what: str) -> dict[str, Any] | None:
    # A damaged JSON column must not make the whole history unreadable: keep the row, drop the field, log it.
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        log.warning("Ignoring JSON that is not a readable object in %s: %.80r", what, text)
        return None
    return value


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model=row["model"],
        system_prompt=row["system_prompt"],
        sampling=_load(row["sampling_json"], f"conversation {row['id']}") or {},
        pinned=bool(row["pinned"]),
        leaf_message_id=row["leaf_message_id"],
    )


def _message(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        parent_id=row["parent_id"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        status=row["status"],
        finish_reason=row["finish_reason"],
        receipt=_load(row["receipt_json"], f"message {row['id']}"),
    )


def _no_conversation(cid: int) -> HistoryError:
    return HistoryError(f"Conversation {cid} does not exist.")


def _no_message(mid: int) -> HistoryError:
    return HistoryError(f"Message {mid} does not exist.")


class History:
    """The history database: open one per thread; every write is one transaction."""

    def __init__(self, db_path: Path) -> None:
        """Opens or creates the database, migrates it, and marks replies left 'streaming' by a crash 'interrupted'."""
        self.path = Path(db_path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(
                f"The folder {self.path.parent} could not be created; check its permissions and free space."
            ) from exc
        conn = connect(self.path)
        conn.row_factory = sqlite3.Row
        self._conn: sqlite3.Connection | None = conn
        try:
            #: the copy made before a schema upgrade, or None when this open upgraded nothing
            self.backup_path: Path | None = migrate(conn, self.path)
            # Nothing is streaming when a process opens the file, except in a second process while the first
            # streams: its next flush writes 'streaming' back, so that case heals itself. Read first, so a
            # plain open takes no write lock.
            if self._read("SELECT 1 FROM messages WHERE status = 'streaming' LIMIT 1"):
                with self._write() as db:
                    db.execute("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Closes the connection; further calls raise HistoryError. Closing twice is fine."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise HistoryError("The history is closed; reopen it to continue.")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        try:
            with transaction(conn):
                yield conn
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path) from exc

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            # fetchall() at once: an unfinished cursor would hold a read snapshot open.
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path) from exc

    @staticmethod
    def _leaf(db: sqlite3.Connection, cid: int) -> int | None:
        row = db.execute("SELECT leaf_message_id FROM conversations WHERE id = ?", (cid,)).fetchone()
        if row is None:
            raise _no_conversation(cid)
        leaf: int | None = row[0]
        return leaf

    @staticmethod
    def _check_member(db: sqlite3.Connection, cid: int, mid: int) -> None:
        row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (mid,)).fetchone()
        if row is None:
            raise _no_message(mid)
        if row[0] != cid:
            raise HistoryError(f"Message {mid} belongs to another conversation than {cid}.")

    # -- conversations ----------------------------------------------------------------------------------

    def create_conversation(
        self,
        title: str = "New chat",
        *,
        model: str | None = None,
        system_prompt: str = "",
        sampling: Mapping[str, Any] | None = None,
    ) -> Conversation:
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, created_at, updated_at, model, system_prompt, sampling_json)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (title, now, now, model, system_prompt, _dump(sampling or {})),
            )
        cid = cur.lastrowid
        assert cid is not None  # an INSERT always sets it
        return self.get_conversation(cid)

    def list_conversations(self, limit: int | None = None, offset: int = 0) -> list[Conversation]:
        """Pinned first, then the most recently active; `limit`/`offset` page through them."""
        rows = self._read(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations"
            " ORDER BY pinned DESC, updated_at DESC, id DESC LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        )
        return [_conversation(r) for r in rows]

    def get_conversation(self, cid: int) -> Conversation:
        rows = self._read(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (cid,))
        if not rows:
            raise _no_conversation(cid)
        return _conversation(rows[0])

    def _update(self, cid: int, assignments: str, params: tuple[Any, ...]) -> None:
        with self._write() as db:
            if db.execute(f"UPDATE conversations SET {assignments} WHERE id = ?", (*params, cid)).rowcount == 0:
                raise _no_conversation(cid)

    def rename_conversation(self, cid: int, title: str) -> None:
        self._update(cid, "title = ?", (title,))

    def set_pinned(self, cid: int, pinned: bool) -> None:
        self._update(cid, "pinned = ?", (int(pinned),))

    def update_conversation(
        self,
        cid: int,
        *,
        model: str | _Unset | None = UNSET,
        system_prompt: str | _Unset = UNSET,
        sampling: Mapping[str, Any] | _Unset = UNSET,
    ) -> Conversation:
        """Changes only the settings given; returns the conversation as stored."""
        changes: dict[str, Any] = {}
        if model is not UNSET:
            changes["model"] = model
        if not isinstance(system_prompt, _Unset):
            changes["system_prompt"] = system_prompt
        if not isinstance(sampling, _Unset):
            changes["sampling_json"] = _dump(sampling)
        if changes:
            # Column names come from the fixed keys above, never from the caller.
            self._update(cid, ", ".join(f"{k} = ?" for k in changes), tuple(changes.values()))
        return self.get_conversation(cid)

    def delete_conversation(self, cid: int) -> None:
        """Deletes the conversation and, by ON DELETE CASCADE, all its messages."""
        with self._write() as db:
            if db.execute("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount == 0:
                raise _no_conversation(cid)

    # -- messages ---------------------------------------------------------------------------------------

    def add_message(
        self,
        cid: int,
        role: str,
        content: str,
        *,
        parent_id: int | _Unset | None = UNSET,
        status: str = "complete",
        finish_reason: str | None = None,
        receipt: Mapping[str, Any] | None = None,
    ) -> Message:
        """Adds a message under `parent_id` (default: the current leaf, None: a new root) and makes it the leaf."""
        if role not in ROLES:
            raise HistoryError(f"Unknown message role {role!r}; use one of {', '.join(ROLES)}.")
        if status not in STATUSES:
            raise HistoryError(f"Unknown message status {status!r}; use one of {', '.join(STATUSES)}.")
        now = time.time()
        receipt_json = None if receipt is None else _dump(receipt)
        with self._write() as db:
            leaf = self._leaf(db, cid)
            parent = leaf if isinstance(parent_id, _Unset) else parent_id
            if parent is not None:
                self._check_member(db, cid, parent)
            cur = db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, created_at, status,"
                " finish_reason, receipt_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (cid, parent, role, content, now, status, finish_reason, receipt_json),
            )
            mid = cur.lastrowid
            assert mid is not None  # an INSERT always sets it
            db.execute("UPDATE conversations SET leaf_message_id = ?, updated_at = ? WHERE id = ?", (mid, now, cid))
        return Message(mid, cid, parent, role, content, now, status, finish_reason, _load(receipt_json, "receipt"))

    def messages(self, cid: int) -> list[Message]:
        """The branch the user is looking at, root first: the leaf and its ancestors."""
        rows = self._read(_BRANCH_SQL, (cid,))
        if not rows:
            self.get_conversation(cid)  # an empty branch is fine; an unknown conversation is an error
        return [_message(r) for r in rows]

    def get_message(self, mid: int) -> Message:
        rows = self._read(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (mid,))
        if not rows:
            raise _no_message(mid)
        return _message(rows[0])

    def children(self, cid: int, parent_id: int | None) -> list[Message]:
        """The replies to `parent_id` (None: the roots), oldest first: the alternatives at one branch point."""
        rows = self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id",
            (cid, parent_id),
        )
        if not rows:
            self.get_conversation(cid)
        return [_message(r) for r in rows]

    def set_leaf(self, cid: int, message_id: int | None) -> None:
        """Switches the branch shown: `message_id` becomes the leaf (None: an empty conversation view)."""
        with self._write() as db:
            self._leaf(db, cid)
            if message_id is not None:
                self._check_member(db, cid, message_id)
            db.execute("UPDATE conversations SET leaf_message_id = ? WHERE id = ?", (message_id, cid))

    def begin_reply(
        self, cid: int, *, parent_id: int | _Unset | None = UNSET, flush_interval: float = DEFAULT_FLUSH_INTERVAL_S
    ) -> StreamingReply:
        """Adds an empty assistant message with status 'streaming' as the new leaf, to be filled as tokens come."""
        message = self.add_message(cid, "assistant", "", parent_id=parent_id, status="streaming")
        return StreamingReply(self, message, flush_interval)

    def check_integrity(self) -> list[str]:
        """SQLite's own check of the file: an empty list when it is sound, else the problems it found."""
        problems = [str(r[0]) for r in self._read("PRAGMA integrity_check")]
        problems += [f"broken reference in {r[0]} row {r[1]}" for r in self._read("PRAGMA foreign_key_check")]
        return [] if problems == ["ok"] else [p for p in problems if p != "ok"]


class StreamingReply:
    """An assistant reply being generated: text is buffered and saved every `flush_interval` seconds."""

    def __init__(self, history: History, message: Message, flush_interval: float) -> None:
        self._history = history
        self.message_id = message.id
        self.conversation_id = message.conversation_id
        self.flush_interval = flush_interval
        self._parts: list[str] = []
        self._length = 0
        self._flushed_chars = 0
        self._last_write = time.monotonic()
        self._finished = False

    @property
    def content(self) -> str:
        """All text appended so far, saved or not."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]  # join once, not on every read
        return self._parts[0] if self._parts else ""

    @property
    def flushed_chars(self) -> int:
        """How many characters of `content` are on disk."""
        return self._flushed_chars

    @property
    def finished(self) -> bool:
        return self._finished

    def append(self, text: str) -> None:
        """Adds text; writes everything so far when `flush_interval` has passed since the last write.

        Checked here rather than with a timer so the core stays thread-free: a crash loses at most the text
        of the last `flush_interval` seconds of appends.
        """
        self._check_open()
        if not text:
            return
        self._parts.append(text)
        self._length += len(text)
        if time.monotonic() - self._last_write >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Writes the text so far now (nothing happens when nothing new was appended)."""
        self._check_open()
        if self._flushed_chars == self._length:
            return
        content = self.content
        try:
            with self._history._write() as db:
                # status is written again so that a reply marked 'interrupted' by another process opening the
                # file while we stream goes back to 'streaming'.
                cur = db.execute(
                    "UPDATE messages SET content = ?, status = 'streaming' WHERE id = ?", (content, self.message_id)
                )
                if cur.rowcount == 0:
                    self._finished = True
                    raise self._deleted()
        finally:
            # Also after a failure (disk full): retry at the next interval, not on every token.
            self._last_write = time.monotonic()
        self._flushed_chars = len(content)

    def finish(
        self,
        *,
        status: str = "complete",
        finish_reason: str | None = None,
        receipt: Mapping[str, Any] | None = None,
        content: str | None = None,
    ) -> Message:
        """Writes the final text (`content` replaces what was appended), status and receipt in one transaction."""
        self._check_open()
        if status not in FINISH_STATUSES:
            choices = ", ".join(FINISH_STATUSES)
            raise HistoryError(f"A reply cannot finish with status {status!r}; use one of {choices}.")
        final = self.content if content is None else content
        now = time.time()
        with self._history._write() as db:
            cur = db.execute(
                "UPDATE messages SET content = ?, status = ?, finish_reason = ?, receipt_json = ? WHERE id = ?",
                (final, status, finish_reason, None if receipt is None else _dump(receipt), self.message_id),
            )
            if cur.rowcount == 0:
                self._finished = True
                raise self._deleted()
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, self.conversation_id))
        # Only once the write succeeded: after a failure (disk full) the caller may call finish() again.
        self._parts, self._length, self._flushed_chars = [final], len(final), len(final)
        self._finished = True
        return self._history.get_message(self.message_id)

    def _check_open(self) -> None:
        if self._finished:
            raise HistoryError(f"The reply {self.message_id} is already finished; start a new reply to add text.")

    def _deleted(self) -> HistoryError:
        return HistoryError(
            f"Conversation {self.conversation_id} was deleted while its reply was being written; the reply is lost."
        )

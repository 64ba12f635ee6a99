"""Ordered forward migrations of the history schema; the version lives in PRAGMA user_version."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llamadesk.core.errors import HistoryError
from llamadesk.core.history.db import get_user_version, known_error, set_user_version, transaction, translate_error


@dataclass(frozen=True)
class Migration:
    """One step from schema `index` to `index + 1` (MIGRATIONS[0] builds v1 from an empty file).

    `foreign_keys_off`: set it for a step that rebuilds a table (create new, copy, drop old, rename), which
    SQLite only allows with foreign keys off; the runner then checks every reference before committing.
    """

    description: str
    apply: Callable[[sqlite3.Connection], None]
    foreign_keys_off: bool = False


def _statements(*sql: str) -> Callable[[sqlite3.Connection], None]:
    # One execute() per statement: executescript() would COMMIT first and break the one-transaction rule.
    def apply(conn: sqlite3.Connection) -> None:
        for statement in sql:
            conn.execute(statement)

    return apply


# The first release schema. Frozen: change the schema only by appending a Migration below, never by editing
# this one (databases already at v1 would not see the edit). tests/data/history_v1.sql is a dump of it.
_V1 = _statements(
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        model TEXT,
        system_prompt TEXT NOT NULL DEFAULT '',
        sampling_json TEXT NOT NULL DEFAULT '{}',
        pinned INTEGER NOT NULL DEFAULT 0,
        leaf_message_id INTEGER NULL
    )
    """,
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        parent_id INTEGER NULL REFERENCES messages(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'complete'
            CHECK (status IN ('complete', 'streaming', 'interrupted', 'cancelled', 'error')),
        finish_reason TEXT NULL,
        receipt_json TEXT NULL
    )
    """,
    "CREATE INDEX messages_by_conversation ON messages (conversation_id, id)",
    "CREATE INDEX messages_by_parent ON messages (parent_id)",
    "CREATE INDEX conversations_by_order ON conversations (pinned DESC, updated_at DESC)",
)

# v2: full-text search, the trash, and indexes that keep opening a million-message history instant.
# FTS5 tables with external content store only the index (the text stays in messages/conversations); the
# triggers keep them in step inside the writer's own transaction, so the index can never lag behind a commit.
# 'rebuild' backfills the index from rows already there. unicode61 with remove_diacritics 2 lets "creme" find
# "crème"; everything else about matching is FTS5's default (case-insensitive whole words).
_V2 = _statements(
    "ALTER TABLE conversations ADD COLUMN deleted_at REAL NULL",
    """
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE VIRTUAL TABLE conversations_fts USING fts5(
        title, content='conversations', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
    END
    """,
    # Fires for ON DELETE CASCADE too (deleting a conversation or a parent message).
    """
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END
    """,
    # OF content: a status or receipt change does not re-index the text.
    """
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
    END
    """,
    """
    CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO conversations_fts (rowid, title) VALUES (new.id, new.title);
    END
    """,
    """
    CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
        INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
    END
    """,
    """
    CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
        INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
        INSERT INTO conversations_fts (rowid, title) VALUES (new.id, new.title);
    END
    """,
    "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    "INSERT INTO conversations_fts (conversations_fts) VALUES ('rebuild')",
    # The sidebar lists live conversations only; a partial index in exactly the listing order reads the first
    # page without a sort. It replaces v1's index, which every write would otherwise keep up for nothing.
    "DROP INDEX conversations_by_order",
    """
    CREATE INDEX conversations_live_order ON conversations (pinned DESC, updated_at DESC, id DESC)
    WHERE deleted_at IS NULL
    """,
    "CREATE INDEX conversations_trash ON conversations (deleted_at) WHERE deleted_at IS NOT NULL",
    # Opening the history looks for replies left 'streaming'; without this a million-row scan on every start.
    "CREATE INDEX messages_streaming ON messages (id) WHERE status = 'streaming'",
)

# v3: where a conversation came from: 'app' (typed in LlamaDesk or its CLI) or 'server' (a request to LlamaDesk's
# OpenAI-compatible server, kept when the user asked for it). Rows already there came from the app.
_V3 = _statements("ALTER TABLE conversations ADD COLUMN source TEXT NOT NULL DEFAULT 'app'")

# v4: the images a message refers to, by the SHA-256 name of the normalized file in the ImageStore (core/images.py,
# `images/` beside the database). A table rather than a column on messages: the hashes still referenced (what the
# image garbage collection keeps) are one indexed read instead of a parse of every message; deleting a
# conversation or a message drops its rows by ON DELETE CASCADE; and the messages table, its reads and its FTS
# triggers stay as they were for the many messages that have no image. The mime type and the size let a view lay
# out and an export describe an image without opening the file.
_V4 = _statements(
    """
    CREATE TABLE message_images (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        mime TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        PRIMARY KEY (message_id, position)
    )
    """,
    "CREATE INDEX message_images_by_hash ON message_images (sha256)",
)

MIGRATIONS: list[Migration] = [
    Migration("v1: conversations and messages (first release)", _V1),
    Migration("v2: full-text search (FTS5), trash (conversations.deleted_at), indexes for scale", _V2),
    Migration("v3: conversations.source ('app' or 'server')", _V3),
    Migration("v4: message_images (the images a message refers to, by hash)", _V4),
]

LATEST_VERSION = len(MIGRATIONS)


def backup_path(db_path: Path, version: int) -> Path:
    """Where the copy made before migrating a database at `version` goes: `<db>.v{version}.bak` next to it."""
    return db_path.with_name(f"{db_path.name}.v{version}.bak")


def migrate(conn: sqlite3.Connection, db_path: Path) -> Path | None:
    """Brings the database to LATEST_VERSION; returns the backup made first, or None when none was needed."""
    try:
        version = get_user_version(conn)
    except sqlite3.Error as exc:
        raise translate_error(exc, db_path) from exc
    if version > LATEST_VERSION:
        raise HistoryError(
            f"This history was written by a newer LlamaDesk (schema {version}); update LlamaDesk to open it."
        )
    if version == LATEST_VERSION:
        return None
    if not fts5_available():
        # Checked before the backup and the first step: a history is never left half-upgraded for this.
        raise HistoryError(
            "This Python's SQLite lacks full-text search (FTS5), which LlamaDesk's history needs; "
            "run LlamaDesk from its installer or from a Python whose SQLite has FTS5."
        )
    backup = None
    if version == 0:
        _check_empty(conn, db_path)
    else:
        backup = _backup(conn, db_path, version)
    for target in range(version + 1, LATEST_VERSION + 1):
        _run(conn, db_path, target)
    return backup


def fts5_available() -> bool:
    """Whether this Python's sqlite3 module was built with FTS5 (schema v2 needs it); official builds are."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
    return True


def _check_empty(conn: sqlite3.Connection, db_path: Path) -> None:
    # Version 0 with tables in it is some other program's database: building ours inside it would mix the two.
    try:
        row = conn.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()
    except sqlite3.Error as exc:
        raise translate_error(exc, db_path) from exc
    if row[0]:
        raise HistoryError(
            f"The file {db_path} is a database of another program, not a LlamaDesk history; move it elsewhere "
            "and restart LlamaDesk."
        )


def _backup(conn: sqlite3.Connection, db_path: Path, version: int) -> Path:
    target = backup_path(db_path, version)
    try:
        dest = sqlite3.connect(str(target))
        try:
            conn.backup(dest)
            # A single self-contained file (no -wal beside it) is what a user expects to copy or restore.
            dest.execute("PRAGMA journal_mode = DELETE")
        finally:
            dest.close()
    except sqlite3.Error as exc:
        # Never migrate without a backup: a failed upgrade must leave the user a way back.
        raise HistoryError(
            f"The history could not be backed up to {target} before upgrading it; free some space or check "
            "the permissions of that folder, then restart LlamaDesk."
        ) from exc
    return target


def _run(conn: sqlite3.Connection, db_path: Path, target: int) -> None:
    step = MIGRATIONS[target - 1]
    try:
        if step.foreign_keys_off:
            conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction, hence before BEGIN
        try:
            with transaction(conn):
                # Another process may have migrated between our version check and our write lock.
                if get_user_version(conn) >= target:
                    return
                step.apply(conn)
                if step.foreign_keys_off and conn.execute("PRAGMA foreign_key_check").fetchall():
                    raise HistoryError(
                        f"Upgrading the history to schema {target} broke references between messages; "
                        "restore the backup next to it and report this problem."
                    )
                set_user_version(conn, target)
        finally:
            if step.foreign_keys_off:
                conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        # A full disk or a lock is the user's to fix; anything else is a bug in the step itself.
        raise known_error(exc, db_path) or HistoryError(
            f"Upgrading the history to schema {target} failed ({exc}); it was left unchanged, so report this "
            "problem and keep using the previous LlamaDesk version meanwhile."
        ) from exc

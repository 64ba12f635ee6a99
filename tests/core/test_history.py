"""Conversation history on real SQLite files: CRUD, branches, streaming, recovery, migrations and failures."""

from __future__ import annotations

import os
import queue
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamadesk.core.errors import HistoryError
from llamadesk.core.history import Conversation, History, Message, StreamingReply, migrations
from llamadesk.core.history.db import DISK_FULL_MESSAGE, connect, transaction
from llamadesk.core.history.migrations import LATEST_VERSION, Migration, backup_path

DATA = Path(__file__).resolve().parent.parent / "data"
DUMPS = sorted(DATA.glob("history_v*.sql"), key=lambda p: int(re.findall(r"\d+", p.stem)[0]))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"  # the folder does not exist yet: History creates it


@pytest.fixture
def history(db_path: Path) -> Iterator[History]:
    h = History(db_path)
    yield h
    h.close()


def raw(path: Path) -> sqlite3.Connection:
    """A plain second connection, to see what is really on disk."""
    return sqlite3.connect(str(path), isolation_level=None)


def assert_sentence(err: HistoryError) -> None:
    text = str(err)
    assert text[0].isupper() and text.endswith("."), text
    assert "Traceback" not in text and not re.search(r"sqlite3\.\w*Error", text), text


# -- opening -------------------------------------------------------------------------------------------------


def test_new_database_has_latest_schema_and_pragmas(history: History, db_path: Path) -> None:
    conn = history._conn  # the connection's own pragmas are per-connection, so read them there
    assert conn is not None
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 * 1024 * 1024
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"conversations", "messages", "messages_by_conversation", "messages_by_parent", "messages_fts"} <= names
    assert history.backup_path is None
    assert not list(db_path.parent.glob("*.bak"))


def test_closed_history_raises(db_path: Path) -> None:
    h = History(db_path)
    h.close()
    h.close()
    with pytest.raises(HistoryError, match="closed"):
        h.list_conversations()


# -- conversations -------------------------------------------------------------------------------------------


def test_conversation_round_trip(history: History, db_path: Path) -> None:
    c = history.create_conversation("Cakes", model="m.gguf", system_prompt="Be brief.", sampling={"temperature": 0.3})
    assert isinstance(c, Conversation)
    assert (c.title, c.model, c.system_prompt, c.sampling, c.pinned, c.leaf_message_id) == (
        "Cakes",
        "m.gguf",
        "Be brief.",
        {"temperature": 0.3},
        False,
        None,
    )
    assert c.created_at == c.updated_at and abs(c.created_at - time.time()) < 60
    assert history.get_conversation(c.id) == c
    with History(db_path) as other:
        assert other.get_conversation(c.id) == c
    default = history.create_conversation()
    assert (default.title, default.model, default.system_prompt, default.sampling) == ("New chat", None, "", {})


def test_rename_pin_update_only_given(history: History) -> None:
    c = history.create_conversation(model="a.gguf", system_prompt="S", sampling={"top_k": 5})
    history.rename_conversation(c.id, "Renamed")
    history.set_pinned(c.id, True)
    got = history.get_conversation(c.id)
    assert (got.title, got.pinned) == ("Renamed", True)
    assert history.update_conversation(c.id, model=None).model is None
    got = history.get_conversation(c.id)
    assert (got.system_prompt, got.sampling) == ("S", {"top_k": 5})
    got = history.update_conversation(c.id, sampling={"top_p": 0.5}, system_prompt="")
    assert (got.model, got.system_prompt, got.sampling) == (None, "", {"top_p": 0.5})
    assert history.update_conversation(c.id) == got
    history.set_pinned(c.id, False)
    assert history.get_conversation(c.id).pinned is False


def test_list_pinned_first_then_recent(history: History) -> None:
    a = history.create_conversation("a")
    b = history.create_conversation("b")
    c = history.create_conversation("c")
    assert [x.title for x in history.list_conversations()] == ["c", "b", "a"]
    history.add_message(a.id, "user", "bump")  # activity moves a conversation up
    assert [x.title for x in history.list_conversations()] == ["a", "c", "b"]
    history.set_pinned(b.id, True)
    assert [x.title for x in history.list_conversations()] == ["b", "a", "c"]
    assert [x.title for x in history.list_conversations(limit=2)] == ["b", "a"]
    assert [x.title for x in history.list_conversations(limit=2, offset=2)] == ["c"]
    assert c.id in {x.id for x in history.list_conversations()}


def test_unknown_ids_are_sentences(history: History) -> None:
    for call in (
        lambda: history.get_conversation(12),
        lambda: history.rename_conversation(12, "x"),
        lambda: history.set_pinned(12, True),
        lambda: history.update_conversation(12, model="x"),
        lambda: history.delete_conversation(12),
        lambda: history.add_message(12, "user", "x"),
        lambda: history.messages(12),
        lambda: history.begin_reply(12),
    ):
        with pytest.raises(HistoryError) as err:
            call()
        assert str(err.value) == "Conversation 12 does not exist."
    with pytest.raises(HistoryError, match=r"^Message 99 does not exist\.$"):
        history.get_message(99)


def test_delete_cascades_to_messages(history: History, db_path: Path) -> None:
    keep = history.create_conversation("keep")
    history.add_message(keep.id, "user", "stays")
    gone = history.create_conversation("gone")
    u = history.add_message(gone.id, "user", "q")
    history.add_message(gone.id, "assistant", "a1")
    history.add_message(gone.id, "assistant", "a2", parent_id=u.id)
    history.delete_conversation(gone.id)
    with pytest.raises(HistoryError):
        history.get_conversation(gone.id)
    conn = raw(db_path)
    assert conn.execute("SELECT count(*) FROM messages WHERE conversation_id = ?", (gone.id,)).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    conn.close()
    assert [m.content for m in history.messages(keep.id)] == ["stays"]


# -- messages and branches -----------------------------------------------------------------------------------


def test_messages_round_trip_and_leaf(history: History, db_path: Path) -> None:
    c = history.create_conversation()
    s = history.add_message(c.id, "system", "Be kind.")
    u = history.add_message(c.id, "user", "Hi ✓")
    receipt = {"model_file": "m.gguf", "tokens_per_s": 12.5, "sampling": {"temperature": 0.7}}
    a = history.add_message(c.id, "assistant", "Hello", finish_reason="stop", receipt=receipt)
    assert isinstance(a, Message)
    assert (s.parent_id, u.parent_id, a.parent_id) == (None, s.id, u.id)
    assert history.get_message(a.id) == a
    assert a.receipt == receipt and a.status == "complete" and a.finish_reason == "stop"
    assert history.messages(c.id) == [s, u, a]
    conv = history.get_conversation(c.id)
    assert conv.leaf_message_id == a.id and conv.updated_at >= c.updated_at
    with History(db_path) as other:
        assert other.messages(c.id) == [s, u, a]
    assert history.messages(history.create_conversation().id) == []


def test_branches(history: History) -> None:
    c = history.create_conversation()
    u = history.add_message(c.id, "user", "q")
    a1 = history.add_message(c.id, "assistant", "first")
    a2 = history.add_message(c.id, "assistant", "second", parent_id=u.id)  # regenerate: same parent
    assert [m.content for m in history.messages(c.id)] == ["q", "second"]
    assert history.children(c.id, u.id) == [a1, a2]
    assert history.children(c.id, None) == [u]
    history.set_leaf(c.id, a1.id)
    assert [m.content for m in history.messages(c.id)] == ["q", "first"]
    follow = history.add_message(c.id, "user", "more")  # continues the branch being looked at
    assert follow.parent_id == a1.id
    assert [m.content for m in history.messages(c.id)] == ["q", "first", "more"]
    root = history.add_message(c.id, "user", "fresh start", parent_id=None)
    assert history.messages(c.id) == [root]
    other = history.create_conversation()
    with pytest.raises(HistoryError, match="another conversation"):
        history.add_message(other.id, "user", "x", parent_id=u.id)
    with pytest.raises(HistoryError, match="another conversation"):
        history.set_leaf(other.id, u.id)


def test_invalid_role_writes_nothing(history: History) -> None:
    c = history.create_conversation()
    with pytest.raises(HistoryError, match="role"):
        history.add_message(c.id, "robot", "x")
    with pytest.raises(HistoryError, match="status"):
        history.add_message(c.id, "user", "x", status="done")
    assert history.messages(c.id) == []
    assert history.get_conversation(c.id).leaf_message_id is None


def test_long_branch_is_one_query(history: History) -> None:
    c = history.create_conversation()
    conn = history._conn
    assert conn is not None
    with transaction(conn):  # one transaction for the setup only; the API is timed below
        for i in range(5000):
            conn.execute(
                "INSERT INTO messages (id, conversation_id, parent_id, role, content, created_at) VALUES (?,?,?,?,?,?)",
                (i + 1, c.id, i or None, "user" if i % 2 == 0 else "assistant", f"m{i}", float(i)),
            )
        conn.execute("UPDATE conversations SET leaf_message_id = 5000 WHERE id = ?", (c.id,))
    start = time.perf_counter()
    msgs = history.messages(c.id)
    elapsed = time.perf_counter() - start
    assert [m.id for m in msgs] == list(range(1, 5001))
    assert elapsed < 0.5, f"messages() took {elapsed:.3f} s for 5,000 messages"


# -- streaming replies ---------------------------------------------------------------------------------------


def test_reply_flushes_when_interval_passed(history: History, db_path: Path) -> None:
    c = history.create_conversation()
    history.add_message(c.id, "user", "q")
    # The reader opens first: opening a History marks replies already streaming 'interrupted' (crash recovery).
    with History(db_path) as reader:
        reply = history.begin_reply(c.id, flush_interval=0)
        assert isinstance(reply, StreamingReply)
        assert history.get_conversation(c.id).leaf_message_id == reply.message_id
        m = reader.get_message(reply.message_id)
        assert (m.role, m.status, m.content) == ("assistant", "streaming", "")
        reply.append("Hel")
        reply.append("lo")
        assert reader.get_message(reply.message_id).content == "Hello"
        assert reply.flushed_chars == 5 and reply.content == "Hello"


def test_reply_waits_for_interval(history: History, db_path: Path) -> None:
    c = history.create_conversation()
    with History(db_path) as reader:
        reply = history.begin_reply(c.id, flush_interval=3600)
        reply.append("not yet")
        assert reader.get_message(reply.message_id).content == ""
        assert reply.flushed_chars == 0 and reply.content == "not yet"
        reply.flush()
        assert reader.get_message(reply.message_id).content == "not yet"


def test_reply_finish(history: History, db_path: Path) -> None:
    c = history.create_conversation()
    reply = history.begin_reply(c.id, flush_interval=3600)
    reply.append("Hello, wor")
    receipt = {"generated_tokens": 3, "finish_reason": "stop"}
    done = reply.finish(finish_reason="stop", receipt=receipt)
    assert (done.content, done.status, done.finish_reason, done.receipt) == ("Hello, wor", "complete", "stop", receipt)
    with History(db_path) as reader:
        assert reader.get_message(reply.message_id) == done
    with pytest.raises(HistoryError, match="already finished"):
        reply.append("x")
    trimmed = history.begin_reply(c.id, flush_interval=0)
    trimmed.append("Answer</s>")
    done = trimmed.finish(status="cancelled", content="Answer")
    assert (done.content, done.status, done.parent_id) == ("Answer", "cancelled", reply.message_id)
    with pytest.raises(HistoryError, match="cannot finish"):
        history.begin_reply(c.id).finish(status="interrupted")


def test_reply_of_deleted_conversation(history: History) -> None:
    c = history.create_conversation()
    reply = history.begin_reply(c.id, flush_interval=0)
    history.delete_conversation(c.id)
    with pytest.raises(HistoryError, match="was deleted"):
        reply.append("x")


def test_reopen_recovers_streaming_as_interrupted(db_path: Path) -> None:
    h = History(db_path)
    c = h.create_conversation()
    reply = h.begin_reply(c.id, flush_interval=0)
    reply.append("partial")
    h.close()  # the process stops without finish(): what a crash leaves behind
    with History(db_path) as again:
        m = again.get_message(reply.message_id)
        assert (m.status, m.content) == ("interrupted", "partial")


def test_second_window_recovery_heals_on_next_flush(history: History, db_path: Path) -> None:
    c = history.create_conversation()
    reply = history.begin_reply(c.id, flush_interval=0)
    with History(db_path) as second:
        assert second.get_message(reply.message_id).status == "interrupted"
        reply.append("still going")
        assert second.get_message(reply.message_id).status == "streaming"


# -- failures ------------------------------------------------------------------------------------------------


def test_disk_full_is_a_sentence_and_writes_nothing(history: History) -> None:
    c = history.create_conversation()
    history.add_message(c.id, "user", "small")
    conn = history._conn
    assert conn is not None
    # SQLite's own page limit produces the very SQLITE_FULL error a full disk does.
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(HistoryError) as err:
        history.add_message(c.id, "assistant", "x" * 100_000)
    assert str(err.value) == DISK_FULL_MESSAGE
    assert [m.content for m in history.messages(c.id)] == ["small"]
    reply = history.begin_reply(c.id, flush_interval=0)
    with pytest.raises(HistoryError, match="disk is full"):
        reply.append("y" * 100_000)
    assert history.get_message(reply.message_id).content == ""
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert reply.finish().content == "y" * 100_000  # the buffer survived; finishing later succeeds
    assert history.check_integrity() == []


def test_locked_database_is_waited_for(history: History, db_path: Path) -> None:
    c = history.create_conversation()
    script = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(0.5)\n"
        "c.execute('COMMIT')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(db_path)], stdout=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: lines.put(proc.stdout.readline() if proc.stdout else ""))
        reader.start()
        assert lines.get(timeout=30).strip() == "locked"
        reader.join(timeout=5)
        start = time.monotonic()
        history.add_message(c.id, "user", "written after the other writer let go")
        assert time.monotonic() - start > 0.1  # it did wait, through busy_timeout
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert [m.content for m in history.messages(c.id)] == ["written after the other writer let go"]


def test_lock_held_too_long_is_a_sentence(history: History, db_path: Path) -> None:
    c = history.create_conversation()
    assert history._conn is not None
    history._conn.execute("PRAGMA busy_timeout = 50")  # keeps the test fast; 5 s is the real value
    holder = raw(db_path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(HistoryError, match="busy in another program") as err:
            history.add_message(c.id, "user", "x")
        assert_sentence(err.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_garbage_file_is_a_sentence(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(os.urandom(8192))
    with pytest.raises(HistoryError) as err:
        History(db_path)
    assert "is not a readable LlamaDesk history" in str(err.value)
    assert_sentence(err.value)


def test_other_programs_database_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = raw(db_path)
    conn.execute("CREATE TABLE cookies (name TEXT)")
    conn.close()
    with pytest.raises(HistoryError, match="another program") as err:
        History(db_path)
    assert_sentence(err.value)


def test_directory_in_the_way_is_a_sentence(db_path: Path) -> None:
    db_path.mkdir(parents=True)
    with pytest.raises(HistoryError) as err:
        History(db_path)
    assert_sentence(err.value)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_database_is_a_sentence(db_path: Path) -> None:
    History(db_path).close()
    db_path.chmod(0o444)
    db_path.parent.chmod(0o555)
    try:
        with pytest.raises(HistoryError, match="read-only") as err, History(db_path) as h:
            h.create_conversation()  # where opening alone succeeds, the first write must fail with the sentence
        assert_sentence(err.value)
    finally:
        db_path.parent.chmod(0o755)
        db_path.chmod(0o644)


def test_newer_schema_is_refused(db_path: Path) -> None:
    History(db_path).close()
    conn = raw(db_path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(HistoryError) as err:
        History(db_path)
    assert str(err.value) == (
        f"This history was written by a newer LlamaDesk (schema {LATEST_VERSION + 1}); update LlamaDesk to open it."
    )


def test_damaged_json_column_does_not_break_reading(history: History, db_path: Path) -> None:
    c = history.create_conversation(sampling={"top_k": 1})
    conn = raw(db_path)
    conn.execute("UPDATE conversations SET sampling_json = '{oops' WHERE id = ?", (c.id,))
    conn.close()
    assert history.get_conversation(c.id).sampling == {}


def test_transaction_rolls_back_and_nests(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = connect(db_path)
    conn.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(ZeroDivisionError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        1 / 0  # noqa: B018 - the exception is the point
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        with pytest.raises(KeyError), transaction(conn):
            conn.execute("INSERT INTO t VALUES (3)")
            raise KeyError("inner only")
    assert [r[0] for r in conn.execute("SELECT x FROM t")] == [2]
    assert not conn.in_transaction
    conn.close()


def test_integrity_after_many_operations(history: History) -> None:
    for i in range(20):
        c = history.create_conversation(f"c{i}")
        u = history.add_message(c.id, "user", "q")
        history.add_message(c.id, "assistant", "a")
        history.add_message(c.id, "assistant", "b", parent_id=u.id)
        if i % 3 == 0:
            history.delete_conversation(c.id)
    assert history.check_integrity() == []
    assert history._conn is not None
    assert history._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- migrations ----------------------------------------------------------------------------------------------


def load_dump(dump: Path, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    conn = raw(target)
    conn.executescript(dump.read_text(encoding="utf-8"))
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return int(version)


def test_a_dump_of_the_first_schema_exists() -> None:
    assert DUMPS and DUMPS[0].name == "history_v1.sql", "the v1 dump is what every migration is tested from"


@pytest.mark.parametrize("dump", DUMPS, ids=[p.stem for p in DUMPS])
def test_migrates_dump(dump: Path, db_path: Path) -> None:
    version = load_dump(dump, db_path)
    assert version == int(re.findall(r"\d+", dump.stem)[0]), "the dump must set PRAGMA user_version"
    conn = raw(db_path)
    before_conversations = conn.execute("SELECT id, title FROM conversations ORDER BY id").fetchall()
    before_messages = conn.execute(
        "SELECT id, conversation_id, parent_id, role, content, status FROM messages ORDER BY id"
    ).fetchall()
    conn.close()
    assert before_conversations and before_messages

    with History(db_path, trash_retention_s=None) as h:  # keep the dump's old trash: every row must survive
        migrated = version < LATEST_VERSION
        backup = backup_path(db_path, version)
        assert backup.exists() is migrated
        assert h.backup_path == (backup if migrated else None)
        listed = h.list_conversations() + h.list_trash()
        assert sorted((c.id, c.title) for c in listed) == before_conversations
        for mid, cid, parent, role, content, status in before_messages:
            m = h.get_message(mid)
            expected_status = "interrupted" if status == "streaming" else status
            assert (m.conversation_id, m.parent_id, m.role, m.content, m.status) == (
                cid,
                parent,
                role,
                content,
                expected_status,
            )
        for conv in listed:
            branch = h.messages(conv.id)
            assert (branch[-1].id if branch else None) == conv.leaf_message_id
        assert h.check_integrity() == []
        assert h._conn is not None
        assert h._conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    if migrated:
        conn = raw(backup)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == version
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == len(before_messages)
        conn.close()


def test_migration_backs_up_first_and_rolls_back_on_failure(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exercises the upgrade path with a test-only v+1 step, so it is covered before a real one exists."""
    load_dump(DUMPS[-1], db_path)
    old = LATEST_VERSION

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE messages ADD COLUMN half_done TEXT")
        conn.execute("SELECT * FROM no_such_table")  # fails after a change: the change must not stay

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, Migration("broken", broken)])
    monkeypatch.setattr(migrations, "LATEST_VERSION", old + 1)
    with pytest.raises(HistoryError) as err:
        History(db_path)
    assert_sentence(err.value)
    conn = raw(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == old
    assert "half_done" not in {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
    conn.close()
    assert backup_path(db_path, old).exists()

    def good(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE messages ADD COLUMN tags TEXT NOT NULL DEFAULT ''")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS[:-1], Migration("tags", good)])
    with History(db_path) as h:
        assert h.backup_path == backup_path(db_path, old)
        assert h.list_conversations()
        assert h._conn is not None
        assert h._conn.execute("PRAGMA user_version").fetchone()[0] == old + 1
    with History(db_path) as h:
        assert h.backup_path is None  # already at the latest version: nothing ran, nothing copied

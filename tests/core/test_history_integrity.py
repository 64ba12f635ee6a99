"""Integrity across processes: SIGKILL during an import leaves all or nothing; two writers never see "locked"."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llamadesk.core.history import History

REPO = Path(__file__).resolve().parent.parent.parent
WAIT_S = 60.0
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
CONVERSATIONS, MESSAGES_EACH = 200, 100


def export_document(conversations: int, messages_each: int) -> str:
    convs = []
    for c in range(conversations):
        msgs = [
            {"id": i, "parent_id": i - 1 if i else None, "role": "user" if i % 2 == 0 else "assistant",
             "content": f"imported {c}/{i} " + "lorem ipsum dolor sit amet " * 8, "created_at": float(i)}
            for i in range(messages_each)
        ]  # fmt: skip
        convs.append({"title": f"imported {c}", "created_at": 1.0, "updated_at": 2.0, "messages": msgs})
    return json.dumps({"format": "llamadesk-history", "version": 1, "conversations": convs})


IMPORTER = """
import sys
from pathlib import Path
from llamadesk.core.history import History, read_export_file

conversations = read_export_file(Path(sys.argv[2]))
with History(Path(sys.argv[1])) as h:
    print("importing", flush=True)
    h.import_conversations(conversations)
    print("done", flush=True)
"""


@pytest.fixture(scope="module")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "big.json"
    path.write_text(export_document(CONVERSATIONS, MESSAGES_EACH), encoding="utf-8")
    return path


def counts(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return (
            conn.execute("SELECT count(*) FROM conversations").fetchone()[0],
            conn.execute("SELECT count(*) FROM messages").fetchone()[0],
        )
    finally:
        conn.close()


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.2, 0.5, 1.0, 60.0])
def test_kill_during_import_leaves_all_or_nothing(tmp_path: Path, big_export: Path, delay_s: float) -> None:
    db = tmp_path / "history.sqlite3"
    with History(db) as h:  # what was committed before must survive the kill
        before = h.create_conversation("before the import")
        h.add_message(before.id, "user", "committed earlier")
    proc = subprocess.Popen(
        [sys.executable, "-c", IMPORTER, str(db), str(big_export)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "importing"
        finished = False
        if delay_s >= WAIT_S:  # the last case lets the import finish, then kills the idle process
            finished = proc.stdout.readline().strip() == "done"
            assert finished
        else:
            time.sleep(delay_s)
        # SIGKILL: no finally, no close(), no rollback by Python; only SQLite's journal protects the file.
        proc.kill() if sys.platform == "win32" else os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT_S)
        proc.stdout.close()

    conversations, messages = counts(db)
    assert (conversations, messages) in {(1, 1), (1 + CONVERSATIONS, 1 + CONVERSATIONS * MESSAGES_EACH)}
    if finished:
        assert conversations == 1 + CONVERSATIONS
    if delay_s <= 0.05:  # the import takes seconds: these kills must land inside its transaction
        assert conversations == 1, "the kill should land inside the import's transaction"
    with History(db) as h:
        assert [m.content for m in h.messages(before.id)] == ["committed earlier"]
        assert h.check_integrity() == []  # the search index included
        title_hits = [x for x in h.search("imported", limit=1000) if x.message_id is None]
        assert len(title_hits) == conversations - 1


WRITER = """
import json, sys, time
from pathlib import Path
from llamadesk.core.history import History, parse_export

db, name, go, doc = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
batch = parse_export(doc)
with History(db) as h:
    cid = h.create_conversation(name).id
    while not go.exists():
        time.sleep(0.001)
    for i in range(150):
        h.add_message(cid, "user", f"{name} {i}")
        if i % 30 == 0:
            h.import_conversations(batch)  # a longer transaction the other writer must wait for
        if i % 50 == 0:
            reply = h.begin_reply(cid, flush_interval=0)
            for k in range(20):
                reply.append(f"{k} ")
            reply.finish()
            h.search(name)
            h.list_conversations(limit=50)
print("ok", flush=True)
"""


def test_two_processes_write_at_once_without_locked_errors(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    History(db).close()
    go = tmp_path / "go"
    doc = export_document(10, 40)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), name, str(go), doc],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for name in ("alpha", "beta")
    ]
    time.sleep(1.0)  # both opened and waiting: they start writing at the same moment
    go.touch()
    results = [p.communicate(timeout=WAIT_S * 3) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0 and out.strip() == "ok", err
        assert "locked" not in err and "busy" not in err
    with History(db) as h:
        assert h.check_integrity() == []
        assert h.count_conversations() == 2 + 2 * 5 * 10
        for name in ("alpha", "beta"):
            (conv,) = [c for c in h.list_conversations() if c.title == name]
            texts = [m.content for m in h.messages(conv.id) if m.role == "user"]
            assert texts == [f"{name} {i}" for i in range(150)]


HOLDER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""


def test_write_waits_longer_than_busy_timeout_by_retrying(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    with History(db) as h:
        c = h.create_conversation()
        assert h._conn is not None
        h._conn.execute("PRAGMA busy_timeout = 150")  # the lock below outlasts it: only the retries get through
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), "0.45"], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "locked"
            start = time.monotonic()
            h.add_message(c.id, "user", "after the long lock")
            assert time.monotonic() - start > 0.15
        finally:
            proc.wait(timeout=WAIT_S)
            proc.stdout.close()
        assert proc.returncode == 0
        assert [m.content for m in h.messages(c.id)] == ["after the long lock"]

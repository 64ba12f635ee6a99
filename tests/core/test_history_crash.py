"""Crash safety: a process killed while streaming a reply leaves a sound database and the text it had flushed."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llamadesk.core.history import History

REPO = Path(__file__).resolve().parent.parent.parent
WAIT_S = 30.0  # generous bound on every wait: a slow CI machine, never an endless hang

# The child streams a reply the way the app does (many small appends), and reports each flush.
# The text is predictable ("<i> " for i = 0, 1, 2, ...), so the parent can check it character by character.
CHILD = """
import sys, time
from pathlib import Path
from llamadesk.core.history import History

h = History(Path(sys.argv[1]))
cid = h.create_conversation("crash").id
h.add_message(cid, "user", "Count for me.")
reply = h.begin_reply(cid, flush_interval=0.2)
print("reply", reply.message_id, flush=True)
flushed = 0
i = 0
while True:
    reply.append(f"{i} ")
    i += 1
    if reply.flushed_chars != flushed:
        flushed = reply.flushed_chars
        print(flushed, flush=True)
    time.sleep(0.0005)  # a fast model: about 2,000 tokens per second
"""


def expected_text(length: int) -> str:
    text, i = "", 0
    while len(text) < length:
        text += f"{i} "
        i += 1
    return text[:length]


def start_reader(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Lines of the child's stdout through a queue, so every read can time out; None marks the end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True, name="child-stdout").start()
    return lines


def next_line(lines: queue.Queue[str | None], proc: subprocess.Popen[str]) -> str:
    try:
        line = lines.get(timeout=WAIT_S)
    except queue.Empty:
        pytest.fail(f"the child printed nothing for {WAIT_S:.0f} s")
    if line is None:
        stderr = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"the child exited early with code {proc.wait(timeout=WAIT_S)}:\n{stderr}")
    return line


@pytest.mark.parametrize(
    ("flushes_before_kill", "extra_delay_s"),
    # Different moments: right after the reply row exists, after a few flushes, and between two flushes.
    [(0, 0.0), (1, 0.05), (2, 0.0), (4, 0.13), (7, 0.19)],
)
def test_kill_while_streaming(tmp_path: Path, flushes_before_kill: int, extra_delay_s: float) -> None:
    db = tmp_path / "history.sqlite3"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = start_reader(proc)
        first = next_line(lines, proc).split()
        assert first[0] == "reply", first
        message_id = int(first[1])
        reported = 0
        for _ in range(flushes_before_kill):
            reported = int(next_line(lines, proc))
        time.sleep(extra_delay_s)  # lands the kill at another point of the flush cycle
        # SIGKILL: no atexit, no finally, no close(): the harshest way a process can stop.
        if sys.platform == "win32":
            proc.kill()  # TerminateProcess: just as abrupt
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
        # Lines printed between our last read and the kill were flushed too; they only raise the bar.
        while (line := lines.get(timeout=WAIT_S)) is not None:
            reported = max(reported, int(line))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT_S)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    conn = sqlite3.connect(str(db))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with History(db) as h:
        reply = h.get_message(message_id)
        assert reply.status == "interrupted"
        assert len(reply.content) >= reported, f"lost flushed text: {len(reply.content)} < {reported}"
        assert reply.content == expected_text(len(reply.content))
        assert h.get_conversation(reply.conversation_id).leaf_message_id == message_id
        assert h.check_integrity() == []

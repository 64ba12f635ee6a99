"""`llamadesk chat` with its data, log or cache folder on a full disk, as a user runs it: one sentence on stderr,
never a traceback, the history intact. The disk is a real 16 MB tmpfs filled to the last byte where mounting is
allowed (root, as in CI); elsewhere the child meets the same refusals injected (tests/full_disk.py)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from full_disk import FullDisk, small_disk

from llamadesk.core.history.db import DISK_FULL_MESSAGE, DISK_FULL_OPEN_MESSAGE


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[FullDisk]:
    with small_disk(tmp_path / "small-disk") as small:
        print(f"full disk: {small.kind}")  # which form ran shows with -rA / on failure
        yield small


def chat(model: Path, prompt: str, *, home: Path, disk: FullDisk) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home), **disk.child_env()}
    return subprocess.run(
        [sys.executable, "-m", "llamadesk", "chat", "--model", str(model), "--max-tokens", "8", "--seed", "1", prompt],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def conversations(db: Path) -> list[tuple[str, str, str]]:
    """(title, role, status) of every message, after SQLite's own integrity check."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return con.execute(
            "SELECT c.title, m.role, m.status FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "ORDER BY m.id"
        ).fetchall()
    finally:
        con.close()


def test_a_full_disk_under_every_folder_is_one_sentence_and_the_history_stays(disk: FullDisk, tiny_model: Path) -> None:
    home = disk.root / "home"
    first = chat(tiny_model, "before", home=home, disk=disk)
    assert first.returncode == 0 and first.stderr == "", first.stderr

    disk.fill()  # data, logs and cache alike: llama.cpp's load alone logs ~100 lines into the full log folder
    full = chat(tiny_model, "while full", home=home, disk=disk)
    assert full.returncode == 1
    data = home.resolve() / "data"
    # A real full disk stops SQLite as it opens the file (no room for its shared-memory file); the injected one
    # refuses the first write. Either way: one sentence, and nothing of the history is lost.
    assert one_line(full) in (f"llamadesk chat: {DISK_FULL_OPEN_MESSAGE.format(folder=data)}",
                              f"llamadesk chat: {DISK_FULL_MESSAGE}")  # fmt: skip

    disk.free()
    assert conversations(data / "history.sqlite3") == [("Before", "user", "complete"),
                                                        ("Before", "assistant", "complete")]  # fmt: skip
    again = chat(tiny_model, "after", home=home, disk=disk)
    assert again.returncode == 0 and again.stderr == "", again.stderr


def test_a_full_log_folder_costs_one_line_after_the_reply(
    disk: FullDisk, tiny_model: Path, llamadesk_home: Path
) -> None:
    llamadesk_home.mkdir(parents=True)
    (disk.root / "logs").mkdir()
    (llamadesk_home / "logs").symlink_to(disk.root / "logs")  # only the log folder lies on the small disk
    disk.fill()
    result = chat(tiny_model, "hello", home=llamadesk_home, disk=disk)
    assert result.returncode == 0 and result.stdout.strip()
    logs = llamadesk_home.resolve() / "logs"
    assert one_line(result) == (f"llamadesk: The disk holding the log folder {logs} is full, so logging stopped; "
                                "free some space there.")  # fmt: skip
    assert [role for _, role, _ in conversations(llamadesk_home / "data" / "history.sqlite3")] == ["user", "assistant"]


def test_a_full_cache_folder_costs_nothing_but_the_memo(disk: FullDisk, tiny_model: Path, llamadesk_home: Path) -> None:
    llamadesk_home.mkdir(parents=True)
    cache = disk.root / "cache"
    cache.mkdir()
    (llamadesk_home / "cache").symlink_to(cache)  # the probe and sha256 memos cannot be written
    disk.fill()
    result = chat(tiny_model, "hello", home=llamadesk_home, disk=disk)
    assert result.returncode == 0 and result.stdout.strip() and result.stderr == "", result.stderr
    assert [p.name for p in cache.iterdir() if p.name.endswith(".tmp")] == []  # no half-written memo left behind

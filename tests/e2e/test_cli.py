"""The `llamadesk` command as a user runs it: a real subprocess, real llama.cpp, real SQLite."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llamadesk import __version__


def cli(*args: str, home: Path, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "llamadesk", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip


def rows(home: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(home / "data" / "history.sqlite3")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_version(llamadesk_home: Path) -> None:
    result = cli("--version", home=llamadesk_home)
    assert result.returncode == 0 and __version__ in result.stdout


def test_chat_streams_and_records_history(llamadesk_home: Path, tiny_model: Path) -> None:
    result = cli("chat", "--model", str(tiny_model), "--max-tokens", "16", "--seed", "9", "--stats",
                 "--system", "be brief", "hello model", home=llamadesk_home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "generated" in result.stderr and "tokens/s" in result.stderr
    convs = rows(llamadesk_home, "SELECT title, system_prompt, model FROM conversations")
    assert convs == [("Model", "be brief", tiny_model.name)]  # titles leave the greeting out
    msgs = rows(llamadesk_home, "SELECT role, content, status, receipt_json FROM messages ORDER BY id")
    assert [m[0] for m in msgs] == ["user", "assistant"]
    assert msgs[1][2] == "complete" and msgs[1][1].strip() == result.stdout.strip()
    assert '"seed": 9' in msgs[1][3]


def test_chat_reads_stdin_and_no_history(llamadesk_home: Path, tiny_model: Path) -> None:
    result = cli("chat", "--model", str(tiny_model), "--max-tokens", "4", "--no-history", "-",
                 home=llamadesk_home, stdin="hello from stdin")  # fmt: skip
    assert result.returncode == 0, result.stderr
    db = llamadesk_home / "data" / "history.sqlite3"
    assert not db.exists() or rows(llamadesk_home, "SELECT count(*) FROM messages") == [(0,)]


def test_chat_adds_text_files_to_the_message(llamadesk_home: Path, tiny_model: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("Water the garden.\n```sh\nwater --all\n```\n", encoding="utf-8")
    script = tmp_path / "fix.py"
    script.write_text("print('hinge')\n", encoding="utf-8")
    result = cli("chat", "--model", str(tiny_model), "--max-tokens", "4", "--file", str(notes), "--file",
                 str(script), "What first?", home=llamadesk_home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (message,) = rows(llamadesk_home, "SELECT content FROM messages WHERE role = 'user'")
    assert message[0] == (
        "What first?\nnotes.md:\n````md\nWater the garden.\n```sh\nwater --all\n```\n````\n"
        "fix.py:\n```py\nprint('hinge')\n```\n"
    )


def test_chat_refuses_a_binary_file_with_one_sentence(llamadesk_home: Path, tiny_model: Path, tmp_path: Path) -> None:
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    result = cli("chat", "--model", str(tiny_model), "--file", str(picture), "what is this?", home=llamadesk_home)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "llamadesk chat: photo.png is not UTF-8 text; only text files can be added to a message."
    )


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--temperature", "3"], "between 0 and 2"),
        (["--top-k", "500"], "between 0 and 200"),
        (["--seed", "-4"], "Seed"),
        (["--ctx", "10"], "Context length"),
    ],
)
def test_bad_arguments_exit_2_with_the_range(llamadesk_home: Path, tiny_model: Path, args, phrase) -> None:
    result = cli("chat", "--model", str(tiny_model), *args, "hi", home=llamadesk_home)
    assert result.returncode == 2 and phrase in result.stderr and "Traceback" not in result.stderr


def test_unloadable_model_exits_3_with_one_sentence(llamadesk_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"definitely not a model")
    result = cli("chat", "--model", str(bad), "hi", home=llamadesk_home)
    assert result.returncode == 3
    assert "not a GGUF" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_history_commands(llamadesk_home: Path, tiny_model: Path) -> None:
    first = cli("chat", "--model", str(tiny_model), "--max-tokens", "4", "first question", home=llamadesk_home)
    assert first.returncode == 0
    listed = cli("history", "list", home=llamadesk_home)
    assert listed.returncode == 0 and "First question" in listed.stdout
    shown = cli("history", "show", "1", home=llamadesk_home)
    assert "[user]" in shown.stdout and "first question" in shown.stdout
    assert cli("history", "rm", "1", home=llamadesk_home).returncode == 0
    assert "first question" not in cli("history", "list", home=llamadesk_home).stdout
    missing = cli("history", "show", "99", home=llamadesk_home)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


@pytest.mark.starter
def test_killed_mid_reply_keeps_the_partial_reply(llamadesk_home: Path, starter_model: Path) -> None:
    """SIGKILL while streaming: the partial reply is on disk (flushed ≤ 0.5 s ago) and marked interrupted.
    The real starter model streams for seconds (random-weight models end their turn too soon)."""
    env = {**os.environ, "LLAMADESK_HOME": str(llamadesk_home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llamadesk", "chat", "--model", str(starter_model), "--ctx", "2048",
         "--max-tokens", "1500", "--seed", "1", "Write a very long story about a llama who learns to sail."],
        stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    printed = b""
    try:
        # Wait until well over one flush interval of text has streamed, then kill without warning.
        db = llamadesk_home / "data" / "history.sqlite3"
        while True:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, "the reply ended before the test could kill it"
            printed += chunk
            if len(printed) > 200 and db.exists():
                flushed = rows(llamadesk_home, "SELECT length(content) FROM messages WHERE role='assistant'")
                if flushed and flushed[0][0] > 0:
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    listed = cli("history", "show", "1", home=llamadesk_home)  # opening the history recovers the reply
    assert listed.returncode == 0
    (status, content), = rows(llamadesk_home, "SELECT status, content FROM messages WHERE role='assistant'")
    assert status == "interrupted" and content
    assert printed.decode(errors="replace").lstrip().startswith(content.strip()[:20])
    assert rows(llamadesk_home, "PRAGMA integrity_check") == [("ok",)]


def _long_conversation(home: Path, turns: int) -> int:
    """A saved conversation of `turns` long exchanges (about 2,000 tokens in all), through the core's own History."""
    from llamadesk.core.history import History
    from llamadesk.paths import get_paths

    history = History(get_paths(home).ensure().history_db)
    try:
        conv = history.create_conversation("Long one", system_prompt="be brief")
        for i in range(turns):
            history.add_message(conv.id, "user", f"question {i} " + "tell me more about the model " * 12)
            history.add_message(conv.id, "assistant", f"answer {i} " + "the window and the cache " * 12)
        return conv.id
    finally:
        history.close()


def test_chat_continues_a_saved_conversation_within_the_context_by_the_overflow_policy(
    llamadesk_home: Path, tiny_model: Path
) -> None:
    cid = _long_conversation(llamadesk_home, turns=12)
    common = ("chat", "--model", str(tiny_model), "--ctx", "512", "--max-tokens", "8", "--seed", "1",
              "--conversation", str(cid))  # fmt: skip
    stopped = cli(*common, "and now?", home=llamadesk_home)
    assert stopped.returncode == 1 and "no longer fits" in stopped.stderr  # the default policy: stop, one sentence

    dropped = cli(*common, "--overflow", "drop-oldest", "and now?", home=llamadesk_home)
    assert dropped.returncode == 0, dropped.stderr
    assert "earlier messages were left out of the prompt to fit" in dropped.stderr
    import json

    (receipt_json,) = rows(llamadesk_home, "SELECT receipt_json FROM messages ORDER BY id DESC LIMIT 1")[0]
    receipt = json.loads(receipt_json)
    assert receipt["context_policy"] == "drop_oldest" and receipt["system_prompt"] == "be brief"
    assert receipt["excluded_spans"][0][0] == 0 and receipt["excluded_count"] > 0  # the oldest turns went first
    assert receipt["prompt_tokens"] <= 512 - 8
    # the conversation grew on its own branch: the failed reply and the new exchange both hang below it
    roles = [r for (r,) in rows(llamadesk_home, f"SELECT role FROM messages WHERE conversation_id = {cid} ORDER BY id")]
    assert roles[-4:] == ["user", "assistant", "user", "assistant"] and len(roles) == 12 * 2 + 4


def test_chat_refuses_to_continue_a_conversation_without_history(llamadesk_home: Path, tiny_model: Path) -> None:
    result = cli("chat", "--model", str(tiny_model), "--conversation", "1", "--no-history", "hi", home=llamadesk_home)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    missing = cli("chat", "--model", str(tiny_model), "--conversation", "42", "hi", home=llamadesk_home)
    assert missing.returncode == 1 and "42" in missing.stderr and "Traceback" not in missing.stderr


def test_chat_complete_continues_text_as_a_notebook(llamadesk_home: Path, tiny_model: Path) -> None:
    """--complete: the model continues the text as raw text; the history keeps a notebook the window opens as one."""
    first = cli("chat", "--model", str(tiny_model), "--max-tokens", "8", "--seed", "3", "--complete",
                "Once upon a time", home=llamadesk_home)  # fmt: skip
    assert first.returncode == 0, first.stderr
    (cid, sampling), = rows(llamadesk_home, "SELECT id, sampling_json FROM conversations")
    assert '"mode": "notebook"' in sampling
    msgs = rows(llamadesk_home, "SELECT role, content, status, receipt_json FROM messages ORDER BY id")
    assert [(m[0], m[2]) for m in msgs] == [("user", "complete"), ("assistant", "complete")]
    assert msgs[0][1] == "Once upon a time" and msgs[1][1].strip() == first.stdout.strip()
    assert '"mode": "completion"' in msgs[1][3]

    again = cli("chat", "--model", str(tiny_model), "--max-tokens", "4", "--complete", "--conversation", str(cid),
                "Once upon a time there was", home=llamadesk_home)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert rows(llamadesk_home, f"SELECT count(*) FROM messages WHERE conversation_id = {cid}") == [(4,)]

    chat = cli("chat", "--model", str(tiny_model), "--max-tokens", "4", "--conversation", str(cid), "hello",
               home=llamadesk_home)  # fmt: skip
    assert chat.returncode != 0 and f"Conversation {cid} is a notebook" in chat.stderr
    assert rows(llamadesk_home, "SELECT count(*) FROM messages") == [(4,)]  # nothing written


def test_chat_complete_refuses_chat_options(llamadesk_home: Path, tiny_model: Path) -> None:
    result = cli("chat", "--model", str(tiny_model), "--complete", "--system", "be brief", "text",
                 home=llamadesk_home)  # fmt: skip
    assert result.returncode == 2 and "--complete" in result.stderr and "Traceback" not in result.stderr


def test_chat_docs_answers_from_a_collection_and_lists_its_sources(
    llamadesk_home: Path, tiny_model: Path, tmp_path: Path
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "guide.md").write_text("# Guide\n\n" + "Filler line about other things.\n" * 300
                                   + "\nThe flux capacitor needs 1.21 gigawatts.\n")  # fmt: skip
    (root / "other.txt").write_text("Nothing about it here.\n" * 300)
    added = cli("docs", "add", "manuals", str(root), home=llamadesk_home)
    assert added.returncode == 0, added.stderr
    result = cli("chat", "--model", str(tiny_model), "--ctx", "2048", "--max-tokens", "8", "--docs", "manuals",
                 "How many gigawatts does the flux capacitor need?", home=llamadesk_home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[1] " + str(root / "guide.md") in result.stderr  # what [1] refers to, on stderr
    (receipt,) = rows(llamadesk_home, "SELECT receipt_json FROM messages WHERE role = 'assistant'")
    assert '"kind": "passage"' in receipt[0] and "guide.md" in receipt[0]
    (user,) = rows(llamadesk_home, "SELECT content FROM messages WHERE role = 'user'")
    assert user[0] == "How many gigawatts does the flux capacitor need?"  # the passages went to the prompt only

    unknown = cli("chat", "--model", str(tiny_model), "--docs", "nothing", "hi", home=llamadesk_home)
    assert unknown.returncode != 0 and "no collection named 'nothing'" in unknown.stderr
    assert "Traceback" not in unknown.stderr

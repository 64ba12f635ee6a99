"""`llamadesk chat --tool/--mcp`, `llamadesk tools list` and `llamadesk mcp …` as a user runs them: real subprocesses,
the real starter model, real MCP servers (tests/mcp_test_server.py) started by the command under test, real SQLite."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SERVER = str(Path(__file__).resolve().parents[1] / "mcp_test_server.py")
COPY = 'Copy this text exactly: <tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'


def cli(*args: str, home: Path, stdin: str | None = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llamadesk", *args], input=stdin, capture_output=True, text=True, timeout=600,
        env={**os.environ, "LLAMADESK_HOME": str(home), **env}, check=False,
    )  # fmt: skip


def last_receipt(home: Path) -> dict:
    con = sqlite3.connect(home / "data" / "history.sqlite3")
    try:
        (text,) = con.execute("SELECT receipt_json FROM messages WHERE role = 'assistant' ORDER BY id DESC").fetchone()
    finally:
        con.close()
    return json.loads(text)


def test_tools_list_shows_the_built_ins(llamadesk_home: Path) -> None:
    out = cli("tools", "list", home=llamadesk_home)
    assert out.returncode == 0, out.stderr
    for spec in ("calculator", "time", "files:DIR", "history", "documents:NAME"):
        assert spec in out.stdout


def test_mcp_servers_are_added_listed_imported_and_removed(llamadesk_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "user-home"  # where LM Studio would keep its file: not the real home
    (home / ".lmstudio").mkdir(parents=True)
    lmstudio = {"mcpServers": {"imported": {"command": sys.executable, "args": [SERVER, "exit"]}}}
    (home / ".lmstudio" / "mcp.json").write_text(json.dumps(lmstudio), encoding="utf-8")
    assert cli("mcp", "add", "good", sys.executable, SERVER, "stdio", home=llamadesk_home).returncode == 0
    imported = cli("mcp", "import", "lmstudio", home=llamadesk_home, HOME=str(home))
    assert imported.returncode == 0 and "Imported 1 server" in imported.stdout and "imported" in imported.stdout

    listed = cli("mcp", "list", home=llamadesk_home)
    assert listed.returncode == 0, listed.stderr
    good, _, bad = listed.stdout.partition("imported: ")
    assert "good: ready" in good and "Add two integers." in good
    assert bad.startswith("failed") and "closed the connection" in bad and "refusing to start" in bad
    assert "Traceback" not in listed.stdout + listed.stderr
    assert cli("mcp", "rm", "imported", home=llamadesk_home).returncode == 0
    assert "imported" not in cli("mcp", "list", "--no-start", home=llamadesk_home).stdout


def test_chat_runs_the_calculator_the_model_called(llamadesk_home: Path, starter_model: Path) -> None:
    out = cli("chat", "--model", str(starter_model), "--tool", "calculator", "--yes", "--temperature", "0",
              "--seed", "1", "--max-tokens", "60", COPY, home=llamadesk_home)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("<tool_call>")
    assert '[calculator {"expression": "6*7"} → ok: 42]' in out.stderr
    receipt = last_receipt(llamadesk_home)
    assert receipt["tool_steps"] == 2
    assert [(c["name"], c["result"], c["status"]) for c in receipt["tool_calls"]] == [("calculator", "42", "ok")]
    exported = cli("history", "export", "1", "--format", "md", home=llamadesk_home)
    assert '**Tool call:** `calculator {"expression": "6*7"} → ok`' in exported.stdout and "\n42\n" in exported.stdout


def test_without_a_terminal_to_ask_on_a_call_is_denied(llamadesk_home: Path, starter_model: Path) -> None:
    out = cli("chat", "--model", str(starter_model), "--tool", "calculator", "--temperature", "0",
              "--seed", "1", "--max-tokens", "60", COPY, home=llamadesk_home, stdin=None)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "not run: no terminal to ask on" in out.stderr and "→ denied" in out.stderr
    assert [c["status"] for c in last_receipt(llamadesk_home)["tool_calls"]] == ["denied"]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [(["--tool", "abacus"], "Unknown tool"), (["--mcp", "nope"], "no MCP server named 'nope'"),
     (["--tool", "calculator", "--complete"], "leave out --complete"),
     (["--tool", "files:/nonexistent-dir"], "not a folder")],
)  # fmt: skip
def test_tool_options_that_cannot_work_exit_2_with_one_sentence(
    llamadesk_home: Path, tiny_model: Path, args: list[str], phrase: str
) -> None:
    out = cli("chat", "--model", str(tiny_model), *args, "hello", home=llamadesk_home)
    assert out.returncode == 2 and phrase in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_failed_mcp_server_is_one_line_and_the_chat_goes_on(llamadesk_home: Path, tiny_model: Path) -> None:
    assert cli("mcp", "add", "broken", sys.executable, SERVER, "garbage", home=llamadesk_home).returncode == 0
    out = cli("chat", "--model", str(tiny_model), "--mcp", "broken", "--max-tokens", "4", "hello", home=llamadesk_home)
    assert out.returncode == 0, out.stderr
    assert "The MCP server broken failed: it wrote text that is not MCP" in out.stderr and "Traceback" not in out.stderr

"""`llamadesk history` as a user runs it: a real subprocess on a real history (list, show, search, export, import,
rm, restore)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llamadesk.core.history import History
from llamadesk.paths import get_paths


def cli(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "llamadesk", "history", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def fill(home: Path) -> dict[str, int]:
    """Two conversations, one with a branch and a receipt, one pinned."""
    with History(get_paths(home).history_db) as h:
        cake = h.create_conversation("Ginger cake", model="m.gguf", system_prompt="Be brief.")
        u = h.add_message(cake.id, "user", "How long do I bake a ginger cake?")
        h.add_message(cake.id, "assistant", "Until a skewer comes out clean", status="cancelled")
        h.add_message(
            cake.id, "assistant", "About 45 minutes.", parent_id=u.id, receipt={"seed": 7}, finish_reason="stop"
        )
        notes = h.create_conversation("Travel notes")
        h.add_message(notes.id, "user", "Trains from Lisbon to <Porto> & back")
        h.set_pinned(notes.id, True)
        return {"cake": cake.id, "notes": notes.id}


def test_list_show_and_limit(llamadesk_home: Path) -> None:
    ids = fill(llamadesk_home)
    listed = cli("list", home=llamadesk_home)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["Travel notes", "Ginger cake"]
    assert lines[0].startswith(f"{ids['notes']}*\t")  # pinned
    assert len(cli("list", "--limit", "1", home=llamadesk_home).stdout.splitlines()) == 1
    shown = cli("show", str(ids["cake"]), home=llamadesk_home)
    assert "# Ginger cake" in shown.stdout and "About 45 minutes." in shown.stdout and "skewer" not in shown.stdout


def test_search(llamadesk_home: Path) -> None:
    ids = fill(llamadesk_home)
    found = cli("search", "ginger", home=llamadesk_home)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0].startswith(f"{ids['cake']}\t") and "title\t[Ginger] cake" in lines[0]
    assert lines[1].startswith(f"{ids['cake']}#") and "user: How long do I bake a [ginger] cake?" in lines[1]
    assert "skewer" in cli("search", "skewer", home=llamadesk_home).stdout  # another branch: found too
    assert cli("search", "lisbon porto", "--order", "relevance", home=llamadesk_home).stdout.count("[") == 2
    for query in ("nothing-like-this", "!!!", '"', "NEAR(x"):
        none = cli("search", query, home=llamadesk_home)
        assert none.returncode == 0 and none.stdout == "" and "No conversation matches" in none.stderr


def test_export_formats_to_stdout_and_file(llamadesk_home: Path, tmp_path: Path) -> None:
    ids = fill(llamadesk_home)
    md = cli("export", str(ids["cake"]), "--format", "md", home=llamadesk_home)
    assert md.returncode == 0 and md.stdout.startswith("# Ginger cake") and "About 45 minutes." in md.stdout
    page = cli("export", "--all", "--format", "html", home=llamadesk_home).stdout
    assert page.startswith("<!DOCTYPE html>") and "&lt;Porto&gt; &amp; back" in page and "<Porto>" not in page
    out = tmp_path / "all.json"
    done = cli("export", "--all", "--format", "json", "-o", str(out), home=llamadesk_home)
    assert done.returncode == 0 and "Exported 2 conversation(s)" in done.stderr and done.stdout == ""
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert [c["title"] for c in doc["conversations"]] == ["Ginger cake", "Travel notes"]
    assert len(doc["conversations"][0]["messages"]) == 3  # both branches


@pytest.mark.parametrize(
    ("args", "code", "phrase"),
    [
        (["--format", "md"], 2, "give conversation ids or --all"),
        (["1", "--all", "--format", "md"], 2, "give conversation ids or --all"),
        (["1"], 2, "--format"),
        (["1", "--format", "pdf"], 2, "invalid choice"),
        (["99", "--format", "json"], 1, "Conversation 99 does not exist."),
    ],
)
def test_export_refusals(llamadesk_home: Path, args: list[str], code: int, phrase: str) -> None:
    fill(llamadesk_home)
    result = cli("export", *args, home=llamadesk_home)
    assert result.returncode == code and phrase in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_export_then_import_elsewhere_round_trips(llamadesk_home: Path, tmp_path: Path) -> None:
    fill(llamadesk_home)
    first = tmp_path / "first.json"
    assert cli("export", "--all", "--format", "json", "-o", str(first), home=llamadesk_home).returncode == 0
    other = tmp_path / "other-home"
    imported = cli("import", str(first), home=other)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "Imported 2 conversation(s) (ids 1–2)."
    again = cli("import", "-", home=other, stdin=first.read_text(encoding="utf-8"))  # from standard input
    assert again.stdout.strip() == "Imported 2 conversation(s) (ids 3–4)."
    second = json.loads(cli("export", "1", "2", "--format", "json", home=other).stdout)
    original = json.loads(first.read_text(encoding="utf-8"))
    for doc in (original, second):
        for conv in doc["conversations"]:
            conv.pop("id")
            pos = {m["id"]: i for i, m in enumerate(conv["messages"])}
            conv["leaf_message_id"] = pos[conv["leaf_message_id"]]
            for m in conv["messages"]:
                m["id"], m["parent_id"] = pos[m["id"]], None if m["parent_id"] is None else pos[m["parent_id"]]
    assert second["conversations"] == original["conversations"]


def test_import_refuses_malformed_files_and_imports_nothing(llamadesk_home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "format": "llamadesk-history",\n  "version": 1,\n  "conversations": [}\n', encoding="utf-8")
    result = cli("import", str(broken), home=llamadesk_home)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"Nothing was imported from {broken}: it is not valid JSON at line 4, column 21" in result.stderr
    assert not get_paths(llamadesk_home).history_db.exists()  # refused before the history was even opened

    fill(llamadesk_home)
    doc = {"format": "llamadesk-history", "version": 1, "conversations": [
        {"title": "ok", "created_at": 1, "updated_at": 2, "messages": []},
        {"title": "bad", "created_at": 1, "updated_at": 2, "messages": [
            {"id": 1, "parent_id": None, "role": "robot", "content": "x", "created_at": 1}]},
    ]}  # fmt: skip
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    result = cli("import", str(bad), home=llamadesk_home)
    assert result.returncode == 1
    assert "conversations[1].messages[0].role must be one of" in result.stderr
    assert len(cli("list", home=llamadesk_home).stdout.splitlines()) == 2  # "ok" was not imported either
    assert "could not be read" in cli("import", str(tmp_path / "missing.json"), home=llamadesk_home).stderr


def test_rm_restore_and_purge(llamadesk_home: Path) -> None:
    ids = fill(llamadesk_home)
    cake = str(ids["cake"])
    removed = cli("rm", cake, home=llamadesk_home)
    assert removed.returncode == 0 and f"history restore {cake}" in removed.stdout
    assert "Ginger cake" not in cli("list", home=llamadesk_home).stdout
    assert "Ginger cake" in cli("list", "--trash", home=llamadesk_home).stdout
    assert cli("search", "ginger", home=llamadesk_home).stdout == ""
    assert cli("restore", cake, home=llamadesk_home).returncode == 0
    assert "Ginger cake" in cli("list", home=llamadesk_home).stdout
    assert cli("rm", "--purge", cake, home=llamadesk_home).stdout.strip() == f"Deleted conversation {cake} for good."
    assert "Ginger cake" not in cli("list", "--trash", home=llamadesk_home).stdout
    missing = cli("restore", cake, home=llamadesk_home)
    assert missing.returncode == 1 and f"Conversation {cake} does not exist." in missing.stderr

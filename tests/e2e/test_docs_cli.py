"""`llamadesk docs …` as a user runs it: real subprocesses, real files, a real collection under LLAMADESK_HOME."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from llamadesk.core.documents import store


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "llamadesk", "docs", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)  # fmt: skip


def one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    intro = "".join(f"Intro paragraph {i}, about nothing in particular, written to fill the page a bit.\n\n"
                    for i in range(20))  # fmt: skip
    flux = "The flux capacitor needs 1.21 gigawatts. " + "More detail follows. " * 40
    (root / "guide.md").write_text(f"# Guide\n\n{intro}{flux}\n")  # the flux paragraph is on line 43
    (root / "other.txt").write_text("Nothing to see here.\n")
    (root / "blob.txt").write_bytes(b"\x00binary\x00")
    return root


def test_add_list_search_reindex_rm(docs: Path, llamadesk_home: Path) -> None:
    home = llamadesk_home
    added = run_cli("add", "Time travel", str(docs), home=home)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == (
        "Time travel: 2 file(s) read, 0 unchanged, 0 removed, 1 problem(s); 2 file(s), 4 passage(s), "
        + added.stdout.strip().rsplit(", ", 1)[1]
    )
    assert "blob.txt is a binary file" in added.stderr and "Traceback" not in added.stderr

    listed = run_cli("list", home=home)
    assert listed.returncode == 0 and listed.stdout.startswith("Time travel\t2 file(s), 4 passage(s), 1 problem(s)\t")
    detail = run_cli("list", "Time travel", home=home)
    assert f"root\t{docs}" in detail.stdout.splitlines()
    assert f"problem\t{docs / 'blob.txt'}\tblob.txt is a binary file, not text." in detail.stdout.splitlines()

    found = run_cli("search", "Time travel", "flux capacitor?", home=home)
    assert found.returncode == 0 and found.stderr == ""
    place, score, snippet = found.stdout.splitlines()[0].split("\t")
    assert place == f"{docs / 'guide.md'}:43" and float(score) > 0 and "1.21 gigawatts" in snippet
    nothing = run_cli("search", "Time travel", '"foo" AND (', home=home)
    assert nothing.returncode == 0 and nothing.stdout == "" and "No passage matches" in one_sentence(nothing)

    (docs / "other.txt").write_text("Now the flux is here too.\n")
    (docs / "guide.md").unlink()
    again = run_cli("reindex", "Time travel", home=home)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("Time travel: 1 file(s) read, 1 unchanged, 1 removed, 1 problem(s)")
    moved = run_cli("search", "Time travel", "flux", "--limit", "3", home=home)
    assert moved.stdout.splitlines()[0].startswith(f"{docs / 'other.txt'}:1\t")

    path = home / "data" / "documents" / store.file_name("Time travel")
    assert path.exists()
    removed = run_cli("rm", "Time travel", home=home)
    assert removed.returncode == 0 and not path.exists() and not Path(f"{path}-wal").exists()
    assert (docs / "other.txt").exists()  # the documents themselves stay
    assert run_cli("list", home=home).stdout.startswith("No collections")


def test_errors_are_one_sentence(docs: Path, llamadesk_home: Path) -> None:
    home = llamadesk_home
    for args in (("search", "nope", "x"), ("rm", "nope"), ("reindex", "nope"), ("list", "nope")):
        result = run_cli(*args, home=home)
        assert result.returncode == 2 and "There is no collection named 'nope'" in one_sentence(result)
    missing = run_cli("add", "x", str(docs / "absent"), home=home)
    assert missing.returncode == 1 and "absent does not exist." in one_sentence(missing)
    assert not (home / "data" / "documents").exists() or not list((home / "data" / "documents").iterdir())
    blank = run_cli("add", "  ", str(docs), home=home)
    assert blank.returncode == 1 and "needs a name" in one_sentence(blank)
    limit = run_cli("search", "x", "y", "--limit", "0", home=home)
    assert limit.returncode == 2 and "--limit" in one_sentence(limit)


def test_ctrl_c_keeps_what_was_indexed(tmp_path: Path, llamadesk_home: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(3000):
        (root / f"f{i:04d}.txt").write_text(f"file number{i}\n\n" + "Some words to index here. " * 40)
    env = {**os.environ, "LLAMADESK_HOME": str(llamadesk_home)}
    proc = subprocess.Popen([sys.executable, "-m", "llamadesk", "docs", "add", "many", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("Made the collection")
    assert proc.stderr.readline().startswith("Indexing 'many'")  # printed once Ctrl+C is handled
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "what was indexed is kept" in err
    with store.open_collection("many", llamadesk_home / "data" / "documents") as c:
        kept = c.stats().files
        assert kept < 3000
        c.conn.execute("BEGIN IMMEDIATE")
        c.conn.execute("INSERT INTO passages_fts (passages_fts, rank) VALUES ('integrity-check', 1)")
        c.conn.execute("ROLLBACK")
    rest = run_cli("reindex", "many", home=llamadesk_home)
    assert rest.returncode == 0 and rest.stdout.startswith(f"many: {3000 - kept} file(s) read, {kept} unchanged")

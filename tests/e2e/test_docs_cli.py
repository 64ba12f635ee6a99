"""`llamadesk docs …` as a user runs it: real subprocesses, real files, a real collection under LLAMADESK_HOME."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
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


PIPE_MAX = 1 << 20  # the largest pipe an unprivileged process can ask for on Linux (/proc/sys/fs/pipe-max-size)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_keeps_what_was_indexed(tmp_path: Path, llamadesk_home: Path) -> None:
    """Ctrl+C during indexing: exit 130, the files done are kept, a reindex reads the rest; whatever the speed.

    No race with the machine's speed: the run prints a line per file on stderr (`-v`), and the test reads only the
    first before it sends SIGINT. A process cannot write more to a pipe than the pipe holds until its reader reads,
    and the lines of the other files are longer than any pipe together (their paths are as long as the system
    allows), so when SIGINT arrives the run has files left however fast it is: it stops at the next file, exactly
    as after a person's Ctrl+C. Then the test reads everything: the run has printed a line for each file it kept,
    no more, no fewer."""
    import fcntl

    root = tmp_path / "many"
    part = min(int(os.pathconf(tmp_path, "PC_NAME_MAX")), 240)
    room = int(os.pathconf(tmp_path, "PC_PATH_MAX")) - len(str(root)) - 40
    deep = root.joinpath(*["d" * part] * (room // (part + 1)))  # Linux: a path of ~4,000 characters
    deep.mkdir(parents=True)
    line_bytes = len(f"1000/1000 {deep / 'f0000.txt'}\n".encode())
    total = 3 * PIPE_MAX // 2 // line_bytes + 2
    for i in range(total):
        (deep / f"f{i:04d}.txt").write_text(f"file number{i}\n\n" + "Some words to index here. " * 40)
    env = {**os.environ, "LLAMADESK_HOME": str(llamadesk_home)}
    proc = subprocess.Popen([sys.executable, "-m", "llamadesk", "docs", "add", "-v", "many", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    watchdog = threading.Timer(120, proc.kill)  # a hang fails the test instead of stalling the run
    watchdog.start()
    try:
        assert proc.stderr is not None and proc.stdout is not None
        capacity = fcntl.fcntl(proc.stderr.fileno(), fcntl.F_GETPIPE_SZ) if hasattr(fcntl, "F_GETPIPE_SZ") else 0
        assert (total - 1) * line_bytes > max(capacity, PIPE_MAX)  # the premise: the rest cannot fit in the pipe
        assert proc.stderr.readline().startswith("Made the collection")
        assert proc.stderr.readline().startswith("Indexing 'many'")  # printed once Ctrl+C is handled
        first = proc.stderr.readline()
        assert first == f"1/{total} {deep / 'f0000.txt'}\n", first[:100]
        proc.send_signal(signal.SIGINT)
        err = first + proc.stderr.read()
        out = proc.stdout.read()
        assert proc.wait(timeout=60) == 130, err[-2000:]
    finally:
        watchdog.cancel()
    assert "Traceback" not in err and "what was indexed is kept" in err
    done = [line for line in err.splitlines() if re.fullmatch(rf"\d+/{total} .*", line)]
    kept_files = len(done)
    assert done == [f"{n}/{total} {deep / f'f{n - 1:04d}.txt'}" for n in range(1, kept_files + 1)], kept_files
    assert 1 <= kept_files < total  # stopped at a file boundary, with files left
    assert out.startswith(f"many: {kept_files} file(s) read, 0 unchanged, 0 removed, 0 problem(s); {kept_files} file")
    with store.open_collection("many", llamadesk_home / "data" / "documents") as c:
        assert c.stats().files == kept_files  # every file reported done is kept, and only those
        c.conn.execute("BEGIN IMMEDIATE")
        c.conn.execute("INSERT INTO passages_fts (passages_fts, rank) VALUES ('integrity-check', 1)")
        c.conn.execute("ROLLBACK")
    rest = run_cli("reindex", "many", home=llamadesk_home)
    assert rest.returncode == 0, rest.stderr
    assert rest.stdout.startswith(f"many: {total - kept_files} file(s) read, {kept_files} unchanged, 0 removed")
    with store.open_collection("many", llamadesk_home / "data" / "documents") as c:
        assert c.stats().files == total


def test_embed_makes_search_hybrid(tmp_path: Path, llamadesk_home: Path) -> None:
    """`docs embed NAME --model PATH` with a tiny generated llama that declares mean pooling: every passage gets a
    vector, search says it ran hybrid, add embeds new passages, and a model that cannot embed is one sentence."""
    import gguf
    from gguf_factory import write_tiny_llama

    chat = write_tiny_llama(tmp_path / "chat.gguf")
    reader = gguf.GGUFReader(chat)
    model = tmp_path / "tiny-embed.gguf"
    writer = gguf.GGUFWriter(str(model), "llama")
    for f in reader.fields.values():
        if f.name != "general.architecture" and not f.name.startswith("GGUF."):
            kind = f.types[0]
            writer.add_key_value(f.name, f.contents(), kind, sub_type=f.types[-1] if kind == gguf.GGUFValueType.ARRAY
                                 else None)  # fmt: skip
    writer.add_key_value("llama.pooling_type", 1, gguf.GGUFValueType.UINT32)  # mean
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data)
    writer.close()
    root = tmp_path / "notes"
    root.mkdir()
    (root / "near.txt").write_text("qwxz vbnm\n")
    (root / "budget.txt").write_text("The budget meeting noted zvbnm.\n")
    home = llamadesk_home
    assert run_cli("add", "notes", str(root), home=home).returncode == 0

    refused = run_cli("embed", "notes", "--model", str(chat), home=home)
    assert refused.returncode == 1 and "chat.gguf is not an embedding model" in one_sentence(refused)
    unset = run_cli("embed", "notes", home=home)
    assert unset.returncode == 2 and "has no embedding model yet" in one_sentence(unset)

    embedded = run_cli("embed", "notes", "--model", str(model), home=home)
    assert embedded.returncode == 0, embedded.stderr
    assert re.match(r"notes: 2 passage\(s\) embedded in [\d.]+ s; 2 of 2 have a vector \(tiny-embed.gguf\)\.",
                    embedded.stdout), embedded.stdout  # fmt: skip
    found = run_cli("search", "notes", "qwx zvbnm", home=home)
    assert found.returncode == 0 and "ranking: hybrid" in found.stderr, found.stderr
    assert [line.split("\t")[0] for line in found.stdout.splitlines()] == [f"{root / 'budget.txt'}:1",
                                                                         f"{root / 'near.txt'}:1"]  # fmt: skip

    (root / "more.txt").write_text("Another note.\n")
    added = run_cli("add", "notes", str(root), home=home)
    assert added.returncode == 0 and "notes: 1 passage(s) embedded." in added.stdout.splitlines(), added.stdout
    again = run_cli("embed", "notes", home=home)
    assert again.returncode == 0 and again.stdout.startswith("notes: 0 passage(s) embedded")

    removed = run_cli("embed", "notes", "--remove", home=home)
    assert removed.returncode == 0 and "BM25" in removed.stdout
    assert run_cli("search", "notes", "budget", home=home).stderr == ""  # BM25 alone, as before any model
    with store.open_collection("notes", home / "data" / "documents") as c:
        assert c.embedding_model() is None and c.read("SELECT COUNT(*) FROM vectors") == [(0,)]

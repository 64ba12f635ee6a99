"""The built-in tools: the calculator's answers and limits, the date and time, files only from the folders granted
(no escape through `..`, absolute paths or symlinks; a size cap), the history and document collections searched
through their real stores."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from llamadesk.core.tools.builtin import (
    MAX_FILE_BYTES,
    FileReader,
    builtin_tools,
    calculate,
    documents_tool,
    history_tool,
    time_tool,
)
from llamadesk.core.tools.spec import ToolError


@pytest.mark.parametrize(
    ("expression", "value"),
    [("2 * (3 + 4)", "14"), ("1234*5678", "7006652"), ("2**10", "1024"), ("7^2", "49"), ("sqrt(16)", "4"),
     ("10 / 4", "2.5"), ("round(pi, 3)", "3.142"), ("max(3, 9, 4)", "9"), ("-5 // 2", "-3"),
     ("2.0 ** 0.5", "1.4142135623730951")],
)  # fmt: skip
def test_the_calculator_computes(expression: str, value: str) -> None:
    assert calculate(expression) == value


@pytest.mark.parametrize(
    ("expression", "phrase"),
    [
        ("9 ** 9 ** 9", "too large"),  # would take minutes and gigabytes unchecked
        ("10 ** 100000", "too large"),
        ("(2 ** 4000) * (2 ** 4000)", "too large"),
        ("1 << 1000000", "too large"),
        ("2.0 ** 100000", "too large"),  # OverflowError
        ("1 / 0", "divides by zero"),
        ("__import__('os').system('true')", "cannot be computed"),
        ("().__class__.__bases__", "cannot be computed"),
        ("'a' * 10", "numbers only"),
        ("x + 1", "cannot be computed"),
        ("1 +", "not valid"),
        ("", "Give an arithmetic expression"),
        ("1+" * 400 + "1", "longer than"),
    ],
)
def test_the_calculator_refuses_with_one_sentence(expression: str, phrase: str) -> None:
    with pytest.raises(ToolError) as caught:
        calculate(expression)
    sentence = str(caught.value)
    assert phrase in sentence and sentence.endswith(".") and "\n" not in sentence


def test_time_is_now_with_its_zone() -> None:
    text = time_tool().run({})
    assert dt.date.today().isoformat() in text or (dt.date.today() - dt.timedelta(days=1)).isoformat() in text
    assert "UTC" in text


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    root = tmp_path / "shared"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("the shared notes\n", encoding="utf-8")
    (root / "sub" / "deep.md").write_text("# deep\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("outside the folder\n", encoding="utf-8")
    return root


def test_files_are_read_and_listed_within_the_folder(shared: Path) -> None:
    reader = FileReader([shared])
    assert reader.read("notes.txt") == "the shared notes\n"
    assert reader.read("sub/deep.md") == "# deep\n"
    assert reader.read(str(shared / "notes.txt")) == "the shared notes\n"  # absolute, inside
    assert reader.list_folder(".").splitlines() == ["notes.txt", "sub/"]
    assert reader.list_folder("sub") == "deep.md"


@pytest.mark.parametrize("path", ["../secret.txt", "sub/../../secret.txt", "/etc/passwd", "SECRET"])
def test_no_path_leaves_the_folder(shared: Path, path: str) -> None:
    if path == "SECRET":
        path = str(shared.parent / "secret.txt")
    with pytest.raises(ToolError, match="outside the folders"):
        FileReader([shared]).read(path)


def test_a_symlink_out_of_the_folder_is_refused_and_one_inside_is_followed(shared: Path) -> None:
    (shared / "escape.txt").symlink_to(shared.parent / "secret.txt")
    (shared / "escape_dir").symlink_to(shared.parent, target_is_directory=True)
    (shared / "alias.txt").symlink_to(shared / "notes.txt")
    reader = FileReader([shared])
    for path in ("escape.txt", "escape_dir/secret.txt"):
        with pytest.raises(ToolError, match="outside the folders"):
            reader.read(path)
    assert reader.read("alias.txt") == "the shared notes\n"


def test_a_large_file_is_cut_and_a_binary_refused(shared: Path) -> None:
    (shared / "big.txt").write_text("z" * (MAX_FILE_BYTES * 2), encoding="utf-8")
    (shared / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    reader = FileReader([shared])
    text = reader.read("big.txt")
    assert text.startswith("z" * 1000) and len(text) < MAX_FILE_BYTES + 200 and "only the first" in text
    with pytest.raises(ToolError, match="not a text file"):
        reader.read("blob.bin")
    with pytest.raises(ToolError, match="is a folder"):
        reader.read("sub")
    with pytest.raises(ToolError, match="no file"):
        reader.read("missing.txt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_is_not_read(shared: Path) -> None:
    os.mkfifo(shared / "pipe")  # opening it for reading would wait for a writer forever without O_NONBLOCK
    with pytest.raises(ToolError, match="not a regular file"):
        FileReader([shared]).read("pipe")


def test_history_is_searched_through_the_real_store(tmp_path: Path) -> None:
    from llamadesk.core.history import History

    history = History(tmp_path / "history.sqlite3")
    try:
        cid = history.create_conversation("Trip planning", model="m").id
        history.add_message(cid, "user", "Which train goes to Lisbon on Friday?")
        tool = history_tool(history.search)
        found = tool.run({"query": "Lisbon"})
        assert "Trip planning" in found and "Lisbon" in found and "\x02" not in found
        assert "Nothing in the history" in tool.run({"query": "zeppelin"})
        with pytest.raises(ToolError):
            tool.run({"query": "  "})
    finally:
        history.close()


def test_documents_are_searched_through_a_real_collection(tmp_path: Path) -> None:
    from llamadesk.core.documents import store
    from llamadesk.core.documents.index import index_collection

    root = tmp_path / "docs"
    root.mkdir()
    (root / "boiler.txt").write_text("The boiler pressure must stay between 1.2 and 1.5 bar.\n", encoding="utf-8")
    (root / "garden.txt").write_text("Water the tomatoes every morning in July.\n", encoding="utf-8")
    with store.create_collection("manuals") as collection:
        collection.add_roots([root])
        index_collection(collection)
    tool = documents_tool(["manuals"])
    found = tool.run({"query": "boiler pressure"})
    assert "1.2 and 1.5 bar" in found and "boiler.txt" in found and "tomatoes" not in found
    with pytest.raises(ToolError, match="manual"):  # a collection that is not there: its sentence
        documents_tool(["manual"]).run({"query": "boiler"})


def test_tool_specs_of_the_command_line(shared: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    names = [t.name for t in builtin_tools(["calculator", "time", f"files:{shared}", f"files:{other}"])]
    assert names == ["calculator", "current_time", "read_file", "list_files"]  # one reader for both folders
    bad_specs = (("abacus", "Unknown tool"), ("files:", "Name the folder"), (f"files:{shared}/notes.txt", "a folder"),
                 ("documents:", "Name the collections"), ("history", "needs the history"))  # fmt: skip
    for bad, phrase in bad_specs:
        with pytest.raises(ToolError, match=phrase):
            builtin_tools([bad])

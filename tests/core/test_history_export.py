"""Export (Markdown, HTML, JSON) and import: the documented format, lossless round trips, refusals that name the
field or line at fault and import nothing."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamadesk.core.errors import HistoryError
from llamadesk.core.history import (
    History,
    ImportFileError,
    export_conversations,
    export_to_path,
    import_file,
    parse_export,
)
from llamadesk.core.history.db import DISK_FULL_MESSAGE

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "history-export.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
RECEIPT = {"model_file": "m.gguf", "generated_tokens": 12, "tokens_per_s": 95.5, "seed": 42, "sampling": {"top_k": 40}}


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    with History(tmp_path / "history.sqlite3") as h:
        yield h


def export(history: History, cids: list[int] | None, fmt: str = "json") -> str:
    out = io.StringIO()
    export_conversations(history, cids, fmt, out)
    return out.getvalue()


def rich_conversation(history: History, title: str = "Ginger cake") -> int:
    """Branches, a receipt, every status, sampling and a system prompt: everything the format must carry."""
    c = history.create_conversation(title, model="m.gguf", system_prompt="Be brief.", sampling={"temperature": 0.2})
    history.add_message(c.id, "system", "Be brief.")
    u = history.add_message(c.id, "user", "How long do I bake a ginger cake?")
    history.add_message(c.id, "assistant", "Until a skewer comes out clean", status="cancelled")
    history.add_message(c.id, "assistant", "45 minutes.", parent_id=u.id, finish_reason="stop", receipt=RECEIPT)
    history.add_message(c.id, "user", "And the icing? 🍋 <b>&amp;</b>")
    history.add_message(c.id, "assistant", "Lemon", status="error", finish_reason="error")
    history.begin_reply(c.id, flush_interval=0).append("partial")  # still streaming
    history.set_pinned(c.id, True)
    return c.id


def normalized(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversations with ids replaced by positions: what must survive export → import → export."""
    result = []
    for conv in document["conversations"]:
        pos = {m["id"]: i for i, m in enumerate(conv["messages"])}
        messages = [
            {**m, "id": pos[m["id"]], "parent_id": None if m["parent_id"] is None else pos[m["parent_id"]]}
            for m in conv["messages"]
        ]
        leaf = conv.get("leaf_message_id")
        result.append(
            {**conv, "id": None, "leaf_message_id": None if leaf is None else pos[leaf], "messages": messages}
        )
    return result


# -- JSON ------------------------------------------------------------------------------------------------------


def test_json_export_carries_everything_and_matches_the_schema(history: History) -> None:
    cid = rich_conversation(history)
    doc = json.loads(export(history, [cid]))
    VALIDATOR.validate(doc)
    assert (doc["format"], doc["version"]) == ("llamadesk-history", 1)
    (conv,) = doc["conversations"]
    assert (conv["title"], conv["model"], conv["system_prompt"], conv["sampling"], conv["pinned"]) == (
        "Ginger cake", "m.gguf", "Be brief.", {"temperature": 0.2}, True,
    )  # fmt: skip
    msgs = conv["messages"]
    assert len(msgs) == 7  # both branches, not just the one shown
    assert [m["status"] for m in msgs] == ["complete", "complete", "cancelled"] + ["complete"] * 2 + [
        "error",
        "interrupted",  # it was still streaming: the file holds it as cut off where it stood
    ]
    assert msgs[3]["receipt"] == RECEIPT and msgs[3]["finish_reason"] == "stop"
    assert msgs[2]["parent_id"] == msgs[1]["id"] == msgs[3]["parent_id"]
    assert conv["leaf_message_id"] == msgs[-1]["id"]
    assert [m["id"] for m in msgs] == sorted(m["id"] for m in msgs)


def test_round_trip_is_lossless(history: History) -> None:
    cids = [rich_conversation(history), rich_conversation(history, "Second")]
    empty = history.create_conversation("Empty").id
    first = json.loads(export(history, [*cids, empty]))
    new_ids = history.import_conversations(parse_export(json.dumps(first)))
    assert len(new_ids) == 3 and not set(new_ids) & {*cids, empty}
    second = json.loads(export(history, new_ids))
    assert normalized(second) == normalized(first)
    # The imported copy works like any conversation: its branch, its leaf, search.
    shown = history.messages(new_ids[0])
    assert [m.content for m in shown][-2:] == ["Lemon", "partial"]
    assert shown[-1].status == "interrupted"
    assert {h.conversation_id for h in history.search("skewer")} == {cids[0], cids[1], new_ids[0], new_ids[1]}
    assert history.check_integrity() == []


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_json_value = st.recursive(
    _json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
_json_object = st.dictionaries(st.text(max_size=8), _json_value, max_size=4)
_seconds = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False) | st.integers(0, 2**40)


@st.composite
def _conversations(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(st.integers(-(2**62), 2**62), max_size=8, unique=True))
    messages = []
    for i, mid in enumerate(ids):
        messages.append({
            "id": mid,
            "parent_id": draw(st.none() | st.sampled_from(ids[:i])) if i else None,
            "role": draw(st.sampled_from(["system", "user", "assistant"])),
            "content": draw(st.text()),
            "created_at": draw(_seconds),
            "status": draw(st.sampled_from(["complete", "interrupted", "cancelled", "error"])),
            "finish_reason": draw(st.none() | st.sampled_from(["stop", "length", "cancelled", "error"]) | st.text()),
            "receipt": draw(st.none() | _json_object),
        })  # fmt: skip
    return {
        "id": draw(st.integers(0, 2**31)),
        "title": draw(st.text()),
        "created_at": draw(_seconds),
        "updated_at": draw(_seconds),
        "model": draw(st.none() | st.text()),
        "system_prompt": draw(st.text()),
        "sampling": draw(_json_object),
        "pinned": draw(st.booleans()),
        "source": draw(st.sampled_from(["app", "server"])),
        "leaf_message_id": draw(st.none() | st.sampled_from(ids)) if ids else None,
        "messages": messages,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversations=st.lists(_conversations(), max_size=4))
def test_property_import_then_export_gives_the_same_document(history: History, conversations: list[Any]) -> None:
    document = {"format": "llamadesk-history", "version": 1, "conversations": conversations}
    VALIDATOR.validate(document)
    new_ids = history.import_conversations(parse_export(json.dumps(document, ensure_ascii=False)))
    exported = json.loads(export(history, new_ids)) if new_ids else {"conversations": []}
    assert normalized(exported) == normalized(document)
    if new_ids:
        VALIDATOR.validate(exported)
        # And once more: the exported file imports to the very same document.
        again = history.import_conversations(parse_export(export(history, new_ids)))
        assert normalized(json.loads(export(history, again))) == normalized(document)


def test_non_finite_numbers_export_as_null(history: History) -> None:
    c = history.create_conversation()
    history.add_message(c.id, "assistant", "x", receipt={"tokens_per_s": float("inf"), "ok": 1})
    doc = json.loads(export(history, [c.id]))  # json.loads would accept Infinity; the file must not hold it
    assert doc["conversations"][0]["messages"][0]["receipt"] == {"tokens_per_s": None, "ok": 1}


def test_export_all_skips_the_trash_and_unknown_ids_fail_first(history: History, tmp_path: Path) -> None:
    a = history.create_conversation("a").id
    b = history.create_conversation("b").id
    history.trash_conversation(b)
    assert [c["title"] for c in json.loads(export(history, None))["conversations"]] == ["a"]
    assert [c["title"] for c in json.loads(export(history, [b, a, b]))["conversations"]] == ["b", "a"]
    target = tmp_path / "out.json"
    target.write_text("previous")
    with pytest.raises(HistoryError, match="Conversation 99 does not exist"):
        export_to_path(history, [a, 99], "json", target)
    assert target.read_text() == "previous"  # the old file is untouched; no partial file is left beside it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert export_to_path(history, None, "md", target) == 1
    assert target.read_text().startswith("# a")
    with pytest.raises(HistoryError, match="format"):
        export(history, [a], "pdf")


# -- Markdown and HTML -------------------------------------------------------------------------------------------


def test_markdown_shows_the_branch_with_receipts(history: History) -> None:
    cid = rich_conversation(history)
    text = export(history, [cid], "md")
    assert text.startswith("# Ginger cake\n")
    assert "> Be brief." in text and "## You\n\nHow long do I bake a ginger cake?" in text
    assert "## Assistant\n\n45 minutes.\n\n*m.gguf · 12 tokens · 95.5 tokens/s · seed 42*" in text
    assert "## Assistant (error)" in text and "## Assistant (interrupted)" in text
    assert "skewer" not in text  # another branch: only JSON keeps those
    assert "1 other branch(es)" in text
    two = export(history, [cid, history.create_conversation("Other").id], "md")
    assert "\n---\n\n# Other" in two


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


HOSTILE = (
    '<script>alert(1)</script><img src="https://evil.example/t.png" onerror="alert(2)">'
    "<link rel=stylesheet href=//evil.example/x.css><style>@import url(https://evil.example/y.css)</style>"
    "</div></article><iframe src=javascript:alert(3)> & &amp; \" '"
)


def test_html_is_self_contained_and_escapes_everything(history: History) -> None:
    c = history.create_conversation(f"Title {HOSTILE}", system_prompt=HOSTILE)
    history.add_message(c.id, "user", HOSTILE)
    history.add_message(c.id, "assistant", HOSTILE, receipt={"model_file": HOSTILE, "generated_tokens": 1})
    page = export(history, [c.id, history.create_conversation("Second").id], "html")
    parsed = _Collector()
    parsed.feed(page)
    assert set(parsed.tags) <= {"html", "head", "meta", "title", "style", "body", "nav", "ul", "li", "a",
                                "article", "h1", "p", "div"}  # fmt: skip
    assert not any(name.startswith("on") for name, _ in parsed.attrs)
    hrefs = [value for name, value in parsed.attrs if name in ("href", "src")]
    assert hrefs and all(v and v.startswith("#conversation-") for v in hrefs)  # only links inside the page
    assert not re.search(r"https?:|//evil|url\(", page.split("<style>")[1].split("</style>")[0])
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "".join(parsed.text).count(HOSTILE) >= 4  # the text itself reaches the reader unchanged


# -- import refusals -------------------------------------------------------------------------------------------


def good_document() -> dict[str, Any]:
    msgs = [
        {"id": 1, "parent_id": None, "role": "user", "content": "q", "created_at": 1.0},
        {"id": 2, "parent_id": 1, "role": "assistant", "content": "a", "created_at": 2.0},
    ]
    conv = {"title": "t", "created_at": 1.0, "updated_at": 2.0, "messages": msgs}
    return {"format": "llamadesk-history", "version": 1, "conversations": [conv, json.loads(json.dumps(conv))]}


def test_minimal_document_uses_the_documented_defaults(history: History) -> None:
    (cid, _) = history.import_conversations(parse_export(json.dumps(good_document())))
    c = history.get_conversation(cid)
    assert (c.model, c.system_prompt, c.sampling, c.pinned) == (None, "", {}, False)
    assert [(m.role, m.content, m.status, m.finish_reason, m.receipt) for m in history.messages(cid)] == [
        ("user", "q", "complete", None, None),
        ("assistant", "a", "complete", None, None),
    ]  # the leaf defaults to the last message


def test_syntax_error_names_line_and_column(history: History) -> None:
    text = '{\n  "format": "llamadesk-history",\n  "version": 1\n  "conversations": []\n}'
    with pytest.raises(ImportFileError) as err:
        parse_export(text, "x.json")
    assert (err.value.line, err.value.column) == (4, 3)
    assert str(err.value) == (
        "Nothing was imported from x.json: it is not valid JSON at line 4, column 3 (Expecting ',' delimiter)."
    )
    with pytest.raises(ImportFileError, match="not valid JSON"):
        parse_export('{"format": NaN}')


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"\w+", path)]
    target: Any = doc
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "phrase"),
    [
        ("format", "something-else", "format", "not a LlamaDesk history export"),
        ("version", 2, "version", "newer LlamaDesk"),
        ("version", "1", "version", "whole number"),
        ("conversations", {}, "conversations", "must be an array"),
        ("conversations[1]", [], "conversations[1]", "must be an object"),
        ("conversations[1].title", _DELETE, "conversations[1].title", "is missing"),
        ("conversations[1].created_at", "yesterday", "conversations[1].created_at", "number of seconds"),
        ("conversations[1].updated_at", 10**400, "conversations[1].updated_at", "too large"),
        ("conversations[1].pinned", 1, "conversations[1].pinned", "true or false"),
        ("conversations[1].sampling", [], "conversations[1].sampling", "must be an object"),
        ("conversations[1].leaf_message_id", 7, "conversations[1].leaf_message_id", "one of its messages"),
        ("conversations[1].messages[1].role", "robot", "conversations[1].messages[1].role", "must be one of"),
        ("conversations[1].messages[1].status", "done", "conversations[1].messages[1].status", "must be one of"),
        ("conversations[1].messages[1].content", None, "conversations[1].messages[1].content", "must be a string"),
        ("conversations[1].messages[1].content", "\ud800", "conversations[1].messages[1].content", "invalid character"),
        ("conversations[1].messages[1].id", 1, "conversations[1].messages[1].id", "used by an earlier message"),
        ("conversations[1].messages[1].id", True, "conversations[1].messages[1].id", "whole number"),
        ("conversations[1].messages[0].parent_id", 2, "conversations[1].messages[0].parent_id", "earlier message"),
        ("conversations[1].messages[1].parent_id", _DELETE, "conversations[1].messages[1].parent_id", "missing"),
        ("conversations[1].messages[1].receipt", "fast", "conversations[1].messages[1].receipt", "must be an object"),
    ],
)
def test_schema_errors_name_the_field_and_import_nothing(
    history: History, tmp_path: Path, path: str, value: Any, field: str, phrase: str
) -> None:
    doc = good_document()
    _set(doc, path, value)
    source = tmp_path / "bad.json"
    source.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ImportFileError) as err:
        import_file(history, source)
    assert err.value.field == field and phrase in str(err.value)
    assert str(err.value).startswith(f"Nothing was imported from {source}: {field} ")
    assert str(err.value).endswith(".")
    assert history.list_conversations() == []  # conversations[0] was fine, and still is not imported


def test_unreadable_files_are_sentences(history: History, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="could not be read"):
        import_file(history, tmp_path / "missing.json")
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"title": "café"}'.encode("latin-1"))
    with pytest.raises(ImportFileError, match="not UTF-8"):
        import_file(history, latin)
    bom = tmp_path / "bom.json"
    bom.write_text(json.dumps(good_document()), encoding="utf-8-sig")
    assert len(import_file(history, bom)) == 2


def test_failure_while_inserting_rolls_everything_back(history: History) -> None:
    history.create_conversation("already here")
    doc = good_document()
    doc["conversations"] = [json.loads(json.dumps(doc["conversations"][0])) for _ in range(50)]
    doc["conversations"][-1]["messages"][0]["content"] = "x" * 2_000_000  # the disk fills at the very end
    conn = history._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 100}")
    with pytest.raises(HistoryError) as err:
        history.import_conversations(parse_export(json.dumps(doc)))
    assert str(err.value) == DISK_FULL_MESSAGE
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert [c.title for c in history.list_conversations()] == ["already here"]
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert history.check_integrity() == []


def test_import_file_from_another_history(tmp_path: Path) -> None:
    with History(tmp_path / "a.sqlite3") as a:
        cid = rich_conversation(a)
        path = tmp_path / "export.json"
        export_to_path(a, [cid], "json", path)
        original = normalized(json.loads(path.read_text(encoding="utf-8")))
    with History(tmp_path / "b.sqlite3") as b:
        b.create_conversation("existing")
        (new,) = import_file(b, path)
        assert normalized(json.loads(export(b, [new]))) == original


def test_markdown_and_html_keep_what_the_citations_refer_to(history: History) -> None:
    c = history.create_conversation("Flux")
    u = history.add_message(c.id, "user", "How many gigawatts?")
    sources = [
        {"kind": "documents", "collections": ["manuals"], "mode": "passages", "quoted": 2},
        {"kind": "passage", "n": 1, "collection": "manuals", "path": "/docs/manual.pdf", "page": 2, "line": 1},
        {"kind": "passage", "n": 2, "collection": "manuals", "path": "/docs/<notes>.md", "page": None, "line": 43},
    ]
    history.add_message(c.id, "assistant", "1.21 gigawatts [1].", parent_id=u.id, receipt={"sources": sources})
    markdown = export(history, [c.id], "md")
    assert "**Sources:**\n\n- [1] /docs/manual.pdf (page 2)\n- [2] /docs/<notes>.md:43" in markdown
    html = export(history, [c.id], "html")
    assert '<div class="source">[1] /docs/manual.pdf (page 2)</div>' in html and "&lt;notes&gt;.md:43" in html
    assert json.loads(export(history, [c.id]))["conversations"][0]["messages"][1]["receipt"]["sources"] == sources

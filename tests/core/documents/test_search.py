"""BM25 search over a real collection: ranking sanity, pages and lines, and untrusted queries that never reach
FTS5's syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamadesk.core.documents import store
from llamadesk.core.documents.index import index_collection
from llamadesk.core.documents.search import fts_query, indexed_files, passages_of, search
from llamadesk.core.documents.store import Collection

FILLER = "The committee met on Tuesday and discussed the budget, the schedule and the venue for the spring event."


@pytest.fixture
def coll(tmp_path: Path) -> Collection:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "zebras.md").write_text("# Zebras\n\nZebras are striped. A zebra herd grazes; zebras run fast.\n")
    (root / "horses.md").write_text("# Horses\n\nHorses graze in the field. One zebra was seen near the horses.\n")
    (root / "minutes.txt").write_text("\n\n".join([FILLER] * 40) + "\n\nLate note: the indexing job finished.\n")
    for i in range(20):
        (root / f"noise{i}.txt").write_text(f"{FILLER}\n\nItem {i} of the agenda.\n")
    c = store.create_collection("search", tmp_path / "collections")
    c.add_roots([root])
    index_collection(c)
    return c


def test_ranking_prefers_the_passage_about_the_words(coll: Collection) -> None:
    hits = search(coll, "zebra", limit=5)
    assert [Path(h.path).name for h in hits] == ["zebras.md", "horses.md"]
    assert hits[0].score > hits[1].score > 0
    assert search(coll, "zebras horses")[0].path.endswith(("zebras.md", "horses.md"))
    assert len(search(coll, "committee", limit=3)) == 3


def test_stemming_finds_other_forms(coll: Collection) -> None:
    hit = search(coll, "indexed jobs")[0]  # porter: indexed → index, jobs → job
    assert hit.path.endswith("minutes.txt") and "indexing job finished" in hit.text
    assert hit.line > 1  # the last paragraph's own line
    lines = Path(hit.path).read_text().split("\n")
    assert lines[hit.line - 1] == hit.text.split("\n")[0]


@pytest.mark.parametrize(
    "query",
    ['"foo" AND (', "*", "NEAR(", "text:zebra", "^zebra", "zebra*", "-zebra", "zebra OR", "AND", '"', "'",
     "(((", "a\x00b", "zebra\"; DROP TABLE passages; --", "{text}: zebra", "🦓 zebra", "x" * 5000],
)  # fmt: skip
def test_fts5_syntax_never_raises(coll: Collection, query: str) -> None:
    hits = search(coll, query)
    assert isinstance(hits, list)
    if "zebra" in query:
        assert hits and hits[0].path.endswith("zebras.md")
    assert coll.stats().passages > 0  # nothing was dropped


@pytest.mark.parametrize("query", ["", "   ", "!!!", "*()^:-", "\"'", "\n\t"])
def test_empty_or_punctuation_query_returns_nothing(coll: Collection, query: str) -> None:
    assert search(coll, query) == [] and fts_query(query) == ""


def test_query_terms_are_quoted_words() -> None:
    assert fts_query('"foo" AND (bar*') == '"foo" OR "and" OR "bar"'
    assert fts_query("Zebra zebra ZEBRA") == '"zebra"'
    assert fts_query(" ".join(f"w{i}" for i in range(500))).count(" OR ") == 63


def test_passages_of_a_file_in_order(coll: Collection) -> None:
    path = next(p for p in indexed_files(coll) if p.endswith("minutes.txt"))
    passages = passages_of(coll, path)
    assert [p.ordinal for p in passages] == list(range(len(passages))) and len(passages) > 3
    assert "\n\n".join(p.text for p in passages) == Path(path).read_text().strip()
    assert passages_of(coll, "/nowhere") == []


def test_limit(coll: Collection) -> None:
    assert len(search(coll, "committee", limit=1)) == 1 and search(coll, "committee", limit=0) == []

"""BM25 search over a real collection: ranking sanity, pages and lines, and untrusted queries that never reach
FTS5's syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamadesk.core.documents import search as search_module
from llamadesk.core.documents import store
from llamadesk.core.documents.index import index_collection
from llamadesk.core.documents.search import Hit, Plan, fts_query, indexed_files, passages_of, plan, search
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


# -- large collections: common words are left out, a query of common words only still finds passages ---------------
# The thresholds are lowered so that the small collection above behaves like a large one (in a real one a word is
# common above 5 % of the passages and 1,000 of them; the fallback ranks within the first 5,000 passages).


@pytest.fixture
def as_if_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_module, "COMMON_FLOOR", 3)
    monkeypatch.setattr(search_module, "RANKED_ROWS", 12)


def plain_scores(coll: Collection, words: list[str], rowids: list[int]) -> list[float]:
    """Each passage's BM25 for the OR of the words, as a plain OR query ranks it (scores are table-wide)."""
    match = " OR ".join(f'"{w}"' for w in words)
    return [float(coll.read("SELECT -bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? AND rowid = ?",
                            (match, r))[0][0]) for r in rowids]  # type: ignore[arg-type]  # fmt: skip


def rowids(coll: Collection, hits: list[Hit]) -> list[int]:
    return [int(coll.read("SELECT p.id FROM passages p JOIN files f ON f.id = p.file_id WHERE f.path = ? AND"
                          " p.ordinal = ?", (h.path, h.ordinal))[0][0]) for h in hits]  # type: ignore[call-overload]  # fmt: skip


def test_small_collections_rank_with_every_word(coll: Collection) -> None:
    chosen = plan(coll, "The committee saw a zebra")  # "saw" is in no passage
    assert chosen == Plan(("the", "committee", "a", "zebra"), (), ("saw",))  # a plain OR, as before
    hits = search(coll, "The committee saw a zebra", limit=5)
    assert plain_scores(coll, ["the", "committee", "a", "zebra"], rowids(coll, hits)) == pytest.approx(
        [h.score for h in hits]
    )


def test_common_words_only_still_find_passages(coll: Collection, as_if_large: None) -> None:
    chosen = plan(coll, "the committee")
    assert chosen.fallback and chosen.terms  # every word is common: the rarest ones are ranked
    hits = search(coll, "the committee", limit=3)
    assert len(hits) == 3 and all("committee" in h.text.lower() for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(search(coll, "The", limit=4)) == 4
    assert len(search(coll, "committee", limit=3)) == 3


def test_a_rare_word_decides_the_ranking(coll: Collection, as_if_large: None) -> None:
    query = "the committee met and discussed the zebra budget"
    chosen = plan(coll, query)
    assert chosen.terms == ("zebra",) and not chosen.fallback
    hits = search(coll, query, limit=5)
    assert [Path(h.path).name for h in hits[:2]] == ["zebras.md", "horses.md"]
    assert len(hits) == 5 and all("zebra" not in h.text.lower() for h in hits[2:])  # filled up by the others
    assert min(h.score for h in hits[:2]) > max(h.score for h in hits[2:])
    # the rare word's passages are ordered by BM25 of every word that weighs: their scores are the plain OR's
    weighing = [w for w in ("zebra", *chosen.rerank)]
    assert plain_scores(coll, weighing, rowids(coll, hits[:2])) == pytest.approx([h.score for h in hits[:2]])


def test_common_words_order_the_passages_of_the_rare_word(tmp_path: Path, as_if_large: None) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    for i in range(12):  # the common words are in 7 passages of 26: BM25 weighs them (not in half or more)
        (root / f"other{i}.txt").write_text("Nothing here.\n")
        if i < 6:
            (root / f"common{i}.txt").write_text("The report covers the budget and the schedule.\n")
    (root / "a.txt").write_text("Quagga notes, written by the keeper on a rainy day in May.\n")
    (root / "b.txt").write_text("Quagga notes about the budget and the schedule of the report.\n")
    c = store.create_collection("order", tmp_path / "collections")
    c.add_roots([root])
    index_collection(c)
    query = "quagga budget schedule report"
    assert plan(c, query).terms == ("quagga",)
    hits = search(c, query, limit=2)
    assert [Path(h.path).name for h in hits] == ["b.txt", "a.txt"]  # the common words decide between them
    assert plain_scores(c, ["quagga", "budget", "schedule", "report"], rowids(c, hits)) == pytest.approx(
        [h.score for h in hits]
    )


@pytest.mark.parametrize("query", ['"the" AND (', "committee*", "NEAR(the", "text:the", "^the -the", "the\x00OR"])
def test_fts5_syntax_never_raises_on_large_collections(coll: Collection, as_if_large: None, query: str) -> None:
    hits = search(coll, query)
    assert hits and all("the" in h.text.lower() or "committee" in h.text.lower() for h in hits)


def test_counts_follow_changes_to_the_collection(coll: Collection, tmp_path: Path, as_if_large: None) -> None:
    assert search(coll, "quagga") == []
    (tmp_path / "docs" / "quagga.txt").write_text("A quagga is an extinct zebra.\n")
    index_collection(coll)  # this connection
    assert search(coll, "quagga")[0].path.endswith("quagga.txt")
    (tmp_path / "docs" / "okapi.txt").write_text("An okapi is not a zebra.\n")
    with store.open_collection("search", tmp_path / "collections") as other:
        index_collection(other)  # another connection
    assert search(coll, "okapi")[0].path.endswith("okapi.txt")

"""Ranked passages of a collection for a query (BM25 through FTS5), and a file's passages in order.

The query is untrusted text: only its words reach MATCH, each one quoted, joined with OR and AND. FTS5's own syntax
(AND, NEAR, *, ^, parentheses, column filters) is never interpreted, so no query can raise a syntax error.

Speed. FTS5 scores every passage that matches before it keeps the best few (~2.5 µs each), so a plain OR of words
that are in most passages ("with", "license" in a folder of licenses) ranks most of the collection: 100-500 ms at
125,000 passages. So each word's document frequency is counted first, through MATCH itself (stemmed exactly as the
index stems it; a rare word's count stops at the limit that matters, a common word's is cached per collection until
the collection changes), and the query is ranked in two steps:
1. candidates: the passages holding one of the query's rare words (in at most COMMON_SHARE of the passages, or at
   most COMMON_FLOOR), rarest first while they hold at most RANKED_ROWS passages together (the rarest always);
2. ranking: BM25 of the whole query, over the candidates only: `(rare) AND (others)` scores the candidates that
   hold another word too, `(rare)` alone those that hold none (a candidate's score is its best of the two, and the
   best `limit` of each are enough: see _rank). The scores are the ones an OR of every word gives, except that
   words in half of the passages or more are left out (FTS5's BM25 weighs them 1e-6), and only the
   MAX_RERANK_TERMS rarest other words count.
So a rare word decides which passages are found, and the common words still order them; when the rare words'
passages are fewer than asked for, the best of the other words' follow them. A query of common words
only is still answered: its FALLBACK_TERMS rarest words are the candidates, within the first RANKED_ROWS passages
that hold them (the others order them as above). In a small collection no word is common, and the ranking is
BM25 of every word, as before.

Hybrid. A collection with an embedding model (store.py's meta, vectors.py) is ranked twice: by BM25 as above and by
the cosine of the passages' vectors to the query's (embedded by the same model, the thread's cached Embedder); the
two lists are fused by reciprocal rank fusion, score = sum of 1 / (RRF_K + rank) over the lists a passage is in.
A passage that shares no word with the query can so be found by its meaning alone. When the model cannot be used
(moved, deleted), the ranking is BM25 and says why.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field

from llamadesk.core.documents.store import Collection

MAX_TERMS = 64  # a pasted page as a query: its first words are enough, and MATCH stays fast
COMMON_SHARE = 0.05  # a word in more than 5 % of the passages is common...
COMMON_FLOOR = 1_000  # ...unless it is in at most this many passages: ranking with it costs little
RANKED_ROWS = 5_000  # about the most candidates one query scores (~15 ms on a 2-core laptop)
MAX_RERANK_TERMS = 6  # the other words that order the candidates, rarest first (each costs a scan of its doclist)
FALLBACK_TERMS = 2  # the candidates of a query of common words only: its rarest words
_WORD = re.compile(r"\w+")
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al., 2009): ranks far down still count a little
FUSION_DEPTH = 50  # how many of each ranking's best are fused


@dataclass(frozen=True)
class Hit:
    """A passage found: its file, where in it (page, or first line), its text, and its score (higher is better)."""

    path: str
    page: int | None
    line: int
    text: str
    score: float
    ordinal: int


@dataclass(frozen=True)
class Passage:
    ordinal: int
    text: str
    page: int | None
    line: int


@dataclass(frozen=True)
class Plan:
    """How a query is ranked: the words whose passages are the candidates, the words that also order them, and the
    words left out."""

    terms: tuple[str, ...]
    rerank: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    fallback: bool = False  # common words only: ranked within the first RANKED_ROWS passages that hold them
    fill: tuple[str, ...] = ()  # the other words found, rarest first: they rank the rest when candidates are few

    @property
    def match(self) -> str:
        return _any(self.terms)


def _any(terms: tuple[str, ...] | list[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)  # \w never holds a double quote: each term is plain text


def _all(terms: tuple[str, ...] | list[str]) -> str:
    return " AND ".join(f'"{t}"' for t in terms)


@dataclass
class _Counts:
    """A collection's passage count and its common words' exact document frequencies, valid while `version` is."""

    version: tuple[int, int]
    passages: int
    common: dict[str, int] = field(default_factory=dict)


_COUNTS: weakref.WeakKeyDictionary[Collection, _Counts] = weakref.WeakKeyDictionary()


def words(query: str) -> list[str]:
    """The query's distinct words, lowercased, at most MAX_TERMS of them."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:MAX_TERMS]


def fts_query(query: str) -> str:
    """The MATCH expression for all the user's words: `"word" OR "word" …`, or "" when the query has no word."""
    return _any(words(query))


def _counts(collection: Collection) -> _Counts:
    """The collection's counts, read again after any change (by this connection or another one)."""
    data_version = int(collection.read("PRAGMA data_version")[0][0])  # type: ignore[call-overload]
    version = (data_version, collection.conn.total_changes)
    cached = _COUNTS.get(collection)
    if cached is None or cached.version != version:
        passages = int(collection.read("SELECT COUNT(*) FROM passages")[0][0])  # type: ignore[call-overload]
        cached = _COUNTS[collection] = _Counts(version, passages)
    return cached


def _frequency(collection: Collection, term: str, up_to: int | None = None) -> int:
    """How many passages hold the word (as the index stems it), counting no further than `up_to` when given."""
    sql = "SELECT COUNT(*) FROM passages_fts WHERE passages_fts MATCH ?"
    if up_to is not None:
        sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM passages_fts WHERE passages_fts MATCH ? LIMIT {int(up_to)})"
    return int(collection.read(sql, (f'"{term}"',))[0][0])  # type: ignore[call-overload]


def plan(collection: Collection, query: str) -> Plan:
    """How the query is ranked (see the module's docstring); no terms when no word of it is in a passage."""
    terms = words(query)
    if not terms:
        return Plan(())
    counts = _counts(collection)
    limit = max(COMMON_FLOOR, min(int(COMMON_SHARE * counts.passages), RANKED_ROWS))
    df = {t: counts.common[t] if t in counts.common else _frequency(collection, t, limit + 1) for t in terms}
    for t in terms:
        if df[t] > limit and t not in counts.common:
            df[t] = counts.common[t] = _frequency(collection, t)  # few words are common: the cache stays small
    found = sorted((t for t in terms if df[t] > 0), key=lambda t: (df[t], terms.index(t)))
    if not found:
        return Plan(())
    if df[found[0]] > limit:  # common words only
        return _fallback(collection, terms, found)
    candidates, rows = [found[0]], df[found[0]]
    for t in found[1:]:
        if df[t] <= limit and rows + df[t] <= RANKED_ROWS:
            candidates.append(t)
            rows += df[t]
    half = counts.passages / 2  # BM25's IDF is ≤ 0 from here: FTS5 weighs such a word 1e-6
    others = [t for t in found if t not in candidates and df[t] < half][:MAX_RERANK_TERMS]
    left_out = [t for t in terms if t not in candidates and t not in others]
    return Plan(_ordered(terms, candidates), _ordered(terms, others), _ordered(terms, left_out),
                fill=tuple(t for t in found if t not in candidates))  # fmt: skip


def _ordered(terms: list[str], chosen: list[str]) -> tuple[str, ...]:
    return tuple(t for t in terms if t in chosen)


def _fallback(collection: Collection, terms: list[str], found: list[str]) -> Plan:
    """Common words only (`found`, rarest first): the FALLBACK_TERMS rarest are the candidates (ranked by _rank
    within the first RANKED_ROWS passages that hold them all, or one of them), and the others that BM25 weighs at
    all (in fewer than half of the passages) order them."""
    counts = _counts(collection)
    chosen = found[:FALLBACK_TERMS]
    others = [t for t in found[FALLBACK_TERMS:] if counts.common.get(t, 0) < counts.passages / 2]
    left_out = [t for t in terms if t not in chosen and t not in others[:MAX_RERANK_TERMS]]
    return Plan(_ordered(terms, chosen), _ordered(terms, others[:MAX_RERANK_TERMS]), _ordered(terms, left_out),
                fallback=True)  # fmt: skip


def _window(collection: Collection, match: str) -> int | None:
    """The rowid of the RANKED_ROWS-th passage that matches (in rowid order); None when fewer match."""
    last = collection.read(
        "SELECT rowid FROM passages_fts WHERE passages_fts MATCH ? ORDER BY rowid LIMIT 1 OFFSET ?",
        (match, RANKED_ROWS - 1),
    )
    return int(last[0][0]) if last else None  # type: ignore[call-overload]


def _best(collection: Collection, match: str, up_to_rowid: int | None, limit: int) -> list[tuple[int, float]]:
    """The best `limit` (rowid, score) for a MATCH expression, from the index alone."""
    window = "" if up_to_rowid is None else f" AND rowid <= {int(up_to_rowid)}"
    rows = collection.read(
        f"SELECT rowid, -bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ?{window}"
        " ORDER BY bm25(passages_fts) LIMIT ?",
        (match, int(limit)),
    )
    return [(int(r[0]), float(r[1])) for r in rows]  # type: ignore[call-overload, arg-type]


def _merged(*lists: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
    """The best `limit` of several lists of (rowid, score), a rowid's highest score counting."""
    scores: dict[int, float] = {}
    for rowid, score in (item for best in lists for item in best):
        scores[rowid] = max(score, scores.get(rowid, score))
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]


def _rank(collection: Collection, chosen: Plan, limit: int) -> list[tuple[int, float]]:
    """The best `limit` candidates by BM25 of the candidate words and the re-ranking words together.

    `(c)` alone gives the exact score of the candidates that hold no re-ranking word, and less than the exact
    score of the others; `(c) AND (r)` gives the exact score of those. A candidate in the true best `limit` is in
    the second list's best `limit` if it holds a re-ranking word; if it holds none, its score is exact in the
    first, where only better candidates can be ahead of it. So the best `limit` of the two merged (a candidate's
    highest score counting) are the true best `limit`.

    A fallback plan (common words only) ranks the passages that hold all its words, within the first RANKED_ROWS
    of them; when those are fewer than `limit`, also the first RANKED_ROWS passages that hold one of them. A plan
    whose candidates are fewer than `limit` is filled up by a fallback plan of its other words."""
    sources: list[tuple[str, int | None]] = [(chosen.match, None)]
    lists: list[list[tuple[int, float]]] = []
    if chosen.fallback:
        sources = [(_all(chosen.terms), _window(collection, _all(chosen.terms)))] if len(chosen.terms) > 1 else []
        lists = [_best(collection, match, up_to, limit) for match, up_to in sources]
        if sum(map(len, lists)) < limit:
            sources.append((chosen.match, _window(collection, chosen.match)))
    lists += [_best(collection, match, up_to, limit) for match, up_to in sources[len(lists) :]]
    if chosen.rerank and any(lists):
        lists += [_best(collection, f"({match}) AND ({_any(chosen.rerank)})", up_to, limit) for match, up_to in sources]
    best = _merged(*lists, limit=limit)
    if len(best) < limit and chosen.fill:
        seen = {rowid for rowid, _ in best}
        rest = _rank(collection, _fallback(collection, list(chosen.fill), list(chosen.fill)), limit)
        best += [item for item in rest if item[0] not in seen][: limit - len(best)]
    return best


@dataclass(frozen=True)
class Ranking:
    """Which ranking ran: "bm25" or "hybrid" (BM25 and vectors, fused); `note`: why a collection with an embedding
    model was ranked by BM25 alone."""

    kind: str
    model: str = ""
    note: str = ""

    def describe(self) -> str:
        if self.kind == "hybrid":
            return f"hybrid: BM25 and the vectors of {self.model}, fused by reciprocal rank (k={RRF_K})"
        return f"BM25 ({self.note})" if self.note else "BM25"


def search(collection: Collection, query: str, limit: int = 5) -> list[Hit]:
    """The best `limit` passages for the query: by BM25, or hybrid when the collection has an embedding model;
    [] for a query without words."""
    return search_ranked(collection, query, limit)[0]


def search_ranked(collection: Collection, query: str, limit: int = 5) -> tuple[list[Hit], Ranking]:
    """search(), and which ranking ran."""
    model = collection.embedding_model()
    if limit <= 0 or not words(query):
        return [], Ranking("hybrid" if model is not None else "bm25", model.name if model else "")
    if model is None:
        return _hits(collection, _bm25(collection, query, limit)), Ranking("bm25")
    from llamadesk.core.documents.embeddings import EmbeddingError, cached_embedder
    from llamadesk.core.documents.vectors import nearest

    depth = max(limit, FUSION_DEPTH)
    lexical = _bm25(collection, query, depth)
    try:
        embedder = cached_embedder(model.path)
        if embedder.dimension != model.dimension:
            raise EmbeddingError(f"{embedder.name} now gives vectors of {embedder.dimension} numbers, not "
                                 f"{model.dimension}; embed the collection again")  # fmt: skip
        semantic = nearest(collection, embedder.embed_query(query), depth)
    except EmbeddingError as exc:
        return _hits(collection, lexical[:limit]), Ranking("bm25", model.name, str(exc).rstrip("."))
    return _hits(collection, fuse([lexical, semantic], limit)), Ranking("hybrid", model.name)


def fuse(rankings: list[list[tuple[int, float]]], limit: int, k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of several rankings of (rowid, score), best first: the best `limit` (rowid, fused
    score); ties go to the rowid ranked best in the earlier list (BM25's)."""
    fused: dict[int, float] = {}
    first: dict[int, tuple[int, int]] = {}
    for which, ranking in enumerate(rankings):
        for rank, (rowid, _) in enumerate(ranking, start=1):
            fused[rowid] = fused.get(rowid, 0.0) + 1.0 / (k + rank)
            first.setdefault(rowid, (which, rank))
    best = sorted(fused, key=lambda r: (-fused[r], first[r]))
    return [(rowid, fused[rowid]) for rowid in best[:limit]]


def _bm25(collection: Collection, query: str, limit: int) -> list[tuple[int, float]]:
    chosen = plan(collection, query)
    return _rank(collection, chosen, limit) if chosen.terms else []


def _hits(collection: Collection, best: list[tuple[int, float]]) -> list[Hit]:
    if not best:
        return []
    marks = ",".join("?" * len(best))
    rows = collection.read(
        "SELECT p.id, f.path, p.page, p.line, p.text, p.ordinal FROM passages p JOIN files f ON f.id = p.file_id"
        f" WHERE p.id IN ({marks})",
        tuple(rowid for rowid, _ in best),
    )
    found = {int(r[0]): r for r in rows}  # type: ignore[call-overload]
    return [Hit(str(r[1]), r[2], int(r[3]), str(r[4]), score, int(r[5]))  # type: ignore[arg-type, call-overload]
            for rowid, score in best if (r := found.get(rowid)) is not None]  # fmt: skip


def passages_of(collection: Collection, path: str) -> list[Passage]:
    """Every passage of one file, in order (when the documents fit the context whole)."""
    rows = collection.read(
        "SELECT p.ordinal, p.text, p.page, p.line FROM passages p JOIN files f ON f.id = p.file_id"
        " WHERE f.path = ? ORDER BY p.ordinal",
        (str(path),),
    )
    return [Passage(int(r[0]), str(r[1]), r[2], int(r[3])) for r in rows]  # type: ignore[arg-type, call-overload]


def indexed_files(collection: Collection) -> list[str]:
    """The paths of the files read into passages, sorted."""
    return [str(r[0]) for r in collection.read("SELECT path FROM files WHERE status = 'ok' ORDER BY path")]

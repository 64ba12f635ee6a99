"""Ranked passages of a collection for a query (BM25 through FTS5), and a file's passages in order.

The query is untrusted text: only its words reach MATCH, each one quoted, joined with OR. FTS5's own syntax
(AND, NEAR, *, ^, parentheses, column filters) is never interpreted, so no query can raise a syntax error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llamadesk.core.documents.store import Collection

MAX_TERMS = 64  # a pasted page as a query: its first words are enough, and MATCH stays fast
_WORD = re.compile(r"\w+")


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


def fts_query(query: str) -> str:
    """The MATCH expression for the user's words: `"word" OR "word" …`, or "" when the query has no word."""
    terms = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:MAX_TERMS]
    return " OR ".join(f'"{t}"' for t in terms)  # \w never holds a double quote: each term is a plain string


def search(collection: Collection, query: str, limit: int = 5) -> list[Hit]:
    """The best `limit` passages for the query by BM25; [] for a query without words."""
    match = fts_query(query)
    if not match or limit <= 0:
        return []
    rows = collection.read(
        "SELECT f.path, p.page, p.line, p.text, -bm25(passages_fts) AS score, p.ordinal"
        " FROM passages_fts JOIN passages p ON p.id = passages_fts.rowid JOIN files f ON f.id = p.file_id"
        " WHERE passages_fts MATCH ? ORDER BY bm25(passages_fts) LIMIT ?",
        (match, int(limit)),
    )
    return [Hit(str(r[0]), r[1], int(r[2]), str(r[3]), float(r[4]), int(r[5])) for r in rows]  # type: ignore[arg-type, call-overload]


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

"""Full-text search (FTS5) in SQL: titles and messages of live conversations, newest first or by relevance."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final, Literal

from llamadesk.core.history.matching import Term, fts_expression, make_snippet, mark, match_spans, parse_query
from llamadesk.core.history.models import SearchHit

Order = Literal["recent", "relevance"]
ORDERS: Final = ("recent", "relevance")

# -- queries on a connection -----------------------------------------------------------------------------------

#: "relevance" ranks the newest this many matches of the query. Ranking every match of a common word (BM25 over
#: 900,000 messages) takes seconds; any query specific enough to be worth ranking has fewer matches than this.
RELEVANCE_CANDIDATES: Final = 1000

# CROSS JOIN keeps the FTS5 index walk outermost whatever the planner guesses: it is what yields rows in order.
_LIVE_MATCHES = (
    " FROM messages_fts"
    " CROSS JOIN messages AS m ON m.id = messages_fts.rowid"
    " CROSS JOIN conversations AS c ON c.id = m.conversation_id"
    " WHERE messages_fts MATCH ? AND c.deleted_at IS NULL"
)
# "recent": FTS5 serves ORDER BY rowid DESC from the index itself and stops at LIMIT, so a word found in half the
# history costs no more than a rare one. Snippets are made in Python for the page only (`make_snippet`).
_RECENT_SQL = (
    "SELECT m.conversation_id, m.id, c.title, m.content, m.created_at, m.role"
    + _LIVE_MATCHES
    + " ORDER BY messages_fts.rowid DESC LIMIT ? OFFSET ?"
)
# "relevance": BM25 (lower is better) of the newest RELEVANCE_CANDIDATES matches, then only the page is read.
_RELEVANCE_SQL = (
    "SELECT m.conversation_id, m.id, c.title, m.content, m.created_at, m.role FROM ("
    "  SELECT id, score FROM ("
    "    SELECT messages_fts.rowid AS id, bm25(messages_fts) AS score"
    + _LIVE_MATCHES
    + "    ORDER BY messages_fts.rowid DESC LIMIT ?"
    "  ) ORDER BY score, id DESC LIMIT ? OFFSET ?"
    ") AS page"
    " CROSS JOIN messages AS m ON m.id = page.id CROSS JOIN conversations AS c ON c.id = m.conversation_id"
    " ORDER BY page.score, page.id DESC"
)
_TITLE_ORDER = {"recent": "c.updated_at DESC, c.id DESC", "relevance": "conversations_fts.rank"}


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")


def search_titles(db: sqlite3.Connection, terms: Sequence[Term], *, limit: int, order: str) -> list[SearchHit]:
    """Live conversations whose title matches, the whole title as the snippet."""
    _check_order(order)
    rows = db.execute(
        "SELECT c.id, c.title, c.updated_at"
        " FROM conversations_fts CROSS JOIN conversations AS c ON c.id = conversations_fts.rowid"
        " WHERE conversations_fts MATCH ? AND c.deleted_at IS NULL"
        f" ORDER BY {_TITLE_ORDER[order]} LIMIT ?",
        (fts_expression(terms), limit),
    ).fetchall()
    return [
        SearchHit(cid, None, title, mark(title, match_spans(title, terms)), when, None) for cid, title, when in rows
    ]


def search_messages(
    db: sqlite3.Connection, terms: Sequence[Term], *, limit: int, offset: int, order: str
) -> list[SearchHit]:
    """Messages of live conversations that match, with a snippet of about SNIPPET_TOKENS words around the match."""
    _check_order(order)
    expression = fts_expression(terms)
    if order == "recent":
        rows = db.execute(_RECENT_SQL, (expression, limit, offset)).fetchall()
    else:
        rows = db.execute(_RELEVANCE_SQL, (expression, RELEVANCE_CANDIDATES, limit, offset)).fetchall()
    return [
        SearchHit(cid, mid, title, make_snippet(text, terms), when, role) for cid, mid, title, text, when, role in rows
    ]


def search(
    db: sqlite3.Connection, query: str, *, limit: int, offset: int, order: str, titles: bool, prefix: bool
) -> list[SearchHit]:
    """Title hits first (when `titles`), then message hits; `offset`/`limit` page through both as one list."""
    _check_order(order)
    if limit <= 0:
        return []
    terms = parse_query(query, prefix=prefix)
    if not terms:
        return []
    page: list[SearchHit] = []
    title_count = 0
    if titles:
        # Titles are few (one per conversation): fetch enough to cover this page, and learn how many there are
        # when they end before it does, which is where the message hits continue.
        title_hits = search_titles(db, terms, limit=offset + limit, order=order)
        if len(title_hits) == offset + limit:
            return title_hits[offset:]
        title_count = len(title_hits)
        page = title_hits[offset:]
    message_offset = max(0, offset - title_count)
    page += search_messages(db, terms, limit=limit - len(page), offset=message_offset, order=order)
    return page


def search_in_conversation(db: sqlite3.Connection, cid: int, query: str, *, prefix: bool) -> list[int]:
    """Ids of the conversation's messages (every branch) that match, oldest first."""
    terms = parse_query(query, prefix=prefix)
    if not terms:
        return []
    lo, hi = db.execute("SELECT min(id), max(id) FROM messages WHERE conversation_id = ?", (cid,)).fetchone()
    if lo is None:
        return []
    # The rowid range lets FTS5 skip the index entries of every other conversation's messages.
    rows = db.execute(
        "SELECT m.id FROM messages_fts CROSS JOIN messages AS m ON m.id = messages_fts.rowid"
        " WHERE messages_fts MATCH ? AND messages_fts.rowid BETWEEN ? AND ? AND m.conversation_id = ?"
        " ORDER BY m.id",
        (fts_expression(terms), lo, hi, cid),
    ).fetchall()
    return [int(r[0]) for r in rows]

"""Full-text search: safe queries from any text, hits with marked snippets, paging, order, index kept in sync."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamadesk.core.errors import HistoryError
from llamadesk.core.history import MARK_END, MARK_START, History, match_spans, split_marked
from llamadesk.core.history.matching import Term, fts_expression, make_snippet, parse_query
from llamadesk.core.history.migrations import backup_path

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    with History(tmp_path / "history.sqlite3") as h:
        yield h


def marked(word: str) -> str:
    return f"{MARK_START}{word}{MARK_END}"


# -- queries ---------------------------------------------------------------------------------------------------


def test_parse_query_words_phrases_and_prefix() -> None:
    assert parse_query("ginger cake") == [Term("ginger"), Term("cake")]
    assert parse_query('"ginger cake" icing') == [Term("ginger cake"), Term("icing")]
    assert parse_query("gin* cake") == [Term("gin", prefix=True), Term("cake")]  # an explicit prefix
    assert parse_query('"ginger ca"*') == [Term("ginger ca")]  # "ca": too short to be a prefix
    assert parse_query('"ginger cak"*') == [Term("ginger cak", prefix=True)]
    assert parse_query("to*") == [Term("to")]  # short prefixes match whole words only
    # Search as you type: the last word, while no space follows it, is a prefix.
    assert parse_query("ginger cak", prefix=True) == [Term("ginger"), Term("cak", prefix=True)]
    assert parse_query("ginger cake ", prefix=True) == [Term("ginger"), Term("cake")]
    assert parse_query('"ginger cak', prefix=True) == [Term("ginger cak", prefix=True)]
    assert parse_query('"ginger cake"', prefix=True) == [Term("ginger cake")]  # a closed phrase is complete
    assert parse_query("!!! ... ---") == []
    assert parse_query("") == [] and parse_query("   ") == [] and parse_query('""') == []


@pytest.mark.parametrize(
    "query",
    ['"', '""', "'", "*", "a*", "NEAR(", "NEAR(a b)", "x AND", "OR OR", "NOT", "^start", "col:word", "(", ")", "+",
     "-", '"unclosed', 'a"b', "\\", "\x00", "%", "_", ":", "{a b}", "🍋", "a\nb", "AND OR NOT"],
)  # fmt: skip
def test_fts_syntax_in_user_text_is_never_an_error(history: History, query: str) -> None:
    c = history.create_conversation("NEAR and OR notes")
    history.add_message(c.id, "user", "NOT a problem AND col: word (a b) near start x")
    for prefix in (False, True):
        history.search(query, prefix=prefix)  # must not raise
        history.search(query, order="relevance", prefix=prefix)
        history.search_in_conversation(c.id, query, prefix=prefix)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=40), prefix=st.booleans())
def test_any_text_is_a_valid_query(history: History, query: str, prefix: bool) -> None:
    hits = history.search(query, prefix=prefix)
    assert isinstance(hits, list)
    if not any(ch.isalnum() for ch in query):
        assert hits == []


def test_expression_quotes_every_term() -> None:
    assert fts_expression([Term('say "hi"'), Term("end", prefix=True)]) == '"say ""hi""" "end" *'


def test_punctuation_only_query_is_empty_not_error(history: History) -> None:
    c = history.create_conversation("Punctuation")
    history.add_message(c.id, "user", "!!! ??? ...")
    assert history.search("!!!") == []
    assert history.search("?") == []
    assert history.search_in_conversation(c.id, "...") == []


def test_too_many_terms_are_cut(history: History) -> None:
    assert len(parse_query(" ".join(f"w{i}" for i in range(100)))) == 16


# -- results ---------------------------------------------------------------------------------------------------


def test_hits_have_snippets_ids_and_titles(history: History) -> None:
    cake = history.create_conversation("Ginger cake")
    u = history.add_message(cake.id, "user", "How long do I bake a ginger cake?")
    a = history.add_message(cake.id, "assistant", "About 45 minutes at 170 °C, until golden.")
    other = history.create_conversation("Bread")
    history.add_message(other.id, "user", "Sourdough starter, please.")

    hits = history.search("bake")
    assert [(h.conversation_id, h.message_id, h.role) for h in hits] == [(cake.id, u.id, "user")]
    assert hits[0].title == "Ginger cake"
    assert hits[0].snippet == f"How long do I {marked('bake')} a ginger cake?"
    assert hits[0].created_at == u.created_at

    hits = history.search("ginger")  # a title hit first (no message id), then the message
    assert [(h.conversation_id, h.message_id) for h in hits] == [(cake.id, None), (cake.id, u.id)]
    assert hits[0].snippet == f"{marked('Ginger')} cake"
    assert history.search("ginger", titles=False)[0].message_id == u.id

    assert [h.message_id for h in history.search("golden minutes")] == [a.id]  # every word must match
    assert history.search("golden sourdough") == []
    assert [h.message_id for h in history.search('"45 minutes"')] == [a.id]
    assert history.search('"minutes 45"') == []  # a phrase keeps its order


def test_case_accents_and_prefix_while_typing(history: History) -> None:
    c = history.create_conversation("Desserts")
    m = history.add_message(c.id, "user", "Crème brûlée for DINNER")
    assert [h.message_id for h in history.search("creme brulee")] == [m.id]
    assert [h.message_id for h in history.search("dinner")] == [m.id]
    assert history.search("brul") == []  # whole words only
    assert [h.message_id for h in history.search("brul*")] == [m.id]
    assert [h.message_id for h in history.search("brul", prefix=True)] == [m.id]  # still typing
    assert history.search("brul ", prefix=True) == []  # a space ends the word
    assert history.search("br", prefix=True) == []  # too short to search as a prefix


def test_snippet_is_short_for_long_messages(history: History) -> None:
    c = history.create_conversation()
    words = [f"w{i}" for i in range(500)]
    words[250] = "needle"
    history.add_message(c.id, "assistant", " ".join(words))
    (hit,) = history.search("needle")
    assert marked("needle") in hit.snippet and hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert len(hit.snippet.split()) <= 16


def test_order_recent_and_relevance(history: History) -> None:
    c = history.create_conversation("Zoo")
    once = history.add_message(c.id, "user", "a tiger " + "and other animals " * 20)
    many = history.add_message(c.id, "user", "tiger tiger tiger")
    newest = history.add_message(c.id, "user", "the tiger " + "sleeps all day long " * 20)
    assert [h.message_id for h in history.search("tiger", titles=False)] == [newest.id, many.id, once.id]
    assert history.search("tiger", order="relevance", titles=False)[0].message_id == many.id
    with pytest.raises(HistoryError, match="order"):
        history.search("tiger", order="alphabetical")


def test_paging_continues_from_titles_into_messages(history: History) -> None:
    convs = [history.create_conversation(f"apple notes {i}") for i in range(3)]
    msgs = [history.add_message(convs[i % 3].id, "user", f"apple pie number {i}") for i in range(7)]
    everything = history.search("apple", limit=100)
    assert [h.message_id for h in everything[:3]] == [None, None, None]
    assert [h.message_id for h in everything[3:]] == [m.id for m in reversed(msgs)]
    pages = [history.search("apple", limit=4, offset=o) for o in range(0, 12, 4)]
    assert [h for page in pages for h in page] == everything
    assert history.search("apple", limit=0) == []
    assert history.search("apple", limit=2, offset=100) == []
    with pytest.raises(HistoryError, match="offset"):
        history.search("apple", offset=-1)


# -- the index stays in step with the data -----------------------------------------------------------------------


def test_index_follows_edits_streaming_renames_and_deletes(history: History) -> None:
    c = history.create_conversation("Original title")
    u = history.add_message(c.id, "user", "question about walruses")
    reply = history.begin_reply(c.id, flush_interval=0)
    reply.append("Walruses ")
    assert {h.message_id for h in history.search("walruses", titles=False)} == {u.id, reply.message_id}
    reply.append("eat clams.")
    assert [h.message_id for h in history.search("clams")] == [reply.message_id]
    reply.finish(content="They eat molluscs.")
    assert history.search("clams") == []
    assert [h.message_id for h in history.search("molluscs")] == [reply.message_id]

    history.rename_conversation(c.id, "Arctic mammals")
    assert history.search("original") == []
    assert [h.conversation_id for h in history.search("arctic")] == [c.id]

    history.add_message(c.id, "assistant", "Another walrus fact", parent_id=u.id)
    history.delete_conversation(c.id)  # messages go by cascade: their index entries too
    assert history.search("walruses") == [] and history.search("arctic") == []
    assert history.check_integrity() == []


def test_trashed_conversations_are_not_found_until_restored(history: History) -> None:
    c = history.create_conversation("Holiday plans")
    m = history.add_message(c.id, "user", "Lisbon in May")
    history.trash_conversation(c.id)
    assert history.search("lisbon") == [] and history.search("holiday") == []
    history.restore_conversation(c.id)
    assert [h.message_id for h in history.search("lisbon")] == [m.id]


def test_damaged_index_is_reported_and_rebuilt(history: History, tmp_path: Path) -> None:
    c = history.create_conversation()
    history.add_message(c.id, "user", "indexed words")
    conn = sqlite3.connect(tmp_path / "history.sqlite3")
    conn.execute("DROP TRIGGER messages_fts_insert")  # writes behind the index's back
    conn.execute(
        "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?, 'user', 'hidden', 0)", (c.id,)
    )
    conn.commit()
    conn.close()
    assert any("search index" in p for p in history.check_integrity())
    history.rebuild_search_index()
    assert [h.snippet for h in history.search("hidden")] == [marked("hidden")]
    assert not any("search index" in p for p in history.check_integrity())


# -- within one conversation (Ctrl+F) -----------------------------------------------------------------------------


def test_search_in_conversation_branch_and_all(history: History) -> None:
    c = history.create_conversation()
    u = history.add_message(c.id, "user", "Name a red fruit")
    a1 = history.add_message(c.id, "assistant", "A red apple")
    a2 = history.add_message(c.id, "assistant", "A red cherry", parent_id=u.id)  # the branch shown
    other = history.create_conversation()
    history.add_message(other.id, "user", "red herring")
    assert history.search_in_conversation(c.id, "red") == [u.id, a2.id]
    assert history.search_in_conversation(c.id, "red", branch_only=False) == [u.id, a1.id, a2.id]
    assert history.search_in_conversation(c.id, "apple") == []
    assert history.search_in_conversation(c.id, "") == []
    assert history.search_in_conversation(c.id, "cher", prefix=True) == [a2.id]
    with pytest.raises(HistoryError, match="does not exist"):
        history.search_in_conversation(999, "red")


def test_leaf_for_opens_the_branch_holding_a_hit(history: History) -> None:
    c = history.create_conversation()
    u = history.add_message(c.id, "user", "q")
    a1 = history.add_message(c.id, "assistant", "first answer")
    follow = history.add_message(c.id, "user", "follow-up on the first")
    a2 = history.add_message(c.id, "assistant", "second answer", parent_id=u.id)
    assert history.leaf_for(u.id) == a2.id  # on the branch shown: keep it
    assert history.leaf_for(a1.id) == follow.id  # elsewhere: the newest leaf below the hit
    history.set_leaf(c.id, history.leaf_for(a1.id))
    assert a1.id in [m.id for m in history.messages(c.id)]


# -- helpers for the UI ------------------------------------------------------------------------------------------


def test_split_marked() -> None:
    assert split_marked(f"How long to {marked('bake')} a {marked('cake')}?") == [
        ("How long to ", False),
        ("bake", True),
        (" a ", False),
        ("cake", True),
        ("?", False),
    ]
    assert split_marked("") == []


def test_match_spans_follow_the_search_rules() -> None:
    text = "Crème brûlée, then more crème; creamy!"
    assert match_spans(text, "creme") == [(0, 5), (24, 29)]
    assert [text[a:b] for a, b in match_spans(text, "cream", prefix=True)] == ["creamy"]
    assert match_spans(text, "cream") == [] and match_spans(text, "cream ", prefix=True) == []
    assert [text[a:b] for a, b in match_spans(text, '"brulee then"')] == ["brûlée, then"]
    assert match_spans(text, "!!!") == []


@pytest.mark.parametrize(
    ("text", "query", "snippet"),
    [
        ("short text here", "text", f"short {MARK_START}text{MARK_END} here"),
        ("  Leading spaces, a Match.  ", "match", f"Leading spaces, a {MARK_START}Match{MARK_END}."),
        (
            " ".join(f"w{i}" for i in range(40)),
            "w30",
            "…w24 w25 w26 w27 w28 w29 \x02w30\x03 w31 w32 w33 w34 w35 w36 w37 w38 w39",
        ),
        (" ".join(f"w{i}" for i in range(40)), "w2", "w0 w1 \x02w2\x03 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15…"),
        ("one two three four", '"two three"', f"one {MARK_START}two three{MARK_END} four"),
        ("Crème brûlée", "creme", f"{MARK_START}Crème{MARK_END} brûlée"),
        ("no match at all", "absent", "no match at all"),
        ("?!", "x", "?!"),
    ],
)
def test_make_snippet(text: str, query: str, snippet: str) -> None:
    assert make_snippet(text, query) == snippet


def test_v1_history_is_searchable_after_migration(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript((DATA / "history_v1.sql").read_text(encoding="utf-8"))
    conn.close()
    with History(db) as h:
        assert h.backup_path == backup_path(db, 1) and backup_path(db, 1).exists()
        assert [(x.conversation_id, x.message_id) for x in h.search("ginger")] == [(1, None), (1, 1)]
        assert [x.message_id for x in h.search("skewer")] == [3]  # on a side branch: found all the same
        assert [x.message_id for x in h.search("icing")] == [4]
        assert [x.message_id for x in h.search("bonjour")] == [7, 6]
        assert [x.conversation_id for x in h.search("pinned")] == [2]
        assert h.search_in_conversation(1, "min", branch_only=False) == [3]
        assert h.search_in_conversation(1, "min", branch_only=False, prefix=True) == [2, 3]
        assert h.check_integrity() == []

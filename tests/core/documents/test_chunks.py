"""Passages: about 1,000 characters, cut on paragraph, then line, then sentence boundaries, never inside a word
unless the word alone is too long; each keeps its page and its first line."""

from __future__ import annotations

import re

import pytest

from llamadesk.core.documents.chunks import chunk_sections, chunk_text
from llamadesk.core.documents.extract import Section

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]


def paragraph(n_words: int, seed: int) -> str:
    words = [WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(n_words)]
    return " ".join(words).capitalize() + "."


def words_of(text: str) -> list[str]:
    return text.split()


def test_short_paragraphs_are_joined_and_nothing_is_lost() -> None:
    text = "\n\n".join(paragraph(20, i) for i in range(60))
    chunks = list(chunk_text(text))
    assert 1 < len(chunks) < 15
    assert all(len(c.text) <= 1000 for c in chunks)
    assert all(len(c.text) > 500 for c in chunks[:-1])  # roughly 1,000: whole paragraphs packed
    assert [w for c in chunks for w in words_of(c.text)] == words_of(text)
    for c in chunks:  # cut between paragraphs only
        assert not c.text.startswith(" ") and c.text.endswith(".")


def test_each_passage_keeps_its_first_line() -> None:
    lines = []
    for i in range(200):
        lines.append(f"line {i + 1} " + paragraph(8, i))
        if i % 5 == 4:
            lines.append("")
    text = "\n".join(lines)
    numbered = text.split("\n")
    for c in chunk_text(text, first_line=1):
        assert numbered[c.line - 1] == c.text.split("\n")[0]  # the passage starts with the line it names


def test_first_line_offsets_and_leading_blank_lines() -> None:
    chunks = list(chunk_text("\n\n\n  first\nsecond\n\n\nthird", size=10, first_line=40))
    assert [(c.text, c.line) for c in chunks] == [("  first", 43), ("second", 44), ("third", 47)]


def test_a_long_line_is_cut_between_sentences_then_words() -> None:
    sentence = "This sentence has exactly some words in it and ends here. "
    text = sentence * 60  # one line of ~3,500 characters
    chunks = list(chunk_text(text))
    assert len(chunks) >= 4 and all(len(c.text) <= 1000 for c in chunks)
    assert all(c.line == 1 for c in chunks)
    assert all(c.text.endswith("ends here.") for c in chunks)  # cut at sentence ends
    no_stops = " ".join(["word"] * 600)
    cut = list(chunk_text(no_stops))
    assert all(set(c.text.split()) == {"word"} for c in cut)  # never inside a word
    assert [w for c in cut for w in c.text.split()] == no_stops.split()


def test_a_word_longer_than_a_passage_is_cut() -> None:
    blob = "x" * 2500
    chunks = list(chunk_text(f"before\n{blob}\nafter"))
    assert "".join(c.text for c in chunks).replace("\n", "").replace(" ", "") == "before" + blob + "after"
    assert all(len(c.text) <= 1000 for c in chunks)
    assert [c.line for c in chunks if "x" in c.text] == [2, 2, 2]


def test_pages_are_kept_and_never_mixed() -> None:
    sections = [Section(paragraph(100, p), page=p) for p in range(1, 4)] + [Section("tail text", line=7)]
    chunks = list(chunk_sections(sections))
    assert [c.page for c in chunks] == [1, 2, 3, None]
    assert chunks[-1].line == 7
    assert chunks[0].text == sections[0].text


def test_crlf_and_empty_text() -> None:
    assert list(chunk_text("")) == [] and list(chunk_text(" \n\n \n")) == []
    chunks = list(chunk_text("a\r\nb\r\n\r\nc", size=3))
    assert [(c.text, c.line) for c in chunks] == [("a\nb", 1), ("c", 4)]


@pytest.mark.parametrize("size", [50, 300, 1000])
def test_every_word_survives_any_size(size: int) -> None:
    text = "\n".join(paragraph(i % 40 + 1, i) + ("\n" if i % 3 == 0 else "") for i in range(300))
    chunks = list(chunk_text(text, size=size))
    assert all(len(c.text) <= size for c in chunks)
    assert [w for c in chunks for w in re.findall(r"\w+", c.text)] == re.findall(r"\w+", text)

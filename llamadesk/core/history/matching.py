"""Query terms and where they match in text: user text to a safe FTS5 query, match spans, marked snippets."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

#: Marks around each matched word in `SearchHit.snippet`: STX/ETX, control characters that chat text does not
#: contain, so a snippet stays plain text and the UI decides how a match looks (`split_marked`).
MARK_START: Final = "\x02"
MARK_END: Final = "\x03"
SNIPPET_TOKENS: Final = 16
#: A word matches as a prefix ("gin*" finds "ginger") only with at least this many characters: each prefix query
#: makes FTS5 merge the index entries of every word that starts with it, which for short prefixes is most words.
PREFIX_MIN_CHARS: Final = 3
#: Words beyond this are ignored: a pasted page must not become a query that takes seconds.
MAX_TERMS: Final = 16

# A quoted phrase (closed or still open at the end, maybe with a * after it), or a run of anything but spaces and
# quotes.
_QUERY_PART = re.compile(r'"([^"]*)("?)(\*?)|([^\s"]+)')
# Runs of letters and digits: FTS5's unicode61 tokenizer splits text the same way (underscore is a separator).
_TOKEN = re.compile(r"[^\W_]+")
# Scripts whose accented letters fold to a base letter (unicode61 remove_diacritics 2): Latin, Greek, Cyrillic.
_ACCENTED_RANGES = ((0x00C0, 0x0250), (0x0370, 0x0530), (0x1E00, 0x2000))


@dataclass(frozen=True)
class Term:
    """One part of a query: a word or a phrase (its words must follow each other), maybe matched as a prefix."""

    text: str
    prefix: bool = False


def parse_query(query: str, *, prefix: bool = False) -> list[Term]:
    """The terms of a user's query: words, and phrases in double quotes, all to be found; everything else is
    literal text, never syntax.

    A word or phrase with no letter or digit is dropped (FTS5 would see an empty phrase and match nothing).
    A term followed by `*` matches as a prefix. With `prefix` (search as you type), so does the last term when the
    query does not end with a space or a closing quote. Prefixes shorter than PREFIX_MIN_CHARS match whole words.
    """
    # FTS5 reads its query as a C string: a NUL would end it inside a quoted term. It separates words instead.
    query = query.replace("\x00", " ")
    terms: list[Term] = []
    last_open = False
    for match in _QUERY_PART.finditer(query):
        quoted, closing, star, bare = match.groups()
        text = bare if bare is not None else quoted
        if not any(ch.isalnum() for ch in text):
            last_open = False
            continue
        starred = bool(star) or (bare is not None and bare.endswith("*"))
        long_enough = len(_TOKEN.findall(text)[-1]) >= PREFIX_MIN_CHARS
        last_open = match.end() == len(query) and (bare is not None or not closing)
        terms.append(Term(" ".join(text.rstrip("*").split()), prefix=starred and long_enough))
    terms = terms[:MAX_TERMS]
    if prefix and terms and last_open and len(_TOKEN.findall(terms[-1].text)[-1]) >= PREFIX_MIN_CHARS:
        terms[-1] = Term(terms[-1].text, prefix=True)
    return terms


def fts_expression(terms: Sequence[Term]) -> str:
    """An FTS5 MATCH expression that ANDs the terms, each one a quoted string, so no user text is ever syntax."""
    parts = []
    for term in terms:
        quoted = '"' + term.text.replace('"', '""') + '"'
        parts.append(quoted + " *" if term.prefix else quoted)
    return " ".join(parts)


def split_marked(snippet: str) -> list[tuple[str, bool]]:
    """A marked snippet as (text, matched) pieces in order, for the UI to draw matches its own way."""
    pieces: list[tuple[str, bool]] = []
    matched = False
    for part in re.split(f"({MARK_START}|{MARK_END})", snippet):
        if part == MARK_START:
            matched = True
        elif part == MARK_END:
            matched = False
        elif part:
            pieces.append((part, matched))
    return pieces


def mark(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """`text` with MARK_START/MARK_END around each (start, end) span (sorted, not overlapping)."""
    parts, at = [], 0
    for start, end in spans:
        parts += [text[at:start], MARK_START, text[start:end], MARK_END]
        at = end
    parts.append(text[at:])
    return "".join(parts)


# -- matching like FTS5 does, at C speed -------------------------------------------------------------------------
# Text is lower-cased (str.lower, which keeps offsets for all but a handful of characters) and each query letter
# becomes a class of the letters that fold to it ("e" → [eéèê…]), so the regex engine finds matches without a
# Python loop over every word: a snippet of a hit deep in a long reply costs microseconds.


def _fold_char(ch: str) -> str:
    """One character lower-cased without its accents, or itself lower-cased when that is not one character."""
    low = ch.lower()
    if len(low) != 1:
        low = ch
    base = "".join(c for c in unicodedata.normalize("NFKD", low) if not unicodedata.combining(c))
    return base if len(base) == 1 else low


@functools.cache
def _variants() -> dict[str, str]:
    """For each folded letter, the lower-case letters of _ACCENTED_RANGES that fold to it."""
    table: dict[str, set[str]] = {}
    for lo, hi in _ACCENTED_RANGES:
        for code in range(lo, hi):
            low = chr(code).lower()
            if len(low) == 1 and (base := _fold_char(low)) != low:
                table.setdefault(base, set()).add(low)
    return {base: "".join(sorted(chars)) for base, chars in table.items()}


def _fold(word: str) -> str:
    return "".join(_fold_char(ch) for ch in word)


def _letter(ch: str) -> str:
    variants = _variants().get(ch)
    return re.escape(ch) if variants is None else f"[{re.escape(ch + variants)}]"


@functools.lru_cache(maxsize=256)
def _term_regex(words: tuple[str, ...], prefix: bool) -> re.Pattern[str]:
    # Words of a phrase are separated by anything that is not part of a word; a prefix runs to the word's end.
    body = r"[\W_]+".join("".join(_letter(ch) for ch in word) for word in words)
    return re.compile(body + (r"[^\W_]*" if prefix else ""))


def _lowered(text: str) -> str:
    low = text.lower()
    # "İ" lower-cases to two characters: only then pay for folding one character at a time to keep the offsets.
    return low if len(low) == len(text) else "".join(_fold_char(ch) for ch in text)


def _term_matches(low: str, term: Term, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, int]]:
    words = tuple(_fold(w) for w in _TOKEN.findall(term.text))
    if not words:
        return
    regex = _term_regex(words, term.prefix)
    stop = len(low) if stop is None else stop
    pos = start
    while (found := regex.search(low, pos, stop)) is not None:
        a, b = found.span()
        # Whole words only: the regex may have found "the" inside "other".
        if (a == 0 or not low[a - 1].isalnum()) and (b == len(low) or not low[b].isalnum()):
            yield a, b
            pos = b
        else:
            pos = a + 1


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _terms(query: str | Sequence[Term], prefix: bool) -> list[Term]:
    return parse_query(query, prefix=prefix) if isinstance(query, str) else list(query)


def match_spans(text: str, query: str | Sequence[Term], *, prefix: bool = False) -> list[tuple[int, int]]:
    """(start, end) character offsets in `text` of every word the query matches, sorted, overlaps merged.

    The same word rules as the search itself (pass the same `prefix`), so a hit opened in the chat view can
    highlight exactly its matches.
    """
    low = _lowered(text)
    return _merged([span for term in _terms(query, prefix) for span in _term_matches(low, term)])


def _start_of_last_words(text: str, end: int, count: int) -> int:
    """Where the last `count` words before offset `end` begin (looking back at most 400 characters)."""
    if count <= 0:
        return end
    starts = [m.start() for m in _TOKEN.finditer(text, max(0, end - 400), end)][-count:]
    return starts[0] if starts else end


def make_snippet(text: str, query: str | Sequence[Term], *, size: int = SNIPPET_TOKENS, prefix: bool = False) -> str:
    """About `size` words of `text` around its first match, matches marked, "…" where text was left out."""
    terms = _terms(query, prefix)
    low = _lowered(text)
    firsts = [next(_term_matches(low, term), None) for term in terms]
    first = min((span[0] for span in firsts if span is not None), default=0)
    begin = _start_of_last_words(text, first, size // 4)  # a little context before the match
    tokens = _TOKEN.finditer(text, begin)
    finish, count = begin, 0
    for token in tokens:
        finish, count = token.end(), count + 1
        if count == size:
            break
    more_after = next(tokens, None) is not None
    if not more_after:
        finish = len(text)
        # The window reached the end with words to spare: spend them on text before the match instead.
        begin = _start_of_last_words(text, begin, size - count)
    if _TOKEN.search(text, 0, begin) is None:
        begin = 0  # nothing left out before: start at the very beginning
    spans = [(a - begin, b - begin) for term in terms for a, b in _term_matches(low, term, begin, finish)]
    body = mark(text[begin:finish], _merged(spans)).strip()
    return ("…" if begin > 0 else "") + body + ("…" if more_after else "")

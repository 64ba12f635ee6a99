"""Which recorded token sits under the mouse in a rendered reply, and the tooltip that tells its probability.

Token records carry offsets in the reply's source text (markdown); the bubble shows the rendered document, whose
text lacks the markdown syntax. `align` maps each rendered character back to the source by walking both texts in
order, skipping source characters the renderer dropped (`**`, `#`, backticks) and rendered ones it added (bullets).
Before the markdown, the renderer makes the model's text inert (markdown.inert_text: escape sequences dropped,
control characters shown as stand-ins such as "[RLO]") and breaks long runs with zero-width spaces; `inert_offsets`
replays that with each character's source index, so the walk compares like with like.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from llamadesk.core.markdown import ANSI_ESCAPE, CONTROL_CHAR, inert_text
from llamadesk.core.token_probs import TokenProb

LOOKAHEAD = 24  # source characters searched for the next rendered one (markdown syntax is short)
SHOWN_ALTERNATIVES = 5


def inert_offsets(source: str) -> tuple[str, list[int]]:
    """`inert_text(source)`, and for each of its characters the index in `source` of the character it shows
    (every character of a stand-in such as "[RLO]" points at the one it replaces)."""
    inert = inert_text(source)
    if inert == source:
        return source, list(range(len(source)))
    text: list[str] = []
    offsets: list[int] = []
    i = 0
    while (found := CONTROL_CHAR.search(source, i)) is not None:  # ESC is one of them
        j = found.start()
        text.append(source[i:j])
        offsets.extend(range(i, j))
        escape = ANSI_ESCAPE.match(source, j) if source[j] == "\x1b" else None
        if escape is not None:  # dropped
            i = escape.end()
            continue
        shown = inert_text(source[j])
        text.append(shown)
        offsets.extend([j] * len(shown))
        i = j + 1
    text.append(source[i:])
    offsets.extend(range(i, len(source)))
    if "".join(text) != inert:  # the renderer's rules changed: fall back to the walk alone
        return source, list(range(len(source)))
    return inert, offsets


def align(source: str, rendered: str) -> list[int]:
    """For each character of `rendered`, its index in `source` (-1 where the renderer added it)."""
    shown, offsets = inert_offsets(source)
    return [offsets[j] if j >= 0 else -1 for j in _align(shown, rendered)]


def _align(source: str, rendered: str) -> list[int]:
    out: list[int] = []
    i = 0
    for ch in rendered:
        found = source.find(ch, i, i + LOOKAHEAD)
        if found < 0 and ch in "\u2029\u2028\n":  # paragraph breaks: any run of source whitespace
            found = next((j for j in range(i, min(len(source), i + LOOKAHEAD)) if source[j].isspace()), -1)
        if found < 0:
            out.append(-1)
            continue
        out.append(found)
        i = found + 1
    return out


def record_at(records: Sequence[TokenProb], offset: int) -> TokenProb | None:
    """The token whose text covers source offset `offset` (records sorted by offset)."""
    if offset < 0 or not records:
        return None
    starts = [r.offset for r in records]
    i = bisect.bisect_right(starts, offset) - 1
    while i >= 0:
        record = records[i]
        if record.offset <= offset < record.offset + max(len(record.text), 1):
            return record
        if record.text:  # an earlier token with text ends before `offset`: nothing covers it
            return None
        i -= 1
    return None


def _quoted(text: str) -> str:
    """A token as the tooltip shows it: inert like the reply (an override cannot reorder the tooltip), with an
    escape sequence shown rather than dropped, and line breaks and tabs written out."""
    shown = inert_text(text.replace("\x1b", "\u241b"))
    return "'" + shown.replace("\n", "\\n").replace("\t", "\\t") + "'"


def tooltip_text(record: TokenProb) -> str:
    """token 'foo' 62.1% · alternatives: 'bar' 20.3%, 'baz' 4.0%"""
    head = f"token {_quoted(record.text)} {record.p * 100:.1f}%"
    alternatives = ", ".join(f"{_quoted(t)} {p * 100:.1f}%" for t, p in record.alternatives[:SHOWN_ALTERNATIVES])
    return f"{head} · alternatives: {alternatives}" if alternatives else head


class TokenLookup:
    """Caches the alignment of one reply's rendered text (re-done when its source or rendering changes)."""

    def __init__(self) -> None:
        self._key: tuple[int, str, str] | None = None
        self._map: list[int] = []

    def source_offset(self, message_id: int, source: str, rendered: str, position: int) -> int:
        key = (message_id, source, rendered)
        if key != self._key:
            self._key, self._map = key, align(source, rendered)
        return self._map[position] if 0 <= position < len(self._map) else -1

    def tooltip(
        self, message_id: int, source: str, rendered: str, position: int, records: Sequence[TokenProb]
    ) -> str | None:
        record = record_at(records, self.source_offset(message_id, source, rendered, position))
        return tooltip_text(record) if record is not None else None

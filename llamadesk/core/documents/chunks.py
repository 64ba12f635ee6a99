"""A document's sections cut into passages of about 1,000 characters, on paragraph, then line, then sentence
boundaries; each passage keeps its page (PDF) and the line it starts on (text).

A word is cut only when it alone is longer than a passage (a long hash, a base64 line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from llamadesk.core.documents.text import Section

PASSAGE_CHARS = 1000

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n(?:[ \t\f\v]*\n)*")
_BLANK_LINES = re.compile(r"(?:[ \t\f\v]*\n)+")
_SENTENCE_END = re.compile(r"(?<=[.!?;:。！？…])\s+")


@dataclass(frozen=True)
class Chunk:
    """One passage: its text, the page it is on (None for text) and the line it starts on."""

    text: str
    page: int | None
    line: int


def chunk_sections(sections: Iterable[Section], size: int = PASSAGE_CHARS) -> Iterator[Chunk]:
    """The passages of every section, in order; a passage never spans two sections (two pages)."""
    for section in sections:
        yield from chunk_text(section.text, size=size, page=section.page, first_line=section.line)


def chunk_text(text: str, size: int = PASSAGE_CHARS, page: int | None = None, first_line: int = 1) -> Iterator[Chunk]:
    """Passages of at most `size` characters: whole paragraphs joined while they fit, a longer paragraph cut
    between lines, a longer line between sentences, a longer sentence between words."""
    if size < 1:
        raise ValueError("size must be positive")
    parts: list[str] = []
    length = 0
    start = first_line
    for piece, line, sep in _pieces(text, size, first_line):
        if parts and length + len(sep) + len(piece) > size:
            yield Chunk("".join(parts), page, start)
            parts, length = [], 0
        if not parts:
            start, sep = line, ""
        parts.append(sep)
        parts.append(piece)
        length += len(sep) + len(piece)
    if parts:
        yield Chunk("".join(parts), page, start)


def _pieces(text: str, size: int, first_line: int) -> Iterator[tuple[str, int, str]]:
    """(text, line, separator before it) for every paragraph that fits, or for the pieces of one that does not."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    pos, line = 0, first_line  # `line` is the line text[pos] is on
    for brk in [*_PARAGRAPH_BREAK.finditer(text), None]:
        brk_start, brk_end = (len(text), len(text)) if brk is None else brk.span()
        block = text[pos:brk_start]
        lead = _BLANK_LINES.match(block)
        skipped = lead.end() if lead else 0
        para = block[skipped:].rstrip()
        if para.strip():
            para_line = line + block.count("\n", 0, skipped)
            if len(para) <= size:
                yield para, para_line, "\n\n"
            else:
                yield from _long_paragraph(para, size, para_line)
        line += text.count("\n", pos, brk_end)
        pos = brk_end


def _long_paragraph(para: str, size: int, line: int) -> Iterator[tuple[str, int, str]]:
    sep = "\n\n"
    for offset, text_line in enumerate(para.split("\n")):
        if not text_line.strip():
            continue
        if len(text_line) <= size:
            yield text_line.rstrip(), line + offset, sep
        else:
            first = True
            for piece in _long_line(text_line.strip(), size):
                yield piece, line + offset, sep if first else " "
                first = False
        sep = "\n"


def _long_line(text: str, size: int) -> Iterator[str]:
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > size:
            cut = sentence.rfind(" ", 0, size + 1)
            if cut <= 0:  # one word longer than a passage: cut it
                yield sentence[:size]
                sentence = sentence[size:]
            else:
                yield sentence[:cut].rstrip()
                sentence = sentence[cut:].lstrip()
        if sentence:
            yield sentence

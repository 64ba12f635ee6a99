"""What every document reader shares: a section of text and where it came from, the one-sentence error, reading a
file within a size limit, decoding bytes to text and the visible text of HTML (extract.py reads text files with
them, formats.py PDF, DOCX, ODT and EPUB)."""

from __future__ import annotations

import codecs
import html.parser
from dataclasses import dataclass
from pathlib import Path

from llamadesk.core.errors import LlamaDeskError

MAX_TEXT_BYTES = 64 * 1024 * 1024  # a text file larger than this is a log or a dump, not a document: listed, skipped
BINARY_PROBE_BYTES = 8192


class DocumentError(LlamaDeskError):
    """A file that cannot be read as a document; the text is the sentence to list beside it."""


@dataclass(frozen=True)
class Section:
    """Some of a document's text: a page of a PDF (`page`, from 1), or text starting at `line` (from 1)."""

    text: str
    page: int | None = None
    line: int = 1


def read_limited(path: Path, limit: int) -> bytes:
    """The file's bytes, or DocumentError when it is larger than `limit` (checked before and while reading: a file
    may grow under us)."""
    size = path.stat().st_size
    if size > limit:
        raise DocumentError(f"{path.name} is too big to index ({size_text(size)}; at most {size_text(limit)}).")
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise DocumentError(f"{path.name} is too big to index (more than {size_text(limit)}).")
    return data


def decode(path: Path, data: bytes) -> str:
    """Text from bytes: UTF-8 (or UTF-16 with its byte-order mark), else Windows-1252, which most non-UTF-8 documents
    on desktops are. Hand-written rather than a charset-detection library: those guess among dozens of encodings
    from statistics, and a wrong guess garbles silently; two explicit tries and a NUL check are predictable."""
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if b"\x00" in data[:BINARY_PROBE_BYTES]:
        raise DocumentError(f"{path.name} is a binary file, not text.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


class _TextOfHtml(html.parser.HTMLParser):
    """The visible text of a page: scripts, styles and templates left out, blocks on lines of their own. The
    standard library's parser is enough for that; it never fetches anything and never runs anything."""

    SKIP = frozenset({"script", "style", "template", "noscript", "head"})
    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote",
                        "section", "article", "header", "footer", "table", "ul", "ol", "dt", "dd"})  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_text(markup: str) -> str:
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text, blank = [], False
    for line in lines:
        if line or not blank:
            text.append(line)
        blank = not line
    return "\n".join(text).strip()


def size_text(n: int) -> str:
    """A file size as people read it: 2.0 GB, 300 MB, 12 KB."""
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    return f"{n / 1024**2:.0f} MB" if n >= 1024**2 else f"{n / 1024:.0f} KB"

"""A document file's text, in sections that keep where they came from (a PDF's page, a text file's first line).

Every failure is one DocumentError sentence naming the file: a collection lists it and goes on with the next file.
Formats: plain text and source code (any suffix in TEXT_SUFFIXES), HTML; PDF, DOCX, ODT and EPUB are added by their
own readers below (READERS maps a suffix to its reader).
"""

from __future__ import annotations

import codecs
import html.parser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llamadesk.core.errors import LlamaDeskError

MAX_TEXT_BYTES = 64 * 1024 * 1024  # a text file larger than this is a log or a dump, not a document: listed, skipped
BINARY_PROBE_BYTES = 8192

# fmt: off
TEXT_SUFFIXES = frozenset(f".{suffix}" for suffix in (  # noqa: SIM905 - ninety suffixes read better as words
    "txt text md markdown mdx rst adoc asciidoc org tex log csv tsv json jsonl yaml yml toml ini cfg conf xml srt vtt "
    "py pyi c h cc cpp cxx hpp hh cs java kt kts scala go rs swift m mm js jsx mjs cjs ts tsx vue svelte rb php pl pm "
    "lua r jl hs ml ex exs erl clj dart zig nim sh bash zsh fish ps1 bat cmd sql graphql proto css scss less cmake mk "
    "gradle dockerfile tf nix"
).split())
# fmt: on
TEXT_NAMES = frozenset({"readme", "license", "copying", "makefile", "dockerfile", "changelog", "authors", "notice"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})


class DocumentError(LlamaDeskError):
    """A file that cannot be read as a document; the text is the sentence to list beside it."""


@dataclass(frozen=True)
class Section:
    """Some of a document's text: a page of a PDF (`page`, from 1), or text starting at `line` (from 1)."""

    text: str
    page: int | None = None
    line: int = 1


Reader = Callable[[Path], list[Section]]
READERS: dict[str, Reader] = {}  # suffix → reader, for the formats that are not text


def is_document(path: Path) -> bool:
    """Whether a collection reads this file (by its name; what is inside is checked when it is read)."""
    suffix = path.suffix.lower()
    return (
        suffix in TEXT_SUFFIXES or suffix in HTML_SUFFIXES or suffix in READERS
        or (not suffix and path.name.lower() in TEXT_NAMES)
    )  # fmt: skip


def extract(path: Path) -> list[Section]:
    """The file's text as sections. Raises DocumentError with one sentence when it cannot be read."""
    suffix = path.suffix.lower()
    reader = READERS.get(suffix)
    try:
        if reader is not None:
            return reader(path)
        if suffix in HTML_SUFFIXES:
            return [Section(html_text(decode(path, read_limited(path, MAX_TEXT_BYTES))))]
        return [Section(decode(path, read_limited(path, MAX_TEXT_BYTES)))]
    except DocumentError:
        raise
    except OSError as exc:
        raise DocumentError(f"{path.name} could not be read: {exc.strerror or exc}.") from exc
    except Exception as exc:  # a parser's own error on a corrupt file: one sentence, the index goes on
        raise DocumentError(f"{path.name} could not be read: it looks damaged ({type(exc).__name__}).") from exc


def read_limited(path: Path, limit: int) -> bytes:
    """The file's bytes, or DocumentError when it is larger than `limit` (checked before and while reading: a file
    may grow under us)."""
    size = path.stat().st_size
    if size > limit:
        raise DocumentError(f"{path.name} is too big to index ({_size(size)}; at most {_size(limit)}).")
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise DocumentError(f"{path.name} is too big to index (more than {_size(limit)}).")
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


def _size(n: int) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    return f"{n / 1024**2:.0f} MB" if n >= 1024**2 else f"{n / 1024:.0f} KB"


# PDF, DOCX, ODT and EPUB: formats.py's readers, lent what they share with text files (formats.py cannot import this
# module: no import circles). Importing it is cheap; each reader loads its library when its first file is read.
from llamadesk.core.documents import formats  # noqa: E402

READERS.update(formats.readers(formats.Shared(Section, DocumentError, decode, html_text)))

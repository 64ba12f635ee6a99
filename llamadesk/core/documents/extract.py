"""A document file's text, in sections that keep where they came from (a PDF's page, a text file's first line).

Every failure is one DocumentError sentence naming the file: a collection lists it and goes on with the next file.
Formats: plain text and source code (any suffix in TEXT_SUFFIXES), HTML; PDF, DOCX, ODT and EPUB are added by their
own readers (formats.py; READERS maps a suffix to its reader).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llamadesk.core.documents import formats
from llamadesk.core.documents.text import MAX_TEXT_BYTES, DocumentError, Section, decode, html_text, read_limited

__all__ = ["READERS", "DocumentError", "Section", "extract", "is_document"]  # Section and DocumentError: from text.py

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


Reader = Callable[[Path], list[Section]]
READERS: dict[str, Reader] = dict(formats.READERS)  # suffix → reader, for the formats that are not text


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

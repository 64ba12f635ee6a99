"""Readers for PDF, DOCX, ODT and EPUB; extract.py registers them in READERS. Their libraries load on first use.

Sections: a PDF's pages (page from 1; pages without text left out); a DOCX's or ODT's text split at its headings, and
an EPUB's chapters in reading (spine) order, each starting at `line` (from 1) of the whole document's text, in which
paragraphs are separated by a blank line and a table row is one line, its cells joined by " | ".
Every file is untrusted: sizes are checked before anything is parsed, and each refusal is one sentence naming it.
"""

from __future__ import annotations

import posixpath
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from llamadesk.core.documents.text import DocumentError, Section, decode, html_text, size_text

if TYPE_CHECKING:  # zipfile and ElementTree load with the first package read: the CLI and the window start without
    import zipfile
    from xml.etree.ElementTree import Element

MAX_PDF_BYTES = 512 * 1024 * 1024  # pdfium reads the file as it goes, so a large PDF costs time, not memory
MAX_PDF_PAGES = 10_000  # ~20 s of extraction; a longer PDF is refused, not cut: half a manual indexed misleads search
MAX_PACKAGE_BYTES = 256 * 1024 * 1024  # a DOCX/ODT/EPUB file on disk (mostly pictures)
MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # the members' declared sizes together; zipfile never inflates past them
MAX_DIRECTORY_BYTES = 8 * 1024 * 1024  # the zip's table of contents: ~100,000 members, each costing memory to list
MAX_RATIO = 100  # deflate reaches ~10:1 on XML, ~200:1 on a run of one byte: a large member past 100:1 is a bomb
RATIO_FLOOR = 1024 * 1024  # smaller members may compress further (a blank part); together they are capped above
MAX_TEXT_CHARS = 64 * 1024 * 1024  # as extract.MAX_TEXT_BYTES: more text than this is a dump, not a document
FONT_OBFUSCATION = frozenset({"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"})

_PDFIUM = threading.Lock()  # pdfium is not thread-safe, and collections may be indexed from a pool

Block = tuple[bool, str]  # (is a heading, text)


class _Readers:

    # --- PDF: pypdfium2 (3-7x faster than pypdf here, and it reads PDFs whose cross-reference table is broken) ---
    def pdf(self, path: Path) -> list[Section]:
        self._checksize_text(path, MAX_PDF_BYTES)
        import pypdfium2 as pdfium
        import pypdfium2.raw as pdfium_c

        with _PDFIUM:
            try:
                doc = pdfium.PdfDocument(path)
            except pdfium.PdfiumError as exc:
                if exc.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
                    raise DocumentError(
                        f"{path.name} is encrypted; save a copy without a password (in a PDF reader) to index it."
                    ) from exc
                raise DocumentError(f"{path.name} is not a readable PDF: it is damaged or incomplete.") from exc
            try:
                pages = len(doc)
                if pages > MAX_PDF_PAGES:
                    raise DocumentError(
                        f"{path.name} has {pages:,} pages; LlamaDesk indexes PDFs of at most {MAX_PDF_PAGES:,} pages."
                    )
                sections, total = [], 0
                for number in range(1, pages + 1):
                    page = doc[number - 1]
                    textpage = page.get_textpage()
                    text = textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n").strip()
                    textpage.close()
                    page.close()
                    total = self._check_text(path, total, text)
                    if text:
                        sections.append(Section(text, number, 1))
            finally:
                doc.close()
        if pages and not sections:
            raise DocumentError(f"{path.name} has no text, only images (a scan?); LlamaDesk does not read images.")
        return sections

    # --- DOCX: python-docx (its lxml parser never expands entities; DTDs are refused before it parses) ---
    def docx(self, path: Path) -> list[Section]:
        with self._package(path, "Word (DOCX)") as z:
            for info in z.infolist():
                if info.filename.endswith((".xml", ".rels")):
                    self._refuse_entities(path, z.read(info))
        import docx

        document = docx.Document(str(path))
        return self._split(path, _docx_blocks(document.iter_inner_content()))

    # --- ODT: the standard library on content.xml. odfpy was measured: 0.45 s where this takes 0.03 s for 3,000
    # paragraphs, and it loads every part (pictures too) into memory; its last release was in 2020. ---
    def odt(self, path: Path) -> list[Section]:
        with self._package(path, "OpenDocument text (ODT)") as z:
            if "content.xml" not in z.namelist():
                raise DocumentError(f"{path.name} is not an OpenDocument text file: it has no content.xml.")
            root = self._xml(path, z.read("content.xml"))
        body = root.find(f"{{{OFFICE}}}body/{{{OFFICE}}}text")
        return self._split(path, _odt_blocks(body) if body is not None else [])

    # --- EPUB: the standard library (EbookLib is AGPL-3.0, which LlamaDesk's Apache-2.0 bundle cannot carry) ---
    def epub(self, path: Path) -> list[Section]:
        with self._package(path, "EPUB") as z:
            names = set(z.namelist())
            if "META-INF/container.xml" not in names:
                raise DocumentError(f"{path.name} is not an EPUB book: it has no META-INF/container.xml.")
            rootfile = self._xml(path, z.read("META-INF/container.xml")).find(f".//{{{CONTAINER}}}rootfile")
            opf_name = rootfile.get("full-path", "") if rootfile is not None else ""
            if opf_name not in names:
                raise DocumentError(f"{path.name} is not a complete EPUB book: its package document is missing.")
            chapters = self._spine(path, self._xml(path, z.read(opf_name)), posixpath.dirname(opf_name))
            drm = self._drm(path, z) if "META-INF/encryption.xml" in names else set()
            blocks: list[Block] = []
            for name in chapters:
                if name in drm:
                    raise DocumentError(f"{path.name} is protected by DRM; LlamaDesk cannot read its text.")
                if name in names:
                    text = html_text(decode(path, z.read(name)))
                    if text:
                        blocks.append((True, text))  # each chapter its own section
        return self._split(path, blocks)

    def _spine(self, path: Path, opf: Element, folder: str) -> list[str]:
        """The chapters' member names, in reading order (XHTML and HTML items of the spine)."""
        manifest = {
            item.get("id"): item
            for item in opf.iterfind(f"{{{OPF}}}manifest/{{{OPF}}}item")
            if "html" in (item.get("media-type") or "")
        }
        chapters = []
        for ref in opf.iterfind(f"{{{OPF}}}spine/{{{OPF}}}itemref"):
            item = manifest.get(ref.get("idref"))
            if item is not None and item.get("href"):
                name = posixpath.normpath(posixpath.join(folder, unquote(item.get("href", "").split("#")[0])))
                if name not in chapters:
                    chapters.append(name)
        return chapters

    def _drm(self, path: Path, z: zipfile.ZipFile) -> set[str]:
        """Members encrypted by something other than font obfuscation (which every EPUB reader undoes)."""
        found = set()
        for data in self._xml(path, z.read("META-INF/encryption.xml")).iterfind(f".//{{{XMLENC}}}EncryptedData"):
            method = data.find(f"{{{XMLENC}}}EncryptionMethod")
            reference = data.find(f".//{{{XMLENC}}}CipherReference")
            if reference is not None and (method is None or method.get("Algorithm") not in FONT_OBFUSCATION):
                found.add(posixpath.normpath(unquote(reference.get("URI", ""))))
        return found

    # --- shared checks ---
    def _checksize_text(self, path: Path, limit: int) -> int:
        size = path.stat().st_size
        if size > limit:
            raise DocumentError(f"{path.name} is too big to index ({size_text(size)}; at most {size_text(limit)}).")
        return size

    def _check_text(self, path: Path, total: int, text: str) -> int:
        total += len(text)
        if total > MAX_TEXT_CHARS:
            raise DocumentError(
                f"{path.name} holds more than {MAX_TEXT_CHARS:,} characters of text, too many to index."
            )
        return total

    def _package(self, path: Path, kind: str) -> zipfile.ZipFile:
        """The zip behind a DOCX, ODT or EPUB, once its declared sizes say it is safe to unpack."""
        import zipfile

        size = self._checksize_text(path, MAX_PACKAGE_BYTES)
        not_zip = f"{path.name} is not a valid {kind} file: it is not a zip archive (damaged, or another format)."
        with path.open("rb") as f:
            directory = _directorysize_text(f, size)
        if directory is None:
            raise DocumentError(not_zip)
        if directory > MAX_DIRECTORY_BYTES:
            raise DocumentError(f"{path.name} holds too many files inside to be a real {kind} file.")
        try:
            z = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
            raise DocumentError(not_zip) from exc
        infos = z.infolist()
        unpacked = sum(info.file_size for info in infos)
        if unpacked > MAX_UNPACKED_BYTES:
            z.close()
            raise DocumentError(
                f"{path.name} would unpack to {size_text(unpacked)}, more than the {size_text(MAX_UNPACKED_BYTES)} "
                "LlamaDesk unpacks (a zip bomb?)."
            )
        for info in infos:
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                z.close()
                raise DocumentError(
                    f"{path.name} is compressed {info.file_size // max(info.compress_size, 1):,}:1 inside, "
                    "far more than a real document; it looks like a zip bomb."
                )
        return z

    def _refuse_entities(self, path: Path, data: bytes) -> None:
        if any(mark in data for mark in _ENTITY_MARKS):
            raise DocumentError(f"{path.name} declares XML entities, which documents never need; it was refused.")

    def _xml(self, path: Path, data: bytes) -> Element:
        """A part parsed by defusedxml: entity declarations and external references refused, never expanded."""
        import defusedxml
        import defusedxml.ElementTree as safe_xml

        try:
            return safe_xml.fromstring(data)
        except defusedxml.DefusedXmlException as exc:
            raise DocumentError(
                f"{path.name} declares XML entities, which documents never need; it was refused."
            ) from exc
        except safe_xml.ParseError as exc:
            raise DocumentError(f"{path.name} is damaged: a part of it is not well-formed XML.") from exc

    def _split(self, path: Path, blocks: Iterable[Block]) -> list[Section]:
        """Blocks into sections, a new one at each heading; `line` counts lines of the whole text (blocks are
        separated by one blank line)."""
        sections: list[Section] = []
        lines: list[str] = []
        start = line = 1
        total = 0
        for heading, text in blocks:
            text = text.strip()
            if not text:
                continue
            total = self._check_text(path, total, text)
            if heading and lines:
                sections.append(Section("\n\n".join(lines), None, start))
                lines, start = [], line
            lines.append(text)
            line += text.count("\n") + 2
        if lines:
            sections.append(Section("\n\n".join(lines), None, start))
        return sections


_ENTITY_MARKS = tuple("<!ENTITY".encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be"))


def _directorysize_text(f: Any, size: int) -> int | None:
    """The size of a zip's central directory from its end record (zip64's too), read before zipfile lists it;
    None when there is no end record (not a zip)."""
    tail_size = min(size, 22 + 65535)
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    entries, directory = struct.unpack_from("<HI", tail, at + 10)
    if directory != 0xFFFFFFFF and entries != 0xFFFF:
        return int(directory)
    locator = tail.rfind(b"PK\x06\x07", 0, at)  # zip64: the locator points at the zip64 end record
    if locator < 0:
        return None
    (offset,) = struct.unpack_from("<Q", tail, locator + 8)
    if offset > size - 56:
        return None
    f.seek(offset)
    record = f.read(56)
    if not record.startswith(b"PK\x06\x06"):
        return None
    (directory,) = struct.unpack_from("<Q", record, 40)
    return int(directory)


# --- DOCX blocks: paragraphs and tables in document order, headings by style ---
def _docx_blocks(content: Iterable[Any]) -> Iterator[Block]:
    from docx.table import Table

    for item in content:
        if isinstance(item, Table):
            yield False, _docx_table(item)
        else:
            style = item.style.name if item.style is not None else ""
            yield style.startswith(("Heading", "Title")), item.text


def _docx_table(table: Any) -> str:
    rows: list[str] = []
    seen: dict[int, Any] = {}  # a merged cell appears at every grid position it spans; held, so ids stay unique
    for row in table.rows:
        cells = []
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen[id(cell._tc)] = cell._tc
            cells.append(" ".join(" ".join(text.split()) for _, text in _docx_blocks(cell.iter_inner_content())))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


# --- ODT blocks: text:h and text:p, lists and sections walked into, table rows as lines ---
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"
OPF = "http://www.idpf.org/2007/opf"
XMLENC = "http://www.w3.org/2001/04/xmlenc#"
_ODT_SKIP = frozenset({f"{{{TEXT}}}tracked-changes", f"{{{OFFICE}}}annotation", f"{{{TEXT}}}note-citation"})


def _odt_blocks(element: Element) -> Iterator[Block]:
    for child in element:
        if child.tag in _ODT_SKIP:
            continue
        if child.tag in (f"{{{TEXT}}}h", f"{{{TEXT}}}p"):
            yield child.tag == f"{{{TEXT}}}h", _odt_inline(child)
        elif child.tag == f"{{{TABLE}}}table":
            rows = []
            for row in child.iter(f"{{{TABLE}}}table-row"):
                cells = [" ".join(" ".join(t.split()) for _, t in _odt_blocks(c)) for c in row
                         if c.tag == f"{{{TABLE}}}table-cell"]  # fmt: skip
                if any(cells):
                    rows.append(" | ".join(cells))
            yield False, "\n".join(rows)
        else:  # lists, list items, sections, frames: their paragraphs, in order
            yield from _odt_blocks(child)


def _odt_inline(element: Element) -> str:
    parts = [element.text or ""]
    for child in element:
        if child.tag == f"{{{TEXT}}}s":
            parts.append(" " * min(int(child.get(f"{{{TEXT}}}c", "1") or 1), 1000))
        elif child.tag == f"{{{TEXT}}}tab":
            parts.append("\t")
        elif child.tag == f"{{{TEXT}}}line-break":
            parts.append("\n")
        elif child.tag not in _ODT_SKIP:
            parts.append(_odt_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


_READERS = _Readers()
READERS: dict[str, Callable[[Path], list[Section]]] = {
    ".pdf": _READERS.pdf, ".docx": _READERS.docx, ".odt": _READERS.odt, ".epub": _READERS.epub,
}  # fmt: skip

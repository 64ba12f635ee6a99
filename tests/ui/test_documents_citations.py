"""Citations of laid-out documents, and embedding models in the library.

A reply's [n] that quotes a PDF opens the system's viewer at the cited page (`#page=N`), a DOCX the system's viewer,
a text file the app's own viewer; a PDF that is gone shows in the app's viewer, which says so. The receipts here are
made by the real DocumentsSource over a real collection of a real PDF and DOCX; the desktop's opening of file: URLs is
Qt's own hook (the file_urls fixture). The model library marks embedding models by their GGUF headers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import docx
from fpdf import FPDF
from gguf_factory import write_tiny_llama
from pytestqt.qtbot import QtBot

from llamadesk.core.documents import store
from llamadesk.core.documents.context import DocumentsSource
from llamadesk.core.documents.embeddings import POOLING_MEAN
from llamadesk.core.documents.index import index_collection
from llamadesk.core.history import History
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.models.library_page import LibraryPage
from llamadesk.ui.workers import TaskRunner

from .conftest import FileUrls

FILLER = "Unrelated filler about the weather and the tides. " * 12


def write_pdf(path: Path, pages: list[str]) -> Path:
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def quoted_reply(window: MainWindow, history: History, paths: Paths, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """A reply whose receipt quotes the passages of a PDF and a DOCX that match, as a real turn records them."""
    root = tmp_path / "manuals"
    root.mkdir()
    pages = [f"Page one. {FILLER}", f"Page two: the flux capacitor needs 1.21 gigawatts. {FILLER}", "Page three."]
    write_pdf(root / "guide.pdf", pages)
    document = docx.Document()
    document.add_paragraph("The flux capacitor manual, in a word processor's file: gigawatts again.")
    document.add_paragraph(FILLER)
    document.save(str(root / "manual.docx"))
    collection = store.create_collection("manuals", paths.data / "documents")
    collection.add_roots([root])
    assert index_collection(collection).read == 2
    collection.close()
    # A budget smaller than the documents: their best passages are quoted, each with its page.
    _text, records = DocumentsSource(["manuals"]).block("flux capacitor gigawatts", 400, 0.25)
    assert records[0]["mode"] == "passages"
    cid = window.ensure_conversation()
    user = history.add_message(cid, "user", "How many gigawatts?")
    reply = history.add_message(cid, "assistant", "It needs 1.21 gigawatts [1].", parent_id=user.id,
                                receipt={"sources": records})  # fmt: skip
    window.session.show(cid)
    return reply.id, {Path(r["path"]).name: r for r in records[1:]}


def test_a_pdf_citation_opens_the_system_viewer_at_its_page(
    make_window: Callable[..., MainWindow], history: History, paths: Paths, tmp_path: Path, file_urls: FileUrls
) -> None:
    window = make_window(auto_load=False)
    reply_id, by_name = quoted_reply(window, history, paths, tmp_path)
    pdf = by_name["guide.pdf"]
    assert pdf["page"] == 2
    assert window.chat.show_source(reply_id, pdf["n"]) is None  # no dialog of ours: the system's viewer
    url = file_urls.urls[-1]
    assert url.toLocalFile() == pdf["path"] and url.fragment() == "page=2"

    word = by_name["manual.docx"]
    assert window.chat.show_source(reply_id, word["n"]) is None
    assert file_urls.urls[-1].toLocalFile() == word["path"] and not file_urls.urls[-1].hasFragment()


def test_a_cited_pdf_that_is_gone_shows_in_the_app_and_says_so(
    make_window: Callable[..., MainWindow], history: History, paths: Paths, tmp_path: Path, qtbot: QtBot,
    file_urls: FileUrls,
) -> None:  # fmt: skip
    window = make_window(auto_load=False)
    reply_id, by_name = quoted_reply(window, history, paths, tmp_path)
    Path(by_name["guide.pdf"]["path"]).unlink()
    viewer = window.chat.show_source(reply_id, by_name["guide.pdf"]["n"])
    assert viewer is not None and not file_urls.urls
    qtbot.waitUntil(lambda: "guide.pdf" in viewer.where.text() and "\n" in viewer.where.text(), timeout=30_000)
    viewer.close()


def test_the_library_marks_embedding_models(qtbot: QtBot, tmp_path: Path, tiny_model: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "chat.gguf").write_bytes(tiny_model.read_bytes())
    write_tiny_llama(models / "tiny-embed.gguf", pooling=POOLING_MEAN)
    runner = TaskRunner(max_threads=1)
    page = LibraryPage(models, runner)
    qtbot.addWidget(page)
    try:
        page.refresh()
        qtbot.waitUntil(lambda: page.loaded, timeout=30_000)
        names = {page.table.item(row, 0).text(): page.table.item(row, 0).toolTip() for row in range(2)}
        embed = next(name for name in names if name.startswith("tiny-embed"))
        assert embed.endswith("· embedding") and "Search by meaning" in names[embed]
        assert not next(name for name in names if name.startswith("chat")).endswith("embedding")
    finally:
        runner.shutdown()

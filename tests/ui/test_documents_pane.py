"""The Documents pane in the real window, over real files and the real collections folder of the test's
LLAMADESK_HOME: make a collection, add a folder, index it in the background (pause, cancel), list what could not be
read, choose collections per conversation, delete one, index again when a watched file changes, and search by meaning
with an embedding model of the models folder (a generated GGUF that declares mean pooling, through real llama.cpp)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gguf_factory import write_tiny_llama
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from llamadesk.core.documents import store, vectors
from llamadesk.core.documents.context import DOCS_KEY, collections_of
from llamadesk.core.documents.embeddings import POOLING_MEAN
from llamadesk.core.documents.index import IndexReport
from llamadesk.core.documents.search import search
from llamadesk.core.history import History
from llamadesk.paths import Paths
from llamadesk.ui.documents.pane import DocumentsPane
from llamadesk.ui.main_window import MainWindow

from .conftest import Dialogs

INDEX_TIMEOUT_MS = 60_000
WATCH_TIMEOUT_MS = 30_000  # the debounce (2 s) plus a run


@pytest.fixture
def pane(make_window: Callable[..., MainWindow]) -> DocumentsPane:
    window = make_window(auto_load=False)
    window.documents.toggle_action.trigger()  # View → Documents
    assert window.documents.isVisible()
    return window.documents.pane


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two readable documents, one in a subfolder, and a binary file named .txt."""
    root = tmp_path / "manuals"
    (root / "sub").mkdir(parents=True)
    (root / "flux.md").write_text("# Flux\n\nThe flux capacitor needs 1.21 gigawatts.\n", encoding="utf-8")
    (root / "sub" / "notes.txt").write_text("Remember the hoverboard on Tuesday.\n", encoding="utf-8")
    (root / "blob.txt").write_bytes(bytes(range(256)) * 64)
    return root


def make(qtbot: QtBot, pane: DocumentsPane, name: str) -> None:
    pane.create_collection(name)
    qtbot.waitUntil(lambda: pane.view(name) is not None and pane.selected() == name)


def index_with(qtbot: QtBot, pane: DocumentsPane, start: Callable[[], None]) -> IndexReport:
    with qtbot.waitSignal(pane.indexFinished, timeout=INDEX_TIMEOUT_MS) as blocker:
        start()
    report = blocker.args[1]
    assert isinstance(report, IndexReport)
    return report


def figures(pane: DocumentsPane, name: str) -> list[str]:
    item = pane.list.item_of(name)
    assert item is not None
    return [item.text(column) for column in range(pane.list.columnCount())]


def test_a_folder_is_indexed_in_the_background_with_its_figures_and_problems(
    pane: DocumentsPane, folder: Path, paths: Paths, qtbot: QtBot
) -> None:
    make(qtbot, pane, "Manuals")
    assert (paths.data / "documents" / store.file_name("Manuals")).exists()
    report = index_with(qtbot, pane, lambda: pane.add_paths([folder]))
    assert (report.read, report.problems, report.cancelled) == (2, 1, False)

    view = pane.view("Manuals")
    assert view is not None and view.files == 2 and view.roots == (folder.resolve(),)
    assert figures(pane, "Manuals") == ["Manuals", "2", f"{view.passages:,}", "1", "No"] and view.passages >= 2
    assert [pane.roots.item(i).text() for i in range(pane.roots.count())] == [str(folder.resolve())]
    assert pane.problems.count() == 1 and pane.problems.isVisibleTo(pane)
    problem = pane.problems.item(0)
    assert "blob.txt" in problem.text() and "binary" in problem.text()
    assert problem.toolTip() == str(folder.resolve() / "blob.txt")
    assert "Could not be read (1)" in pane.problems_label.text()
    assert "up to date" in pane.status.text() and not pane.progress.isVisible()

    with store.open_collection("Manuals") as collection:  # what the chat's turn will read
        assert [h.path for h in search(collection, "gigawatts", 3)] == [str(folder.resolve() / "flux.md")]


def test_removing_a_root_takes_its_files_out(pane: DocumentsPane, folder: Path, qtbot: QtBot) -> None:
    make(qtbot, pane, "Manuals")
    extra = folder.parent / "extra.txt"
    extra.write_text("An extra page about llamas.\n", encoding="utf-8")
    index_with(qtbot, pane, lambda: pane.add_paths([folder, extra]))
    assert figures(pane, "Manuals")[1] == "3"
    pane.roots.setCurrentRow([pane.roots.item(i).text() for i in range(pane.roots.count())].index(str(extra)))
    assert pane.remove_root_action.isEnabled()
    report = index_with(qtbot, pane, pane.remove_root_action.trigger)
    assert report.removed == 1 and figures(pane, "Manuals")[1] == "2"
    assert pane.roots.count() == 1 and extra.exists()


def test_pause_holds_and_cancel_keeps_what_was_done(pane: DocumentsPane, tmp_path: Path, qtbot: QtBot) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(150):
        (root / f"page{i:03}.txt").write_text(f"Page {i} of the manual, about topic {i}.\n", encoding="utf-8")
    make(qtbot, pane, "Many")

    # Paused before it starts: the run holds before its first file, whatever the machine's speed.
    pane.pause()
    with qtbot.waitSignal(pane.indexStarted, timeout=INDEX_TIMEOUT_MS):
        pane.add_paths([root])
    progress = pane.progress
    assert progress.isVisible() and progress.pause_button.isChecked() and progress.pause_button.text() == "Resume"
    assert not pane.reindex_action.isEnabled()  # one run of a collection at a time
    with store.open_collection("Many") as collection:
        assert collection.stats().files == 0
    report = index_with(qtbot, pane, progress.cancel_button.click)
    assert report.cancelled and report.read == 0
    assert not progress.isVisible() and not pane.indexer.paused and pane.indexer.running is None
    assert "Stopped indexing" in pane.status.text() and figures(pane, "Many")[1] == "0"

    # Cancelled in the middle (or, on a fast machine, after the end): what was read stays, consistent.
    def cancel_on_first_progress(_name: str, _progress: object) -> None:
        pane.indexer.progressed.disconnect(cancel_on_first_progress)
        pane.cancel()

    pane.indexer.progressed.connect(cancel_on_first_progress)
    first = index_with(qtbot, pane, pane.reindex)
    kept = first.read
    assert 1 <= kept <= 150 and first.cancelled == (kept < 150)
    assert figures(pane, "Many")[1] == str(kept)
    with store.open_collection("Many") as collection:
        assert collection.stats().files == kept

    # Paused and resumed, the next run reads only the rest.
    pane.pause()
    with qtbot.waitSignal(pane.indexStarted, timeout=INDEX_TIMEOUT_MS):
        pane.reindex()
    rest = index_with(qtbot, pane, progress.pause_button.click)  # Resume
    assert not rest.cancelled and rest.read == 150 - kept and rest.unchanged == kept
    assert figures(pane, "Many")[1] == "150" and progress.pause_button.text() == "Pause"


def test_the_conversation_chooses_its_collections_and_the_settings_keep_them(
    pane: DocumentsPane, make_window: Callable[..., MainWindow], history: History, qtbot: QtBot
) -> None:
    window = pane.window()
    assert isinstance(window, MainWindow)
    make(qtbot, pane, "Manuals")
    make(qtbot, pane, "Recipes")
    cid = window.ensure_conversation()
    assert pane.used() == []

    item = pane.list.item_of("Manuals")
    assert item is not None and not pane.list.is_used("Manuals")
    with qtbot.waitSignal(pane.usageChanged) as blocker:
        item.setCheckState(0, Qt.CheckState.Checked)  # as a click on the checkbox does
    assert blocker.args == [cid, ["Manuals"]]
    assert history.get_conversation(cid).sampling[DOCS_KEY] == ["Manuals"]

    # The keeper writes the conversation's sampling from the panel: the choice survives it.
    window.panel.rows["top_k"].spin.setValue(17)
    window.save_conversation_settings()
    stored = history.get_conversation(cid).sampling
    assert stored["top_k"] == 17 and collections_of(stored) == ["Manuals"]

    # A new conversation starts with none; going back shows the choice again.
    window.panel.rows["top_k"].spin.setValue(18)  # dirty: new_chat saves the old one first
    history.add_message(cid, "user", "hello")  # an empty conversation would be reused
    window.session.show(cid)
    window.new_chat()
    other = window.current_cid
    assert other not in (None, cid)
    assert collections_of(history.get_conversation(other).sampling) == [] and pane.used() == []
    assert not pane.list.is_used("Manuals")
    window.select_conversation(cid)
    assert pane.list.is_used("Manuals") and not pane.list.is_used("Recipes")
    stored = history.get_conversation(cid).sampling
    assert stored["top_k"] == 18 and collections_of(stored) == ["Manuals"]

    pane.set_used("Recipes", True)
    pane.set_used("Manuals", False)
    assert collections_of(history.get_conversation(cid).sampling) == ["Recipes"]


def test_delete_asks_then_removes_the_collection_file_only(
    pane: DocumentsPane, folder: Path, paths: Paths, history: History, dialogs: Dialogs, qtbot: QtBot
) -> None:
    make(qtbot, pane, "Manuals")
    index_with(qtbot, pane, lambda: pane.add_paths([folder]))
    window = pane.window()
    assert isinstance(window, MainWindow)
    cid = window.ensure_conversation()
    pane.set_used("Manuals", True)
    db = paths.data / "documents" / store.file_name("Manuals")

    dialogs.answer = QMessageBox.StandardButton.Cancel
    assert not pane.delete_collection()
    assert "index is deleted" in dialogs.questions[-1] and "not touched" in dialogs.questions[-1]
    assert db.exists()

    dialogs.answer = QMessageBox.StandardButton.Yes
    pane.delete_action.trigger()
    qtbot.waitUntil(lambda: pane.view("Manuals") is None)
    assert not db.exists() and not list(db.parent.glob(db.name + "*"))
    assert (folder / "flux.md").exists() and (folder / "blob.txt").exists()
    assert pane.list.topLevelItemCount() == 0 and not pane.delete_action.isEnabled()
    assert collections_of(history.get_conversation(cid).sampling) == []  # it would refuse to send
    assert str(folder.resolve()) not in pane.watcher.watched()


def test_a_change_to_a_watched_file_indexes_it_again(pane: DocumentsPane, folder: Path, qtbot: QtBot) -> None:
    make(qtbot, pane, "Manuals")
    index_with(qtbot, pane, lambda: pane.add_paths([folder]))
    real = folder.resolve()
    assert {str(real), str(real / "sub"), str(real / "sub" / "notes.txt")} <= pane.watcher.watched()

    with qtbot.waitSignal(pane.indexFinished, timeout=WATCH_TIMEOUT_MS) as blocker:
        (folder / "sub" / "notes.txt").write_text("Remember the plutonium on Friday.\n", encoding="utf-8")
    assert blocker.args[0] == "Manuals" and blocker.args[1].read == 1
    with store.open_collection("Manuals") as collection:
        assert search(collection, "plutonium", 3) and not search(collection, "hoverboard", 3)

    with qtbot.waitSignal(pane.indexFinished, timeout=WATCH_TIMEOUT_MS) as blocker:
        (folder / "sub" / "deeper").mkdir()
        (folder / "sub" / "deeper" / "new.md").write_text("A new page about the DeLorean.\n", encoding="utf-8")
    assert blocker.args[1].read >= 1
    qtbot.waitUntil(lambda: figures(pane, "Manuals")[1] == "3")  # a later run may follow the first: the folder was new
    assert str(folder.resolve() / "sub" / "deeper") in pane.watcher.watched()


def test_closing_the_window_while_indexing_cancels_and_waits(
    make_window: Callable[..., MainWindow], folder: Path, qtbot: QtBot
) -> None:
    window = make_window(auto_load=False)
    pane = window.documents.pane
    make(qtbot, pane, "Manuals")
    pane.pause()  # held between files: only the cancel can end it
    with qtbot.waitSignal(pane.indexStarted, timeout=INDEX_TIMEOUT_MS):
        pane.add_paths([folder])
    window.close()
    assert pane.indexer.runner.active_count() == 0 and pane.indexer.runner.pool.activeThreadCount() == 0
    assert pane.runner.pool.activeThreadCount() == 0 and not pane.watcher.watched()
    with store.open_collection("Manuals") as collection:  # consistent, and re-indexable later
        assert collection.stats().files == 0 and collection.roots() == [folder.resolve()]


def test_view_documents_has_a_shortcut_of_its_own(make_window: Callable[..., MainWindow]) -> None:
    window = make_window(auto_load=False)
    action = window.documents.toggle_action
    assert action.shortcut().toString() == "Ctrl+Shift+D"
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "View")
    assert action in view_menu.actions()
    taken = [
        (a.text(), key.toString()) for a in window.findChildren(QAction) if a is not action for key in a.shortcuts()
    ]
    assert "Ctrl+Shift+D" not in [key for _text, key in taken], taken
    assert not window.documents.isVisible()
    action.trigger()
    assert window.documents.isVisible()


def test_a_collection_deleted_elsewhere_shows_as_deleted_to_untick(
    pane: DocumentsPane, history: History, qtbot: QtBot
) -> None:
    window = pane.window()
    assert isinstance(window, MainWindow)
    make(qtbot, pane, "Old notes")
    cid = window.ensure_conversation()
    pane.set_used("Old notes", True)
    store.delete_collection("Old notes")  # as `llamadesk docs rm` does while the window is open
    window.documents.hide()
    with qtbot.waitSignal(pane.collectionsChanged, timeout=INDEX_TIMEOUT_MS):
        window.documents.toggle_action.trigger()  # shown again: the pane reads the collections again
    assert pane.view("Old notes") is None
    item = pane.list.item_of("Old notes")
    assert item is not None and item.text(0) == "Old notes (deleted)" and pane.list.is_used("Old notes")
    assert not pane.delete_action.isEnabled() or pane.selected() != "Old notes"
    with qtbot.waitSignal(pane.usageChanged):
        item.setCheckState(0, Qt.CheckState.Unchecked)
    assert collections_of(history.get_conversation(cid).sampling) == []
    assert pane.list.item_of("Old notes") is None


def choose_meaning(pane: DocumentsPane, text: str) -> None:
    """As a user picks an entry of "Search by meaning"."""
    row = pane.meaning_combo.findText(text)
    assert row >= 0, text
    pane.meaning_combo.setCurrentIndex(row)
    pane.meaning_combo.activated.emit(row)


def offered(pane: DocumentsPane) -> list[str]:
    return [pane.meaning_combo.itemText(i) for i in range(pane.meaning_combo.count())]


def test_search_by_meaning_embeds_every_passage_and_words_only_removes_the_vectors(
    pane: DocumentsPane, folder: Path, models_dir: Path, qtbot: QtBot
) -> None:
    embed_model = write_tiny_llama(models_dir / "tiny-embed.gguf", pooling=POOLING_MEAN)
    make(qtbot, pane, "Manuals")
    index_with(qtbot, pane, lambda: pane.add_paths([folder]))
    pane.refresh()  # reads the models folder again (as showing the pane does)
    qtbot.waitUntil(lambda: "tiny-embed" in offered(pane), timeout=INDEX_TIMEOUT_MS)
    assert offered(pane) == ["Words only (BM25)", "tiny-embed"]  # the chat model (tiny-chatml) is not offered
    assert pane.meaning_combo.currentIndex() == 0 and pane.meaning_combo.isEnabled()
    assert figures(pane, "Manuals")[4] == "No"  # the "Meaning" column
    assert "words alone" in pane.meaning_label.text()

    titles: list[str] = []
    pane.indexStarted.connect(lambda _name: titles.append(pane.progress.title.text()))
    report = index_with(qtbot, pane, lambda: choose_meaning(pane, "tiny-embed"))
    view = pane.view("Manuals")
    assert view is not None and view.passages >= 2
    assert report.embedded == view.passages and not report.cancelled
    assert titles == ["Embedding the passages of “Manuals” with tiny-embed.gguf…"]
    assert (view.embedding, view.vectors) == ("tiny-embed.gguf", view.passages)
    assert figures(pane, "Manuals")[4] == "Yes"
    assert "by meaning" in pane.meaning_label.text() and "searched by meaning too" in pane.status.text()
    assert pane.meaning_combo.currentText() == "tiny-embed" and not pane.progress.isVisible()
    with store.open_collection("Manuals") as collection:  # what the chat's turn will search
        model = collection.embedding_model()
        assert model is not None and model.path == str(embed_model) and model.dimension == 64
        assert vectors.count(collection) == collection.stats().passages and vectors.pending(collection) == 0

    with qtbot.waitSignal(pane.collectionsChanged, timeout=INDEX_TIMEOUT_MS):
        choose_meaning(pane, "Words only (BM25)")
    view = pane.view("Manuals")
    assert view is not None and (view.embedding, view.vectors) == ("", 0)
    assert figures(pane, "Manuals")[4] == "No"
    assert "words alone" in pane.status.text() and pane.meaning_combo.currentIndex() == 0
    with store.open_collection("Manuals") as collection:
        assert collection.embedding_model() is None and vectors.count(collection) == 0


def test_a_model_that_cannot_embed_is_one_sentence_and_the_choice_goes_back(
    pane: DocumentsPane, folder: Path, models_dir: Path, tmp_path: Path, dialogs: Dialogs, qtbot: QtBot
) -> None:
    whole = write_tiny_llama(tmp_path / "whole.gguf", pooling=POOLING_MEAN)
    data = whole.read_bytes()
    (models_dir / "broken-embed.gguf").write_bytes(data[: len(data) // 2])  # its header is whole, its tensors not
    make(qtbot, pane, "Manuals")
    index_with(qtbot, pane, lambda: pane.add_paths([folder]))
    pane.refresh()
    qtbot.waitUntil(lambda: "broken-embed" in offered(pane), timeout=INDEX_TIMEOUT_MS)

    with qtbot.waitSignal(pane.indexFinished, timeout=INDEX_TIMEOUT_MS) as blocker:
        choose_meaning(pane, "broken-embed")
    assert blocker.args == ["Manuals", None]
    title, sentence = dialogs.warnings[-1]
    assert title == "Not searched by meaning" and "broken-embed.gguf" in sentence and "truncated" in sentence
    assert sentence.endswith(".") and "\n" not in sentence and "Traceback" not in sentence
    assert pane.meaning_combo.currentIndex() == 0 and "not embedded" in pane.status.text()
    view = pane.view("Manuals")
    assert view is not None and view.embedding == "" and not pane.progress.isVisible()

    # A chat model asked for by path (the combo never offers one) is refused the same way.
    with qtbot.waitSignal(pane.indexFinished, timeout=INDEX_TIMEOUT_MS) as blocker:
        pane.set_embedding_model(models_dir / "tiny-chatml.gguf")
    assert blocker.args[1] is None and "not an embedding model" in dialogs.warnings[-1][1]
    with store.open_collection("Manuals") as collection:
        assert collection.embedding_model() is None and vectors.count(collection) == 0


def test_embedding_pauses_and_cancels_like_indexing(
    pane: DocumentsPane, folder: Path, models_dir: Path, qtbot: QtBot
) -> None:
    write_tiny_llama(models_dir / "tiny-embed.gguf", pooling=POOLING_MEAN)
    make(qtbot, pane, "Manuals")
    index_with(qtbot, pane, lambda: pane.add_paths([folder]))
    pane.refresh()
    qtbot.waitUntil(lambda: "tiny-embed" in offered(pane), timeout=INDEX_TIMEOUT_MS)

    pane.pause()  # held before its first batch, whatever the machine's speed
    with qtbot.waitSignal(pane.indexStarted, timeout=INDEX_TIMEOUT_MS):
        choose_meaning(pane, "tiny-embed")
    assert pane.progress.isVisible() and pane.progress.pause_button.text() == "Resume"
    report = index_with(qtbot, pane, pane.progress.cancel_button.click)
    assert report.cancelled and report.embedded == 0 and "Stopped embedding" in pane.status.text()
    view = pane.view("Manuals")
    assert view is not None and (view.embedding, view.vectors) == ("tiny-embed.gguf", 0)
    assert "have no vector yet" in pane.meaning_label.text()

    pane.pause()
    with qtbot.waitSignal(pane.indexStarted, timeout=INDEX_TIMEOUT_MS):
        pane.reindex()  # an indexing run embeds the passages without a vector, after reading what changed
    report = index_with(qtbot, pane, pane.progress.pause_button.click)  # Resume
    view = pane.view("Manuals")
    assert view is not None and report.embedded == view.passages == view.vectors and not report.cancelled

"""At send, a conversation's documents are searched off the GUI thread (and an embedding model is loaded there, once),
then the reply is asked for with the passages. The search here is held on a threading.Event the test controls, so
the window is checked while a search is in flight, whatever the machine's speed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gguf_factory import write_tiny_llama
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from llamadesk.core.documents import embeddings, store, vectors
from llamadesk.core.documents.context import DOCS_KEY
from llamadesk.core.documents.index import index_collection
from llamadesk.core.documents.store import EmbeddingModel
from llamadesk.core.fileinfo import sha256_file
from llamadesk.core.history import History
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow

TIMEOUT_MS = 60_000
QUESTION = "How many gigawatts does the flux capacitor need?"


class HeldSearch:
    """Wraps the session's real search: it records the thread it runs on and waits for `release` before searching."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.release = threading.Event()
        self.entered = threading.Event()
        self.returned = threading.Event()
        self.threads: list[int] = []
        self.embedders_loaded = 0  # embedding models the searching thread holds after searching

    def __call__(self, *args: Any) -> Any:
        self.threads.append(threading.get_ident())
        self.entered.set()
        try:
            assert self.release.wait(TIMEOUT_MS / 1000), "the test never released the search"
            found = self.real(*args)
            self.embedders_loaded = len(getattr(embeddings._local, "embedders", None) or ())
            return found
        finally:
            self.returned.set()


def make_collection(paths: Paths, tmp_path: Path, model: Path | None = None, filler: int = 20) -> None:
    """A collection "manuals": small enough by default to go into the prompt whole (the tiny model's context is
    small); with `filler` lines enough, its best passages go in instead (searched by BM25 and the model's vectors)."""
    root = tmp_path / "manuals"
    root.mkdir()
    (root / "flux.md").write_text("# Flux\n\n" + "Unrelated filler about the weather.\n" * filler
                                  + "\nThe flux capacitor needs 1.21 gigawatts.\n")  # fmt: skip
    (root / "other.txt").write_text("Nothing to see here.\n" * filler)
    collection = store.create_collection("manuals", paths.data / "documents")
    collection.add_roots([root])
    if model is not None:
        collection.set_embedding_model(EmbeddingModel(str(model), model.name, sha256_file(model), 64))
    index_collection(collection)
    if model is not None:
        embedder = embeddings.Embedder(model)
        try:
            vectors.embed_missing(collection, embedder)
        finally:
            embedder.close()
    collection.close()


@pytest.fixture
def documents_window(
    window: MainWindow, history: History, paths: Paths, tmp_path: Path, qtbot: QtBot
) -> Iterator[MainWindow]:
    make_collection(paths, tmp_path)
    cid = window.ensure_conversation()
    history.update_conversation(cid, sampling={**history.get_conversation(cid).sampling, DOCS_KEY: ["manuals"]})
    calibrated(window, qtbot)
    yield window


def calibrated(window: MainWindow, qtbot: QtBot) -> None:
    """Waits until the engine has counted the conversation: from then the documents' budget is in the model's own
    tokens (the tiny model's are about a character each), so the passages fit its context."""
    window.chat.refresh_context()
    meter = window.context_meter
    assert meter.documents > 0
    qtbot.waitUntil(lambda: f"documents ≤ {meter.documents}" in meter.label.text(), timeout=TIMEOUT_MS)


def test_the_window_keeps_working_while_the_documents_are_searched(
    documents_window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window = documents_window
    held = HeldSearch(window.session.retrieve)
    window.session.retrieve = held
    cid = window.current_cid
    window.send(QUESTION)  # returns at once: the search waits on its own thread
    assert held.entered.wait(TIMEOUT_MS / 1000)
    assert held.threads[0] != threading.get_ident()
    assert window.is_generating and window.session.active_request is None  # searching, no reply asked for yet
    assert window.statusBar().currentMessage() == "Searching your documents…"
    assert [m.content for m in history.messages(cid)] == [QUESTION]  # your message is saved already

    # The GUI thread goes on handling events: a timer fires, keys reach the message box, the view repaints.
    fired: list[bool] = []
    QTimer.singleShot(0, lambda: fired.append(True))
    qtbot.waitUntil(lambda: bool(fired), timeout=TIMEOUT_MS)
    qtbot.keyClicks(window.composer.edit, "next question")
    assert window.composer.edit.toPlainText() == "next question"
    window.chat_view.viewport().repaint()
    assert not held.returned.is_set()

    held.release.set()
    qtbot.waitUntil(lambda: window.session.active_request is not None or not window.is_generating,
                    timeout=TIMEOUT_MS)  # fmt: skip
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    user, reply = history.messages(cid)
    assert user.content == QUESTION and reply.status == "complete", (reply.content, reply.receipt)
    assert "flux.md" in json.dumps(reply.receipt) and "1.21 gigawatts" not in user.content


def test_stop_while_the_documents_are_searched_asks_for_no_reply(
    documents_window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window = documents_window
    held = HeldSearch(window.session.retrieve)
    window.session.retrieve = held
    cid = window.current_cid
    window.send(QUESTION)
    assert held.entered.wait(TIMEOUT_MS / 1000)
    window.stop_generation()
    assert not window.is_generating  # at once: the window is free while the search ends on its own thread
    held.release.set()
    qtbot.waitUntil(lambda: window.session._retrieval.active_count() == 0, timeout=TIMEOUT_MS)
    assert [m.content for m in history.messages(cid)] == [QUESTION]  # your message stays, no reply was made
    assert window.session.active_request is None and not window.is_generating

    # Sending again works, and Regenerate on your message would search again the same way.
    window.session.retrieve = held.real
    window.send("And the flux capacitor?")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    assert [m.role for m in history.messages(cid)][-2:] == ["user", "assistant"]
    assert "flux.md" in json.dumps(history.messages(cid)[-1].receipt)


def test_a_search_that_fails_keeps_your_message_and_says_why(
    documents_window: MainWindow, history: History, qtbot: QtBot, paths: Paths, dialogs: Any
) -> None:
    window = documents_window
    cid = window.current_cid
    collection_file = store.open_collection("manuals", paths.data / "documents")
    db_path = collection_file.path
    collection_file.close()
    db_path.write_bytes(b"this is not a database" * 100)  # the index was damaged behind the app's back
    window.send(QUESTION)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    assert [m.content for m in history.messages(cid)] == [QUESTION]
    assert dialogs.warnings and dialogs.warnings[-1][0] == "Documents not searched"
    assert "Traceback" not in dialogs.warnings[-1][1]


def test_the_embedding_model_is_loaded_off_the_gui_thread(
    window: MainWindow, history: History, paths: Paths, qtbot: QtBot, tmp_path: Path
) -> None:
    model = write_tiny_llama(tmp_path / "tiny-embed.gguf", pooling=embeddings.POOLING_MEAN)
    make_collection(paths, tmp_path, model, filler=200)  # passages, not whole files: the query is embedded
    cid = window.ensure_conversation()
    history.update_conversation(cid, sampling={**history.get_conversation(cid).sampling, DOCS_KEY: ["manuals"]})
    calibrated(window, qtbot)
    held = HeldSearch(window.session.retrieve)
    window.session.retrieve = held
    held.release.set()
    window.send(QUESTION)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    reply = history.messages(cid)[-1]
    assert "flux.md" in json.dumps(reply.receipt) and '"passage"' in json.dumps(reply.receipt)
    assert held.threads and held.threads[0] != threading.get_ident()
    assert held.embedders_loaded == 1  # the searching thread loaded the model and keeps it for the next question...
    assert not getattr(embeddings._local, "embedders", None)  # ...and the GUI thread never loaded it

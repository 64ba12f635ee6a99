"""A conversation that uses document collections, in the real window: each reply's prompt carries the passages that
match your message, the receipt records them, and the history keeps only your words."""

from __future__ import annotations

import json
from pathlib import Path

from pytestqt.qtbot import QtBot

from llamadesk.core.documents import store
from llamadesk.core.documents.context import DOCS_KEY
from llamadesk.core.documents.index import index_collection
from llamadesk.core.history import History
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000


def make_collection(paths: Paths, tmp_path: Path) -> None:
    root = tmp_path / "manuals"
    root.mkdir()
    (root / "flux.md").write_text("# Flux\n\n" + "Unrelated filler about the weather.\n" * 200
                                  + "\nThe flux capacitor needs 1.21 gigawatts.\n")  # fmt: skip
    (root / "other.txt").write_text("Nothing to see here.\n" * 200)
    collection = store.create_collection("manuals", paths.data / "documents")
    collection.add_roots([root])
    index_collection(collection)
    collection.close()


def test_a_reply_quotes_the_conversations_documents(
    window: MainWindow, history: History, paths: Paths, qtbot: QtBot, tmp_path: Path
) -> None:
    make_collection(paths, tmp_path)
    cid = window.ensure_conversation()
    history.update_conversation(cid, sampling={**history.get_conversation(cid).sampling, DOCS_KEY: ["manuals"]})
    window.chat.refresh_context()  # the meter says how much of each prompt the documents may take
    meter = window.context_meter
    assert meter.documents > 0
    # The meter shows its figures when the engine has counted the conversation: wait for that state.
    qtbot.waitUntil(lambda: f"documents ≤ {meter.documents}" in meter.label.text(), timeout=REPLY_TIMEOUT_MS)
    # The documents are searched in the background first (test_documents_retrieval.py); then the reply is asked for:
    # its prompt is read when it is (the reply may end before a poll would see it).
    session, prompts = window.session, []
    session.busyChanged.connect(lambda busy: busy and session.active_request is not None and prompts.append(
        session.requests[session.active_request].messages[-1]["content"]))  # fmt: skip
    window.send("How many gigawatts does the flux capacitor need?")
    qtbot.waitUntil(lambda: bool(prompts), timeout=REPLY_TIMEOUT_MS)
    prompt = prompts[0]
    assert prompt.startswith("How many gigawatts") and "[1] " in prompt and "1.21 gigawatts" in prompt
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    user, reply = history.messages(cid)
    assert user.content == "How many gigawatts does the flux capacitor need?"
    kinds = [record["kind"] for record in (reply.receipt or {}).get("sources", [])]
    assert kinds[0] == "documents" and "passage" in kinds
    assert "flux.md" in json.dumps(reply.receipt)

    # The reply's row knows its sources: a citation [1] opens the file at the passage.
    row = window.chat_model.row_of(reply.id)
    assert row is not None and [r["n"] for r in row.sources][:1] == [1]
    viewer = window.chat.show_source(reply.id, 1)
    assert viewer is not None and viewer.windowTitle() == "Source [1] — flux.md"
    qtbot.waitUntil(lambda: bool(viewer.text.toPlainText()), timeout=REPLY_TIMEOUT_MS)
    assert "1.21 gigawatts" in viewer.text.textCursor().selectedText()
    viewer.close()
    assert window.chat.show_source(reply.id, 99) is None  # no such source: nothing opens

    # Regenerate searches again for the same message.
    window.session.regenerate(cid, reply.id, window.panel.params(), "")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    again = history.messages(cid)[-1]
    assert again.id != reply.id and "flux.md" in json.dumps(again.receipt)


def test_a_deleted_collection_is_left_out_with_a_notice(window: MainWindow, history: History, qtbot: QtBot) -> None:
    cid = window.ensure_conversation()
    history.update_conversation(cid, sampling={DOCS_KEY: ["gone"]})
    notices: list[str] = []
    window.session.notice.connect(lambda text, _ms: notices.append(text))
    window.send("hello")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert any("“gone” no longer exists" in notice for notice in notices)
    user, reply = history.messages(cid)
    assert user.content == "hello" and reply.status == "complete"
    assert (reply.receipt or {})["sources"][0]["missing"] == ["gone"]


def test_citations_link_only_the_quoted_sources() -> None:
    from llamadesk.core.markdown import CITE_SCHEME, parse_cite_href, render_markdown

    html = render_markdown("Gigawatts [1], see also [2] and [7]; `[1]` in code stays.", citations=2).html
    assert html.count(f'href="{CITE_SCHEME}:') == 2 and f'href="{CITE_SCHEME}:7"' not in html
    assert parse_cite_href(f"{CITE_SCHEME}:2") == 2 and parse_cite_href("https://x/1") is None
    assert CITE_SCHEME not in render_markdown("Gigawatts [1].").html  # a reply that quoted nothing links nothing

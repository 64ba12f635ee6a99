"""Notebook (completion) mode in core: what Generate, Reproduce and Continue save and send, on a real SQLite history."""

from __future__ import annotations

from pathlib import Path

from llamadesk.core.conversation import notebook
from llamadesk.core.conversation.lifecycle import NEW_TITLE
from llamadesk.core.history import History


def test_generate_saves_the_document_and_begins_its_continuation(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    try:
        conv = history.create_conversation(NEW_TITLE, sampling={notebook.MODE_KEY: notebook.NOTEBOOK})
        assert notebook.is_notebook_sampling(history.get_conversation(conv.id).sampling)
        reply, plan = notebook.begin_document(history, conv.id, "The lighthouse keeper wrote", "tiny.gguf")
        assert plan.messages == [{"role": "user", "content": "The lighthouse keeper wrote"}]
        reply.append(" a letter")
        reply.finish(finish_reason="stop", receipt={"mode": notebook.COMPLETION})
        document, continuation = history.messages(conv.id)
        assert (document.role, document.content) == ("user", "The lighthouse keeper wrote")
        assert continuation.parent_id == document.id and notebook.is_completion(continuation)
        assert history.get_conversation(conv.id).title != NEW_TITLE  # named after the document
        # Continue sends the document and the text so far; Reproduce begins a sibling of the same document.
        assert notebook.continuation_plan(history, continuation).messages == [
            {"role": "user", "content": "The lighthouse keeper wrote"},
            {"role": "assistant", "content": " a letter"},
        ]
        again, plan = notebook.begin_again(history, conv.id, document.id)
        assert plan.messages[0]["content"] == "The lighthouse keeper wrote"
        assert [m.id for m in history.children(conv.id, document.id)] == [continuation.id, again.message_id]
    finally:
        history.close()


def test_a_chat_is_not_a_notebook() -> None:
    assert not notebook.is_notebook_sampling({})
    assert not notebook.is_notebook_sampling(None)
    assert not notebook.is_notebook_sampling({"temperature": 0.7})

"""A reply's life, the same for the window, the CLI and the server: status and title decided once, text written
as it streams, a real reply from the tiny model finished with its receipt (real llama.cpp, real SQLite)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamadesk.core.conversation.lifecycle import NEW_TITLE, ReplyWriter, name_new_conversation, status_for, title_for
from llamadesk.core.engines.api import Done, FinishReason, Token
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.errors import HistoryError
from llamadesk.core.history import History
from llamadesk.core.sampling import SamplingParams


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "history.sqlite3")
    yield h
    h.close()


def test_each_finish_reason_has_one_status() -> None:
    assert {r: status_for(r) for r in FinishReason} == {
        FinishReason.STOP: "complete",
        FinishReason.LENGTH: "complete",
        FinishReason.CANCELLED: "cancelled",
        FinishReason.ERROR: "error",
    }


def test_titles_come_from_the_first_sentence_of_the_first_message(history: History) -> None:
    assert title_for("Hi! How do I boil an egg? Quickly please.") == "How do I boil an egg?"
    assert title_for("```\ncode only\n```", fallback="Server request") == "Server request"
    conv = history.create_conversation()
    assert conv.title == NEW_TITLE
    name_new_conversation(history, conv.id, "Write a haiku about **spring**")
    assert history.get_conversation(conv.id).title == "Write a haiku about spring"
    name_new_conversation(history, conv.id, "Something else entirely")  # a named conversation keeps its name
    assert history.get_conversation(conv.id).title == "Write a haiku about spring"


def test_a_real_reply_is_written_as_it_streams_and_finished_with_its_receipt(
    history: History, engine: LlamaCppEngine
) -> None:
    conv = history.create_conversation()
    user = history.add_message(conv.id, "user", "hello there")
    writer = ReplyWriter.begin(history, conv.id, parent_id=user.id)
    done: Done | None = None
    for event in engine.stream([{"role": "user", "content": "hello there"}], SamplingParams(max_tokens=8, seed=3),
                               threading.Event()):  # fmt: skip
        if isinstance(event, Token):
            assert writer.append(event.text) is None
        else:
            done = event
    assert done is not None
    writer.finish(done.stats.finish_reason, done.receipt)
    stored = history.get_message(writer.message_id)
    assert stored.status == "complete" and stored.content == writer.reply.content and stored.content
    assert stored.receipt is not None and stored.receipt["generated_tokens"] == done.stats.generated_tokens
    assert writer.finished and writer.unsaved is None and writer.conversation_id == conv.id


def test_a_failed_reply_keeps_its_sentence_and_a_continued_one_its_text(history: History) -> None:
    conv = history.create_conversation()
    failed = ReplyWriter.begin(history, conv.id)
    failed.append("partial ")
    failed.fail("The model stopped answering.", {"model": "x.gguf"})
    message = history.get_message(failed.message_id)
    assert (message.status, message.finish_reason, message.content) == ("error", "error", "partial ")
    assert message.receipt == {"model": "x.gguf", "error": "The model stopped answering."}
    with pytest.raises(HistoryError):
        failed.finish(FinishReason.STOP, {})  # once only

    first = ReplyWriter.begin(history, conv.id)
    first.append("Once upon")
    first.finish(FinishReason.LENGTH, {})
    again = ReplyWriter.resume(history, history.get_message(first.message_id))
    again.append(" a time")
    again.finish(FinishReason.CANCELLED, {})
    message = history.get_message(first.message_id)
    assert (message.content, message.status) == ("Once upon a time", "cancelled")

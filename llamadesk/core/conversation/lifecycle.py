"""A reply's life in the history, the same for every front end: begun, its text persisted as it streams (at most
every half second), finished with a status and a receipt. The status a finish reason gives, and a conversation's
title, are decided here once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llamadesk.core.engine_api import FinishReason
from llamadesk.core.errors import HistoryError
from llamadesk.core.history import History, StreamingReply
from llamadesk.core.history.models import Message as StoredMessage
from llamadesk.core.history.sidebar import NEW_TITLE, auto_title
from llamadesk.core.history.streaming import DEFAULT_FLUSH_INTERVAL_S

__all__ = ["NEW_TITLE", "ReplyWriter", "name_new_conversation", "status_for", "title_for"]


def status_for(reason: FinishReason) -> str:
    """The history status of a reply that ended for `reason` (docs/HISTORY_SCHEMA.md)."""
    if reason is FinishReason.CANCELLED:
        return "cancelled"
    if reason is FinishReason.ERROR:
        return "error"
    return "complete"


def title_for(first_text: str, fallback: str = NEW_TITLE) -> str:
    """A conversation's title from its first message (its first sentence, without markup; `fallback` when it
    holds no words)."""
    title = auto_title(first_text)
    return fallback if title == NEW_TITLE else title


def name_new_conversation(history: History, cid: int, first_text: str) -> None:
    """Gives a conversation still called NEW_TITLE the title of its first message."""
    if history.get_conversation(cid).title == NEW_TITLE:
        history.rename_conversation(cid, title_for(first_text))


class ReplyWriter:
    """One reply being written: `append` as text streams (a failed write is kept and retried at the next flush;
    the first failure is remembered), then `finish` or `fail` once."""

    def __init__(self, reply: StreamingReply) -> None:
        self.reply = reply
        self.unsaved: HistoryError | None = None  # the first write that failed (a full disk); None once all is saved

    @classmethod
    def begin(cls, history: History, cid: int, parent_id: int | None = None) -> ReplyWriter:
        kwargs = {} if parent_id is None else {"parent_id": parent_id}
        return cls(history.begin_reply(cid, **kwargs))

    @classmethod
    def resume(cls, history: History, message: StoredMessage) -> ReplyWriter:
        """A reply extended in place (Continue): its text so far is kept and written again with the new."""
        reply = StreamingReply(history, message, DEFAULT_FLUSH_INTERVAL_S)
        reply.append(message.content)
        return cls(reply)

    @property
    def message_id(self) -> int:
        return self.reply.message_id

    @property
    def conversation_id(self) -> int:
        return self.reply.conversation_id

    @property
    def finished(self) -> bool:
        return self.reply.finished

    def append(self, text: str) -> HistoryError | None:
        """Adds text; returns the write error when this append's flush failed (the text stays in memory)."""
        try:
            self.reply.append(text)
        except HistoryError as exc:
            self.unsaved = self.unsaved or exc
            return exc
        return None

    def finish(self, reason: FinishReason, receipt: Mapping[str, Any] | None) -> None:
        """Writes the final text, the status `reason` gives and the receipt; raises HistoryError if it cannot."""
        self.reply.finish(status=status_for(reason), finish_reason=reason.value, receipt=receipt)
        self.unsaved = None  # the whole reply reached the disk after all

    def fail(self, message: str, receipt: Mapping[str, Any] | None = None) -> None:
        """Ends the reply as an error, the sentence kept in its receipt; raises HistoryError if it cannot."""
        self.reply.finish(
            status="error", finish_reason=FinishReason.ERROR.value, receipt={**(receipt or {}), "error": message}
        )

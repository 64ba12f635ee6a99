"""A reply's life in the history, the same for every front end: begun, its text persisted as it streams (at most
every half second), finished with a status and a receipt. The status a finish reason gives, and a conversation's
title, are decided here once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from llamadesk.core.engines.api import FinishReason
from llamadesk.core.errors import HistoryError
from llamadesk.core.history import History, StreamingReply
from llamadesk.core.history.models import Message as StoredMessage
from llamadesk.core.history.sidebar import NEW_TITLE, auto_title
from llamadesk.core.history.streaming import DEFAULT_FLUSH_INTERVAL_S
from llamadesk.core.token_probs import TOP_K, TokenProb, receipt_field, records_from_receipt

__all__ = [
    "FINISH_WORDS",
    "NEW_TITLE",
    "ReplyWriter",
    "finish_words",
    "merge_continuation",
    "name_new_conversation",
    "shifted",
    "status_for",
    "title_for",
]


def status_for(reason: FinishReason) -> str:
    """The history status of a reply that ended for `reason` (docs/HISTORY_SCHEMA.md)."""
    if reason is FinishReason.CANCELLED:
        return "cancelled"
    if reason is FinishReason.ERROR:
        return "error"
    return "complete"


# How each finish reason reads to a person (the receipt, the A/B dialog): "stop" and "length" are the engine's words.
FINISH_WORDS = {
    FinishReason.STOP: "the model ended its reply",
    FinishReason.LENGTH: "reached the max tokens limit (or the context's end)",
    FinishReason.CANCELLED: "stopped by you",
    FinishReason.ERROR: "failed",
}


def finish_words(reason: str | FinishReason | None) -> str:
    """A finish reason in plain words; an unknown value is shown as it is, a missing one as —."""
    if reason is None:
        return "—"
    try:
        return FINISH_WORDS[FinishReason(reason)]
    except ValueError:
        return str(reason)


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


def shifted(records: list[TokenProb], by: int) -> list[TokenProb]:
    """Records of a continuation, their offsets moved past the text the reply already had."""
    return [dataclasses.replace(r, offset=r.offset + by) for r in records] if by else list(records)


def merge_continuation(previous: dict[str, Any], new: dict[str, Any], base_chars: int = 0) -> dict[str, Any]:
    """The receipt of a continued reply: the first part's settings, every continuation, the totals. Token
    probabilities of the continuation join the first part's, their offsets counted from the reply's start."""
    merged = dict(previous)
    new = dict(new)
    probs = new.pop("token_probs", None)
    if isinstance(probs, dict):
        records = records_from_receipt(previous) + shifted(records_from_receipt({"token_probs": probs}), base_chars)
        merged["token_probs"] = receipt_field(records, int(probs.get("k") or TOP_K))
    merged["continuations"] = [*previous.get("continuations", []), new]
    merged["generated_tokens"] = int(previous.get("generated_tokens") or 0) + int(new.get("generated_tokens") or 0)
    merged["finish_reason"] = new.get("finish_reason", previous.get("finish_reason"))
    return merged

"""Notebook (completion) mode, for every front end: the model continues a document as raw text, no chat template.

A notebook is a conversation whose `sampling` JSON holds `"mode": "notebook"` (no schema change; it survives export
and import). Each Generate saves the whole document as a user message and streams the continuation into an assistant
reply under it, whose receipt says `mode: "completion"`; Continue extends that reply in place; Reproduce makes a new
continuation of the same document beside it.
"""

from __future__ import annotations

from typing import Any

from llamadesk.core.conversation.lifecycle import ReplyWriter, name_new_conversation
from llamadesk.core.conversation.plan import Plan
from llamadesk.core.conversation.turn import Turn
from llamadesk.core.history import History, StreamingReply
from llamadesk.core.history.models import Message

NOTEBOOK = "notebook"
MODE_KEY = "mode"  # in a conversation's sampling JSON
COMPLETION = "completion"  # the generation mode, and a notebook reply's receipt `mode`


def is_notebook_sampling(sampling: dict[str, Any] | None) -> bool:
    return (sampling or {}).get(MODE_KEY) == NOTEBOOK


def is_completion(message: Message) -> bool:
    """A notebook reply: the continuation of a document."""
    return (message.receipt or {}).get("mode") == COMPLETION


def document_plan(document: str) -> Plan:
    """What the engine gets in completion mode: the document, sent as raw text."""
    return Plan([{"role": "user", "content": document}])


def continuation_plan(history: History, reply: Message) -> Plan:
    """A notebook reply's prompt for Continue: the document it continued (its parent) and the text made so far."""
    document = history.get_message(reply.parent_id).content if reply.parent_id is not None else ""
    return Plan([{"role": "user", "content": document}, {"role": "assistant", "content": reply.content}])


def begin_document(history: History, cid: int, document: str, model: str | None) -> tuple[StreamingReply, Plan]:
    """Generate: saves the document as your message (naming a new conversation after it) and begins the reply that
    continues it. Raises LlamaDeskError (a full disk, a conversation that is not there)."""
    user = history.add_message(cid, "user", document)
    name_new_conversation(history, cid, document)
    history.update_conversation(cid, model=model)
    return history.begin_reply(cid, parent_id=user.id), document_plan(document)


def begin_again(history: History, cid: int, document_id: int) -> tuple[StreamingReply, Plan]:
    """Reproduce: a new continuation of a saved document, beside the ones kept."""
    document = history.get_message(document_id).content
    return history.begin_reply(cid, parent_id=document_id), document_plan(document)


def begin_completion_turn(history: History, cid: int, document: str, model: str | None) -> Turn:
    """Generate as one Turn, for a front end that runs its own loop (the CLI's `chat --complete`)."""
    reply, plan = begin_document(history, cid, document, model)
    return Turn(cid, ReplyWriter(reply), list(plan.messages), mode=COMPLETION)

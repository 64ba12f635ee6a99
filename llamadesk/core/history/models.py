"""The history's value types and their mapping from database rows and JSON columns."""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

log = logging.getLogger(__name__)

ROLES: Final = ("system", "user", "assistant")
STATUSES: Final = ("complete", "streaming", "interrupted", "cancelled", "error")
FINISH_STATUSES: Final = ("complete", "cancelled", "error")
SOURCES: Final = ("app", "server")  # conversations.source (schema v3)


class _Unset(enum.Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks a keyword argument as not given, where None is a meaningful value (no parent, no model)."""


@dataclass(frozen=True)
class Conversation:
    """One chat: its settings and the last message of the branch the user is looking at."""

    id: int
    title: str
    created_at: float
    updated_at: float
    model: str | None
    system_prompt: str
    sampling: dict[str, Any]
    pinned: bool
    leaf_message_id: int | None
    #: when it was moved to the trash; None for a conversation in the sidebar
    deleted_at: float | None = None
    #: where it came from: "app", or "server" (a request to LlamaDesk's OpenAI-compatible server)
    source: str = "app"


@dataclass(frozen=True)
class MessageImage:
    """An image a message refers to (schema v4's message_images): its name in the ImageStore and its shape.

    `data` is only set on an image read from an export file, until the import puts it in the store."""

    sha256: str
    mime: str
    width: int
    height: int
    data: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Message:
    """One message; `parent_id` links it into the conversation's tree of branches."""

    id: int
    conversation_id: int
    parent_id: int | None
    role: str
    content: str
    created_at: float
    status: str
    finish_reason: str | None
    receipt: dict[str, Any] | None
    #: the images attached to it, in order (ImageStore hashes); empty for most messages
    images: tuple[MessageImage, ...] = ()


@dataclass(frozen=True)
class FullConversation:
    """A conversation with every message of every branch, oldest first (parents before children)."""

    conversation: Conversation
    messages: list[Message]


@dataclass(frozen=True)
class SearchHit:
    """One search result; `message_id` is None when the conversation's title matched.

    `snippet` is the matching text with each matched word between MARK_START and MARK_END
    (see `search.split_marked`); `created_at` is the message's time, or the conversation's last activity for a
    title hit.
    """

    conversation_id: int
    message_id: int | None
    title: str
    snippet: str
    created_at: float
    role: str | None


MESSAGE_COLUMNS: Final = (
    "id, conversation_id, parent_id, role, content, created_at, status, finish_reason, receipt_json"
)
IMAGE_COLUMNS: Final = "sha256, mime, width, height"  # message_images, after message_id (schema v4)
CONVERSATION_COLUMNS: Final = (
    "id, title, created_at, updated_at, model, system_prompt, sampling_json, pinned, leaf_message_id, deleted_at,"
    " source"
)


def dump_json(value: Mapping[str, Any]) -> str:
    """The JSON text stored in a *_json column: keys sorted so equal settings give equal text."""
    return json.dumps(dict(value), ensure_ascii=False, sort_keys=True)


def load_json(text: str | None, what: str) -> dict[str, Any] | None:
    """A JSON column read back; None for NULL and for damaged text (logged), so one bad row breaks nothing."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        log.warning("Ignoring JSON that is not a readable object in %s: %.80r", what, text)
        return None
    return value


# Rows are plain tuples read by position (the order of *_COLUMNS above): sqlite3.Row and its look-up by name cost
# a noticeable part of reading a 5,000-message conversation.


def conversation_from_row(row: Sequence[Any]) -> Conversation:
    """A Conversation from a row selected with CONVERSATION_COLUMNS."""
    cid, title, created_at, updated_at, model, system_prompt, sampling_json, pinned, leaf, deleted_at, source = row
    return Conversation(
        id=cid,
        title=title,
        created_at=created_at,
        updated_at=updated_at,
        model=model,
        system_prompt=system_prompt,
        sampling=load_json(sampling_json, f"conversation {cid}") or {},
        pinned=bool(pinned),
        leaf_message_id=leaf,
        deleted_at=deleted_at,
        source=source,
    )


def message_from_row(row: Sequence[Any]) -> Message:
    """A Message from a row selected with MESSAGE_COLUMNS."""
    mid, cid, parent_id, role, content, created_at, status, finish_reason, receipt_json = row
    receipt = None if receipt_json is None else load_json(receipt_json, f"message {mid}")
    return Message(mid, cid, parent_id, role, content, created_at, status, finish_reason, receipt)

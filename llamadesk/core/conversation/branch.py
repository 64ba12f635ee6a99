"""The branch a front end shows: the messages from the root to the conversation's leaf, held here so that the prompt
of the next reply is planned from it and the window's list model only draws it.

Built from the history once when a conversation is opened; afterwards a reply asked for adds only the few messages
below what is held (no reading of a long history), streamed text is appended in place, and a reply's end updates its
message. The window's rows are these messages (the window makes them with its own subclass, which adds what only
drawing needs), so there is one copy of a long conversation, not two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from llamadesk.core.conversation.tree import Tree
from llamadesk.core.conversation.turn import left_out
from llamadesk.core.history import History
from llamadesk.core.history.models import Message as StoredMessage
from llamadesk.core.history.models import MessageImage

if TYPE_CHECKING:
    from llamadesk.core.conversation.turn import Turn

TAIL_LOOKUP = 50  # messages read one by one below the branch held before reading the whole branch instead
STATS_KEYS = ("generated_tokens", "tokens_per_s", "ttft_s", "prompt_tokens", "reasoning_s")


@dataclass
class BranchMessage:
    """One message of the branch: `stats` are the reply's figures (from its receipt), or empty."""

    message_id: int
    role: str
    content: str
    status: str = "complete"
    finish_reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    parent_id: int | None = None
    alternative: int = 1  # this message's place among its siblings (regenerations, edits), from 1
    alternatives: int = 1
    excluded: bool = False  # left out of the last prompt by the context policy
    sources: tuple[dict[str, Any], ...] = ()  # what a reply's citations [1], [2] refer to (its prompt's quotes)
    tools: tuple[dict[str, Any], ...] = ()  # the calls its tool loop ran, with their results (the receipt's)
    images: tuple[MessageImage, ...] = ()  # the images attached: every later turn's prompt sends them again


def stats_from_receipt(receipt: dict[str, Any] | None) -> dict[str, Any]:
    """The figures of a reply, whether the receipt nests them under "stats" or holds them at the top."""
    if not receipt:
        return {}
    nested = receipt.get("stats")
    if isinstance(nested, dict):
        return nested
    return {k: receipt[k] for k in STATS_KEYS if k in receipt}


def cited(receipt: dict[str, Any] | None) -> tuple[dict[str, Any], ...]:
    """The numbered sources a reply's prompt quoted (core/conversation/sources.py records), in citation order."""
    records = (receipt or {}).get("sources")
    if not isinstance(records, list):
        return ()
    return tuple(r for r in records if isinstance(r, dict) and isinstance(r.get("n"), int) and r.get("path"))


def called(receipt: dict[str, Any] | None) -> tuple[dict[str, Any], ...]:
    """The tool calls a reply's loop ran (or denied), with their results: the receipt's `tool_calls` that have one."""
    records = (receipt or {}).get("tool_calls")
    if not isinstance(records, list):
        return ()
    return tuple(r for r in records if isinstance(r, dict) and "result" in r)


def stored_id(message: StoredMessage | BranchMessage) -> int:
    return message.message_id if isinstance(message, BranchMessage) else message.id


def last_left_out(branch: Sequence[StoredMessage | BranchMessage]) -> set[int]:
    """The ids the last reply on `branch` had left out of its prompt (messages held carry it as their marks)."""
    for k in range(len(branch) - 1, -1, -1):
        message = branch[k]
        if message.role != "assistant":
            continue
        if isinstance(message, BranchMessage):
            return {b.message_id for b in branch[:k] if isinstance(b, BranchMessage) and b.excluded}
        return left_out(message.receipt or {}, [stored_id(b) for b in branch[:k]])
    return set()


def excluded_for(branch: list[StoredMessage], streaming: Mapping[int, Turn]) -> set[int]:
    """The ids the last prompt of this branch left out: from the reply in flight, else the last receipt."""
    for k in range(len(branch) - 1, -1, -1):
        m = branch[k]
        if m.id in streaming:
            return set(streaming[m.id].excluded_ids)
        if m.role == "assistant":
            return left_out(m.receipt or {}, [b.id for b in branch[:k]])
    return set()


def stored_branch(history: History, cid: int, message_id: int | None) -> list[StoredMessage]:
    """The stored messages from the root down to `message_id` (None: the conversation's leaf)."""
    branch = history.messages(cid)
    if message_id is None:
        return list(branch)
    ids = [m.id for m in branch]
    if message_id in ids:
        return list(branch[: ids.index(message_id) + 1])
    return list(Tree.build(history.all_messages(cid)).branch(message_id))


M = TypeVar("M", bound=BranchMessage)


class ShownBranch(Generic[M]):
    """The branch of the conversation a front end shows, kept up to date as replies are asked for and stream."""

    def __init__(self, make: Callable[..., M]) -> None:
        self._make = make  # the front end's message type: BranchMessage, or its own subclass
        self.cid: int | None = None
        self.messages: list[M] = []
        self._index: dict[int, int] = {}

    # --- reading ---------------------------------------------------------------------------------------------------
    def find(self, message_id: int) -> int:
        i = self._index.get(message_id, -1)
        return i if 0 <= i < len(self.messages) and self.messages[i].message_id == message_id else -1

    def get(self, message_id: int) -> M | None:
        i = self.find(message_id)
        return self.messages[i] if i >= 0 else None

    def to(self, history: History, message_id: int | None) -> list[StoredMessage | BranchMessage]:
        """The messages from the root down to `message_id` (None: the whole branch held): those held plus the few
        stored below them."""
        if self.cid is None:
            return []
        if self.messages:
            if message_id is None:
                return list(self.messages)
            tail, current = self._walk_up(history, message_id)
            if current is not None and self.find(current) >= 0:
                return [*self.messages[: self.find(current) + 1], *reversed(tail)]
            if current is None:
                return list(reversed(tail))
        return list(stored_branch(history, self.cid, message_id))

    # --- changes ---------------------------------------------------------------------------------------------------
    def clear(self) -> None:
        self.cid = None
        self._set([])

    def load(self, history: History, cid: int, streaming: Mapping[int, Turn]) -> None:
        """The conversation's branch from the history, each message with its place among its alternatives; replies
        in flight (by message id) with their text so far. Raises LlamaDeskError; then nothing is held."""
        self.clear()
        leaf = history.get_conversation(cid).leaf_message_id
        tree = Tree.build(history.all_messages(cid))
        branch = tree.branch(leaf)
        excluded = excluded_for(branch, streaming)
        messages: list[M] = []
        for m in branch:
            receipt = m.receipt or {}
            message = self._make(m.id, m.role, m.content, m.status, m.finish_reason, stats_from_receipt(receipt))
            message.error = str(receipt.get("error") or "")
            message.parent_id = m.parent_id
            message.alternative, message.alternatives = tree.alternative(m)
            message.excluded = m.id in excluded
            message.sources = cited(receipt)
            message.tools = called(receipt)
            message.images = m.images
            if m.id in streaming:
                message.content, message.status = streaming[m.id].reply.content, "streaming"
                message.sources = cited(streaming[m.id].extra)
            messages.append(message)
        self.cid = cid
        self._set(messages)

    def after_request(self, history: History, turn: Turn) -> list[int] | None:
        """A reply was asked for: the messages held down to where the new ones hang (your message, the reply), then
        the new ones, the reply streaming. Returns the indexes of messages held before whose left-out mark changed;
        None (nothing changed) when the reply does not hang below what is held."""
        reply_id = turn.reply.message_id
        tail, current = self._walk_up(history, reply_id)
        if current is None or self.find(current) < 0:
            return None
        messages = self.messages[: self.find(current) + 1]
        for m in reversed(tail):
            siblings = [s.id for s in history.children(turn.cid, m.parent_id)]
            message = self._make(m.id, m.role, m.content, m.status, m.finish_reason, parent_id=m.parent_id)
            message.alternative, message.alternatives = siblings.index(m.id) + 1, len(siblings)
            message.images = m.images
            messages.append(message)
        kept = self.find(current) + 1
        self._set(messages)
        self.update(reply_id, status="streaming", content=turn.reply.content, sources=cited(turn.extra))
        return [i for i in self.set_excluded(turn.excluded_ids) if i < kept]

    def append_text(self, message_id: int, text: str) -> bool:
        message = self.get(message_id)
        if message is None or not text:
            return False
        message.content += text
        return True

    def update(self, message_id: int, **changes: Any) -> bool:
        message = self.get(message_id)
        if message is None:
            return False
        for name, value in changes.items():
            setattr(message, name, value)
        return True

    def set_excluded(self, message_ids: set[int]) -> list[int]:
        """Marks the messages the context policy left out of the prompt (unmarks the others); returns the indexes
        that changed."""
        changed = []
        for i, message in enumerate(self.messages):
            excluded = message.message_id in message_ids
            if message.excluded != excluded:
                message.excluded = excluded
                changed.append(i)
        return changed

    def _set(self, messages: list[M]) -> None:
        self.messages = messages
        self._index = {m.message_id: i for i, m in enumerate(messages)}

    def _walk_up(self, history: History, start: int | None) -> tuple[list[StoredMessage], int | None]:
        """Stored messages from `start` up to the first one held (at most TAIL_LOOKUP), and that one's id."""
        tail: list[StoredMessage] = []
        current = start
        while current is not None and self.find(current) < 0 and len(tail) < TAIL_LOOKUP:
            message = history.get_message(current)
            tail.append(message)
            current = message.parent_id
        return tail, current

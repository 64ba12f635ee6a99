"""The rows of a conversation's branch: built from the history, or from the rows shown plus a few look-ups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llamadesk.core.conversation.tree import Tree
from llamadesk.core.conversation.turn import left_out
from llamadesk.core.history import History
from llamadesk.core.history.models import Message as StoredMessage
from llamadesk.ui.chat.model import ChatRow, MessageListModel, stats_from_receipt

if TYPE_CHECKING:
    from llamadesk.core.conversation.pending import PendingReply

TAIL_LOOKUP = 50  # messages read one by one below the rows shown before reading the whole branch instead


def stored_id(message: StoredMessage | ChatRow) -> int:
    return message.message_id if isinstance(message, ChatRow) else message.id


def last_left_out(branch: Sequence[StoredMessage | ChatRow]) -> set[int]:
    """The ids the last reply on `branch` had left out of its prompt (rows shown carry it as their marks)."""
    for k in range(len(branch) - 1, -1, -1):
        message = branch[k]
        if message.role != "assistant":
            continue
        if isinstance(message, ChatRow):
            return {b.message_id for b in branch[:k] if isinstance(b, ChatRow) and b.excluded}
        return left_out(message.receipt or {}, [stored_id(b) for b in branch[:k]])
    return set()


def excluded_for(branch: list[StoredMessage], streaming: dict[int, PendingReply]) -> set[int]:
    """The ids the last prompt of this branch left out: from the reply in flight, else the last receipt."""
    for k in range(len(branch) - 1, -1, -1):
        m = branch[k]
        if m.id in streaming:
            return set(streaming[m.id].excluded_ids)
        if m.role == "assistant":
            return left_out(m.receipt or {}, [b.id for b in branch[:k]])
    return set()


def rows_of_branch(history: History, cid: int, streaming: dict[int, PendingReply]) -> list[ChatRow]:
    """The branch shown, each message with its place among its alternatives; replies in flight show live text."""
    leaf = history.get_conversation(cid).leaf_message_id
    tree = Tree.build(history.all_messages(cid))
    branch = tree.branch(leaf)
    excluded = excluded_for(branch, streaming)
    rows: list[ChatRow] = []
    for m in branch:
        receipt = m.receipt or {}
        row = ChatRow(m.id, m.role, m.content, m.status, m.finish_reason, stats_from_receipt(receipt))
        row.error = str(receipt.get("error") or "")
        row.parent_id = m.parent_id
        row.alternative, row.alternatives = tree.alternative(m)
        row.excluded = m.id in excluded
        if m.id in streaming:
            row.content, row.status = streaming[m.id].reply.content, "streaming"
        rows.append(row)
    return rows


def _walk_up(history: History, start: int | None, shown: MessageListModel) -> tuple[list[StoredMessage], int | None]:
    """Messages from `start` up to the first one on screen (at most TAIL_LOOKUP), and that one's id."""
    tail: list[StoredMessage] = []
    current = start
    while current is not None and shown.find(current) < 0 and len(tail) < TAIL_LOOKUP:
        message = history.get_message(current)
        tail.append(message)
        current = message.parent_id
    return tail, current


def rows_after_request(history: History, cid: int, reply_id: int, shown: MessageListModel) -> list[ChatRow] | None:
    """The rows once a reply was asked for: those shown down to where the new messages hang (your message,
    the reply), then the new ones. None when the reply does not hang below the rows shown."""
    tail, current = _walk_up(history, reply_id, shown)
    if current is None or shown.find(current) < 0:
        return None
    rows = shown.rows()[: shown.find(current) + 1]
    for m in reversed(tail):
        siblings = [s.id for s in history.children(cid, m.parent_id)]
        row = ChatRow(m.id, m.role, m.content, m.status, m.finish_reason, parent_id=m.parent_id)
        row.alternative, row.alternatives = siblings.index(m.id) + 1, len(siblings)
        rows.append(row)
    return rows


def branch_to(
    history: History, cid: int, message_id: int | None, shown: MessageListModel | None
) -> list[StoredMessage | ChatRow]:
    """The messages from the root down to `message_id` (None: the branch shown). With `shown` (the rows of this
    conversation on screen) those rows are used plus the few messages below them: no reading of a long history."""
    if shown is not None and shown.rowCount():
        if message_id is None:
            return list(shown.rows())
        tail, current = _walk_up(history, message_id, shown)
        if current is not None and shown.find(current) >= 0:
            return [*shown.rows()[: shown.find(current) + 1], *reversed(tail)]
        if current is None:
            return list(reversed(tail))
    branch = history.messages(cid)
    if message_id is None:
        return list(branch)
    ids = [m.id for m in branch]
    if message_id in ids:
        return list(branch[: ids.index(message_id) + 1])
    return list(Tree.build(history.all_messages(cid)).branch(message_id))

"""The branch a front end shows, held in core (ShownBranch), on a real SQLite history: what a reply asked for adds,
what the next prompt is planned from, and that it reads only the few messages below what it holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llamadesk.core.conversation.branch import BranchMessage, ShownBranch, last_left_out, stored_branch
from llamadesk.core.conversation.lifecycle import ReplyWriter
from llamadesk.core.conversation.turn import Turn
from llamadesk.core.history import History


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "h.sqlite3")
    yield h
    h.close()


def exchange(history: History, cid: int, text: str, answer: str, parent: int | None = None) -> tuple[int, int]:
    kwargs = {} if parent is None else {"parent_id": parent}
    user = history.add_message(cid, "user", text, **kwargs)
    reply = history.add_message(cid, "assistant", answer, parent_id=user.id)
    return user.id, reply.id


def test_loads_the_leafs_branch_with_alternatives_and_follows_a_new_reply(history: History) -> None:
    cid = history.create_conversation("c").id
    u1, a1 = exchange(history, cid, "one", "first")
    u2, a2 = exchange(history, cid, "two", "second", parent=a1)
    other = history.add_message(cid, "assistant", "first, again", parent_id=u1)  # an alternative of a1
    history.set_leaf(cid, a2)
    branch: ShownBranch[BranchMessage] = ShownBranch(BranchMessage)
    branch.load(history, cid, {})
    assert [m.message_id for m in branch.messages] == [u1, a1, u2, a2]
    assert (branch.get(a1).alternative, branch.get(a1).alternatives) == (1, 2)  # type: ignore[union-attr]
    assert branch.to(history, None) == branch.messages
    assert [m.message_id for m in branch.to(history, a1)] == [u1, a1]
    assert [getattr(m, "id", None) for m in branch.to(history, other.id)][-1] == other.id  # another branch: stored

    # A reply asked for below what is held: your message and the reply are added, the reply streaming.
    user = history.add_message(cid, "user", "three", parent_id=a2)
    turn = Turn(cid, ReplyWriter.begin(history, cid, parent_id=user.id), excluded_ids={u1, a1})
    marked = branch.after_request(history, turn)
    reply_id = turn.reply.message_id
    assert [m.message_id for m in branch.messages] == [u1, a1, u2, a2, user.id, reply_id]
    assert branch.get(reply_id).status == "streaming"  # type: ignore[union-attr]
    assert marked == [0, 1] and last_left_out(branch.messages) == {u1, a1}
    assert branch.append_text(reply_id, "Hel") and branch.append_text(reply_id, "lo")
    assert branch.update(reply_id, status="complete")
    assert (branch.get(reply_id).content, branch.get(reply_id).status) == ("Hello", "complete")  # type: ignore[union-attr]
    assert not branch.append_text(999, "x")  # not held: nothing to change


def test_a_reply_elsewhere_is_not_added_and_an_empty_branch_reads_the_history(history: History) -> None:
    cid = history.create_conversation("c").id
    u1, a1 = exchange(history, cid, "one", "first")
    branch: ShownBranch[BranchMessage] = ShownBranch(BranchMessage)
    branch.load(history, cid, {})
    second = history.create_conversation("d").id
    u, _ = exchange(history, second, "elsewhere", "x")
    turn = Turn(second, ReplyWriter.begin(history, second, parent_id=u))
    assert branch.after_request(history, turn) is None
    assert [m.message_id for m in branch.messages] == [u1, a1]
    branch.clear()
    assert branch.to(history, None) == []
    assert [m.id for m in stored_branch(history, cid, None)] == [u1, a1]

"""Branches in the real window: regenerate keeps alternatives (‹ 2/3 ›), edit branches, continue, the tree."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.conversation.tree import Tree, outline, snippet
from llamadesk.core.history import History
from llamadesk.core.history.models import Message
from llamadesk.ui.chat.branch_dialog import BranchDialog
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000


def send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    edit = window.composer.edit
    edit.setFocus()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    wait_idle(qtbot, window)


def wait_idle(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)


def click_action(qtbot: QtBot, window: MainWindow, row: int, action: str) -> None:
    view = window.chat_view
    index = window.chat_model.index(row, 0)
    view.scrollTo(index)
    rect = view.delegate.action_rect(index, view.visualRect(index), action)
    assert rect is not None, f"{action} is not offered on row {row}"
    pos = rect.center().toPoint()
    qtbot.mouseMove(view.viewport(), pos)  # hovering shows the row's actions
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_regenerate_keeps_every_alternative_and_the_navigator_switches(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    send(qtbot, window, "tell me something")
    cid = window.current_cid
    assert cid is not None
    user = window.chat_model.row(0)
    for _ in range(2):
        qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)  # Ctrl+R
        assert window.is_generating
        wait_idle(qtbot, window)

    replies = history.children(cid, user.message_id)
    assert [m.role for m in replies] == ["assistant"] * 3 and all(m.status == "complete" for m in replies)
    shown = window.chat_model.row(1)
    assert (shown.message_id, shown.alternative, shown.alternatives) == (replies[2].id, 3, 3)
    assert window.chat_model.rowCount() == 2

    click_action(qtbot, window, 1, "prev")
    shown = window.chat_model.row(1)
    assert (shown.message_id, shown.alternative) == (replies[1].id, 2)
    assert shown.content == replies[1].content
    assert history.get_conversation(cid).leaf_message_id == replies[1].id

    view = window.chat_view
    view.setFocus()
    view.setCurrentIndex(window.chat_model.index(1, 0))
    qtbot.keyClick(view, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    assert window.chat_model.row(1).message_id == replies[0].id
    assert window.chat_view.delegate.action_rect(window.chat_model.index(1, 0), view.visualRect(
        window.chat_model.index(1, 0)), "prev") is not None  # fmt: skip
    qtbot.keyClick(view, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    assert window.chat_model.row(1).message_id == replies[1].id

    send(qtbot, window, "and then?")  # the next message continues the branch shown
    branch = history.messages(cid)
    assert [m.id for m in branch[:2]] == [user.message_id, replies[1].id] and len(branch) == 4


def test_editing_a_message_starts_a_new_branch_and_keeps_the_old(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    send(qtbot, window, "first question")
    cid = window.current_cid
    assert cid is not None
    send(qtbot, window, "second question")
    old_branch = [m.id for m in history.messages(cid)]

    click_action(qtbot, window, 2, "edit")
    composer = window.composer
    assert composer.editing_id == old_branch[2] and composer.text() == "second question"
    assert composer.edit_banner.isVisible()
    composer.edit.selectAll()
    qtbot.keyClicks(composer.edit, "second question, better")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    wait_idle(qtbot, window)

    assert composer.editing_id is None and not composer.edit_banner.isVisible()
    branch = history.messages(cid)
    assert [m.id for m in branch[:2]] == old_branch[:2]  # same start
    assert branch[2].content == "second question, better" and branch[2].parent_id == old_branch[1]
    assert branch[3].role == "assistant" and branch[3].parent_id == branch[2].id
    edited = window.chat_model.row(2)
    assert (edited.alternative, edited.alternatives) == (2, 2)

    click_action(qtbot, window, 2, "prev")  # the old branch is intact
    assert [r.message_id for r in window.chat_model.rows()] == old_branch


def test_escape_cancels_an_edit_and_brings_your_draft_back(window: MainWindow, qtbot: QtBot) -> None:
    send(qtbot, window, "hello")
    qtbot.keyClicks(window.composer.edit, "half a thought")
    window.chat_view.run_action("edit", window.chat_model.row(0).message_id)
    assert window.composer.text() == "hello"
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
    assert window.composer.editing_id is None and window.composer.text() == "half a thought"


def test_continue_extends_a_reply_that_hit_the_token_limit(
    endless_window: MainWindow, history: History, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = endless_window
    window.panel.rows["max_tokens"].spin.setValue(8)
    send(qtbot, window, "a long story please")
    cid = window.current_cid
    assert cid is not None
    reply = window.chat_model.row(1)
    assert reply.finish_reason == "length"
    first_text = reply.content
    sent: list[Any] = []
    generate = window.host.generate
    monkeypatch.setattr(
        window.host, "generate", lambda msgs, params, **kw: sent.append((msgs, kw)) or generate(msgs, params, **kw)
    )

    click_action(qtbot, window, 1, "continue")
    wait_idle(qtbot, window)

    assert sent[0][0][-1] == {"role": "assistant", "content": first_text}  # the unfinished turn goes to the model
    assert sent[0][1]["mode"] == "continue"  # rendered open: the engine extends it instead of answering it
    stored = history.messages(cid)
    assert len(stored) == 2 and stored[1].id == reply.message_id  # extended in place, not a new message
    assert stored[1].content.startswith(first_text) and len(stored[1].content) > len(first_text)
    receipt = stored[1].receipt or {}
    assert len(receipt["continuations"]) == 1
    assert receipt["generated_tokens"] == 8 + receipt["continuations"][0]["generated_tokens"]
    assert receipt["mode"] == "chat" and receipt["continuations"][0]["mode"] == "continue"
    assert window.chat_model.row(1).content == stored[1].content


def test_the_branch_tree_switches_the_branch_shown(window: MainWindow, history: History, qtbot: QtBot) -> None:
    send(qtbot, window, "root question")
    cid = window.current_cid
    assert cid is not None
    first_reply = window.chat_model.row(1).message_id
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    wait_idle(qtbot, window)
    second_reply = window.chat_model.row(1).message_id
    assert second_reply != first_reply

    qtbot.keyClick(window, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dialog = window.chat.branch_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.leaf_item is not None and dialog.view.currentIndex() == dialog.leaf_item.index()
    item = dialog.find_item(first_reply)
    assert item is not None and item.parent() is not None and item.parent().text() == "Alternative 1 of 2"
    dialog.view.setCurrentIndex(item.index())
    qtbot.keyClick(dialog.view, Qt.Key.Key_Return)
    assert not dialog.isVisible()
    assert window.chat_model.row(1).message_id == first_reply
    assert history.get_conversation(cid).leaf_message_id == first_reply


def _chain(n: int) -> list[Message]:
    return [Message(i, 1, i - 1 if i > 1 else None, "user" if i % 2 else "assistant", f"m{i}", 0.0, "complete", None,
                    None) for i in range(1, n + 1)]  # fmt: skip


def test_the_outline_of_a_deep_chat_is_flat_and_needs_no_recursion() -> None:
    messages = _chain(5000)
    messages.append(Message(5001, 1, 10, "assistant", "alt", 0.0, "complete", None, None))
    tree = Tree.build(messages)
    nodes = outline(tree)
    assert len(nodes) == 10  # m1..m10 at the top; m10 has two replies
    assert [label for label, _ in nodes[-1].alternatives] == ["Alternative 1 of 2", "Alternative 2 of 2"]
    assert len(nodes[-1].alternatives[0][1]) == 4990 and nodes[-1].alternatives[1][1][0].message.id == 5001
    assert [m.id for m in tree.branch(5001)][-3:] == [9, 10, 5001]
    assert tree.alternative(messages[-1]) == (2, 2)


MARKDOWN_REPLY = """## Sorting

Here is **the fastest** way, with `sorted()` and *no* loop:

```python
def by_age(people):
    return sorted(people, key=lambda p: p.age)
```

| Name | Age |
|--------|:---:|
| Ann | 31 |

> Keep __my_key__ and snake_case_names as they are.
"""


def test_the_branch_tree_shows_markdown_as_one_line_of_plain_text(qtbot: QtBot) -> None:
    question = Message(1, 1, None, "user", "How do I *sort* people?", 0.0, "complete", None, None)
    reply = Message(2, 1, 1, "assistant", MARKDOWN_REPLY, 0.0, "complete", None, None)
    dialog = BranchDialog(Tree.build([question, reply]), 2)
    qtbot.addWidget(dialog)
    assert snippet(reply, limit=1000) == (
        "Assistant: Sorting Here is the fastest way, with sorted() and no loop: def by_age(people): return "
        "sorted(people, key=lambda p: p.age) Name · Age Ann · 31 Keep my_key and snake_case_names as they are."
    )
    line = dialog.find_item(2)
    assert line is not None
    text = line.text()
    assert "\n" not in text and text.startswith("Assistant: Sorting Here is the fastest way")
    for syntax in ("```", "|", "---", "**", "`", "##", "> "):
        assert syntax not in text, f"{syntax!r} is Markdown, not text"
    question_line = dialog.find_item(1)
    assert question_line is not None and question_line.text() == "You: How do I sort people?"
    assert line.toolTip().startswith("## Sorting")  # the tooltip keeps the message as written

"""A thinking model's reply in the window: its reasoning folded to one line that says how long it thought, shown
quoted on demand (footer action or context menu), left out of the next prompt; real window, real SQLite."""

from __future__ import annotations

from collections.abc import Callable

from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.chat.delegate import row_actions
from llamadesk.ui.chat.model import ShownTextRole
from llamadesk.ui.main_window import MainWindow

REPLY = "<think>\nThe user asks for 2+2.\nThat is **4**.\n</think>\n\nIt is 4."


def test_reasoning_is_folded_shown_on_demand_and_left_out_of_the_next_prompt(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot
) -> None:
    conv = history.create_conversation("Sums")
    history.add_message(conv.id, "user", "What is 2+2?")
    reply = history.begin_reply(conv.id)
    reply.append(REPLY)
    reply.finish(receipt={"reasoning_s": 2.46, "generated_tokens": 20})
    window = make_window(auto_load=False)
    window.refresh_conversations()
    window.select_conversation(conv.id)
    index = window.chat_model.index(1, 0)
    folded = window.chat_model.data(index, ShownTextRole)
    assert folded == "*Thought for 2.5 s*\n\nIt is 4."  # the reasoning is not in the bubble, the answer is
    row = window.chat_model.row(1)
    assert row_actions(row)[0] == "reasoning"

    window.chat_view.actionRequested.emit("reasoning", row.message_id)  # what the footer's "Reasoning" does
    shown = window.chat_model.data(index, ShownTextRole)
    assert shown.startswith("*Thought for 2.5 s*\n\n> The user asks for 2+2.\n> That is **4**.")
    assert shown.endswith("It is 4.")
    rect = window.chat_view.visualRect(index)
    doc, _info, _current = window.chat_view.delegate.document(row, window.chat_view.delegate.text_width(rect.width()))
    assert "The user asks for 2+2." in doc.toPlainText()  # rendered inert markdown: a quote, **4** in bold
    window.chat_view.actionRequested.emit("reasoning", row.message_id)
    assert window.chat_model.data(index, ShownTextRole) == folded

    sent = window.session.prompt_messages(conv.id, "")
    assert sent == [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]
    assert history.get_message(row.message_id).content == REPLY  # every part stays in the history


def test_a_reply_still_thinking_says_so(make_window: Callable[..., MainWindow], history: History) -> None:
    conv = history.create_conversation("Open")
    history.add_message(conv.id, "user", "Think hard")
    reply = history.begin_reply(conv.id)
    reply.append("<think>weighing the options")
    reply.finish(status="cancelled", finish_reason="cancelled")
    window = make_window(auto_load=False)
    window.refresh_conversations()
    window.select_conversation(conv.id)
    assert window.chat_model.data(window.chat_model.index(1, 0), ShownTextRole) == "*Stopped while thinking*\n\n"
    assert window.chat_model.row(1).content == "<think>weighing the options"

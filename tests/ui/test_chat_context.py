"""The context meter and the overflow policy in the real window: what was left out is marked in the chat."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.chat.model import EXCLUDED_NOTE, FooterRole
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000
LOAD_TIMEOUT_MS = 60_000
TURN = "hello world model chat reply token " * 12  # ~430 characters, ~85 tokens on the tiny model


def reload_with_context(window: MainWindow, qtbot: QtBot, n_ctx: int) -> None:
    window.panel.set_n_ctx(n_ctx)
    qtbot.mouseClick(window.picker.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: not window.is_loading and window.model_info is not None and window.model_info.n_ctx == n_ctx,
        timeout=LOAD_TIMEOUT_MS,
    )


def long_conversation(history: History, turns: int) -> int:
    conv = history.create_conversation("Long one")
    for i in range(turns):
        history.add_message(conv.id, "user", f"question {i} {TURN}")
        history.add_message(conv.id, "assistant", f"answer {i} {TURN}")
    return conv.id


def send_and_wait(window: MainWindow, qtbot: QtBot, text: str) -> None:
    window.send(text)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)


def test_the_meter_shows_tokens_used_of_the_context(window: MainWindow, qtbot: QtBot) -> None:
    meter = window.context_meter
    send_and_wait(window, qtbot, "hello there")
    n_ctx = window.model_info.n_ctx  # type: ignore[union-attr]
    assert meter.bar.isVisibleTo(window) and meter.bar.maximum() == n_ctx and 0 < meter.bar.value() < n_ctx
    assert meter.label.text() == f"{meter.used} / {n_ctx} tokens" and "context tokens" in meter.toolTip()
    assert meter.bar.accessibleName() == "Context used"


def test_dropping_the_oldest_turns_keeps_the_system_prompt_and_marks_what_was_left_out(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    reload_with_context(window, qtbot, 768)
    cid = long_conversation(history, 8)
    window.select_conversation(cid)
    window.panel.system_prompt_edit.setPlainText("You are a careful assistant.")
    policy = window.panel.context_box.policy_combo
    policy.setCurrentIndex(policy.findData("drop_oldest"))
    policy.activated.emit(policy.currentIndex())
    assert window.prefs.overflow_policy == "drop_oldest"
    send_and_wait(window, qtbot, "the newest question")

    reply = history.messages(cid)[-1]
    assert reply.status == "complete", reply.receipt
    receipt = reply.receipt or {}
    branch = history.messages(cid)
    (start, end), = receipt["excluded_spans"]  # one run, from the first message: whole, oldest turns
    assert start == 0 and end % 2 == 0 and receipt["excluded_count"] == end
    excluded = [m.id for m in branch[:end]]
    assert receipt["prompt_tokens"] < 768 and receipt["context_policy"] == "drop_oldest"
    assert receipt["system_prompt"] == "You are a careful assistant."
    rows = window.chat_model.rows()
    assert [r.excluded for r in rows] == [r.message_id in excluded for r in rows]
    first = window.chat_model.index(0, 0)
    assert rows[0].excluded and EXCLUDED_NOTE in window.chat_model.data(first, Qt.ItemDataRole.AccessibleTextRole)
    assert not rows[-2].excluded and not rows[-1].excluded
    assert window.chat_model.data(first, FooterRole) == ""  # the note is drawn in the footer line beside it
    assert "left out of the prompt" in window.statusBar().currentMessage() or window.statusBar().currentMessage()

    window.select_conversation(None)
    window.select_conversation(cid)  # the marks come back from the receipt
    assert [r.excluded for r in window.chat_model.rows()] == [r.message_id in excluded for r in rows]


def test_dropping_the_middle_keeps_the_first_turn(window: MainWindow, history: History, qtbot: QtBot) -> None:
    reload_with_context(window, qtbot, 2048)
    cid = long_conversation(history, 8)
    window.select_conversation(cid)
    window.panel.context_box.set_policy("drop_middle")
    window.panel.context_box.policyChanged.emit("drop_middle")
    send_and_wait(window, qtbot, "the newest question")
    reply = history.messages(cid)[-1]
    assert reply.status == "complete"
    branch = history.messages(cid)
    (start, end), = (reply.receipt or {})["excluded_spans"]
    excluded = {m.id for m in branch[start:end]}
    assert branch[0].id not in excluded and branch[1].id not in excluded  # the first turn stays
    assert branch[2].id in excluded and branch[-2].id not in excluded


def test_stop_refuses_a_conversation_that_no_longer_fits(window: MainWindow, history: History, qtbot: QtBot) -> None:
    reload_with_context(window, qtbot, 768)
    cid = long_conversation(history, 8)
    window.select_conversation(cid)
    assert window.panel.context_box.policy().value == "stop"
    qtbot.waitUntil(lambda: window.context_meter.used > 768)  # the meter already says it is over
    assert "no longer fits" in window.context_meter.toolTip()
    send_and_wait(window, qtbot, "one more")
    reply = history.messages(cid)[-1]
    assert reply.status == "error" and "context" in (reply.receipt or {}).get("error", "")

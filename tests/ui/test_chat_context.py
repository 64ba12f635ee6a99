"""The context meter and the overflow policy in the real window: what was left out is marked in the chat."""

from __future__ import annotations

import pytest
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


def test_plans_leave_out_whole_turns_and_record_them_as_spans() -> None:
    from llamadesk.ui.chat.context import Entry, OverflowPolicy, ids_in_spans, plan_prompt

    entries = [Entry(100 + i, "user" if i % 2 == 0 else "assistant", "x" * 100, i) for i in range(10)]
    fits = plan_prompt("sys", entries, policy=OverflowPolicy.DROP_OLDEST, n_ctx=10_000, reserve=10)
    assert fits.excluded == set() and len(fits.messages) == 11 and fits.spans == []
    oldest = plan_prompt("sys", entries, policy=OverflowPolicy.DROP_OLDEST, n_ctx=200, reserve=10,
                         tokens_per_char=0.5)  # fmt: skip
    assert oldest.messages[0] == {"role": "system", "content": "sys"}
    assert oldest.spans == [[0, 8]] and oldest.excluded == {100 + i for i in range(8)}
    middle = plan_prompt("", entries, policy=OverflowPolicy.DROP_MIDDLE, n_ctx=300, reserve=10, tokens_per_char=0.5)
    assert middle.spans == [[2, 8]] and len(middle.messages) == 4
    stop = plan_prompt("", entries, policy=OverflowPolicy.STOP, n_ctx=100, reserve=10, tokens_per_char=0.5)
    assert stop.excluded == set() and len(stop.messages) == 10
    again = plan_prompt("", entries, policy=OverflowPolicy.STOP, n_ctx=0, reserve=0, excluded={100, 101})
    assert len(again.messages) == 8 and again.spans == [[0, 2]]  # a reproduction leaves out the same
    ids = [100 + i for i in range(10)]
    assert ids_in_spans(ids, [[0, 2], [5, 6]]) == {100, 101, 105}
    assert ids_in_spans(ids, "nonsense") == set() and ids_in_spans(ids, [[0], ["a", 2]]) == set()


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_middle"])
def test_turns_left_out_stay_left_out_so_the_start_of_the_prompt_is_reused(policy: str) -> None:
    from llamadesk.ui.chat.context import Entry, OverflowPolicy, plan_prompt

    def history_of_sends(sticky: bool) -> list[set[int]]:
        entries: list[Entry] = []
        sent: list[set[int]] = []
        for i in range(60):
            entries.append(Entry(100 + i, "user" if i % 2 == 0 else "assistant", "x" * 100, i))
            if i % 2 == 0:  # a prompt after each of your messages
                plan = plan_prompt("sys", entries, policy=OverflowPolicy(policy), n_ctx=1000, reserve=100,
                                   tokens_per_char=0.5, previous=sent[-1] if sent and sticky else None)  # fmt: skip
                assert plan.estimated_tokens <= 900
                sent.append(plan.excluded)
        return sent

    sent = history_of_sends(sticky=True)
    overflowing = [i for i, left in enumerate(sent) if left]
    changes = [i for i in overflowing[1:] if sent[i] != sent[i - 1]]
    assert len(overflowing) >= 20 and len(changes) <= len(overflowing) // 3  # a new prompt start every 3+ turns
    assert all(sent[i - 1] <= sent[i] for i in range(1, len(sent)))  # what was left out stays out
    fresh = history_of_sends(sticky=False)
    assert sum(fresh[i] != fresh[i - 1] for i in overflowing[1:]) == len(overflowing) - 1  # without: every turn


def test_what_another_policy_left_out_is_not_kept() -> None:
    from llamadesk.ui.chat.context import Entry, OverflowPolicy, plan_prompt

    entries = [Entry(100 + i, "user" if i % 2 == 0 else "assistant", "x" * 100, i) for i in range(20)]
    middle = plan_prompt("", entries, policy=OverflowPolicy.DROP_MIDDLE, n_ctx=800, reserve=10, tokens_per_char=0.5)
    assert 100 not in middle.excluded and 102 in middle.excluded
    oldest = plan_prompt("", entries, policy=OverflowPolicy.DROP_OLDEST, n_ctx=800, reserve=10, tokens_per_char=0.5,
                         previous=middle.excluded)  # fmt: skip
    assert oldest.excluded == plan_prompt(
        "", entries, policy=OverflowPolicy.DROP_OLDEST, n_ctx=800, reserve=10, tokens_per_char=0.5
    ).excluded
    assert 100 in oldest.excluded

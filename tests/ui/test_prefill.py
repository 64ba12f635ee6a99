"""Chat → Prepare Replies While Typing, in the real window with real llama.cpp: a pause in typing reads the prompt
ahead, and Enter then starts the reply without reading it again."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.theme import UiPrefs
from tests.ui.conftest import REPLY_TIMEOUT_MS


def test_a_pause_in_typing_reads_the_prompt_and_enter_reads_nothing_again(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    assert window.prefill.enabled  # on by default
    with qtbot.waitSignal(window.prefill.prepared, timeout=10_000) as prepared:
        window.composer.edit.setPlainText("How long do turnips cook in a soup?")
    assert prepared.args[0] > 0
    assert window.prefill.sent[-1][-1] == {"role": "user", "content": "How long do turnips cook in a soup?"}
    window.chat.send(window.composer.text())
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.current_cid is not None
    receipt = history.messages(window.current_cid)[-1].receipt or {}
    assert receipt["cached_tokens"] == receipt["prompt_tokens"] > 0  # the whole prompt was already read

    # the next turn: the finished reply is read ahead too, then what you type after it
    window.composer.edit.setPlainText("And carrots?")
    qtbot.waitUntil(lambda: window.prefill.sent[-1][-1]["content"] == "And carrots?", timeout=10_000)
    sent = window.prefill.sent[-1]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"] and sent[-1]["content"] == "And carrots?"


def test_it_can_be_turned_off_and_stays_off(window: MainWindow, qtbot: QtBot) -> None:
    window.prefill.action.trigger()  # Chat → Prepare Replies While Typing
    assert not window.prefill.enabled
    window.composer.edit.setPlainText("nothing is read ahead now")
    assert not window.prefill._timer.isActive()
    window.prefs.sync()
    assert UiPrefs(window.paths.config / "ui.ini").prefill_while_typing is False
    window.prefill.action.trigger()
    assert UiPrefs(window.paths.config / "ui.ini").prefill_while_typing is True


def test_nothing_is_read_ahead_while_a_reply_runs_or_a_message_is_edited(window: MainWindow, qtbot: QtBot) -> None:
    window.composer.edit.setPlainText("first")
    window.chat.send(window.composer.text())
    assert window.is_generating and window.prefill.prompt() is None
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.prefill.prompt() is not None
    window.chat.edit(window.chat_model.row(0).message_id)  # editing starts a branch: not the prompt shown
    assert window.composer.editing_id is not None and window.prefill.prompt() is None


def test_a_notebook_text_is_read_ahead_as_raw_text(window: MainWindow, history: History, qtbot: QtBot) -> None:
    window.notebook.set_notebook(True)  # Chat → Notebook Mode, on a new conversation
    assert window.notebook.active
    with qtbot.waitSignal(window.prefill.prepared, timeout=10_000) as prepared:
        window.notebook.panel.editor.setPlainText("Once upon a time, a llama learned to")
    assert prepared.args[0] > 0 and window.prefill.mode == "completion"
    assert window.prefill.sent[-1] == [{"role": "user", "content": "Once upon a time, a llama learned to"}]
    window.notebook.generate()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.current_cid is not None
    receipt = history.messages(window.current_cid)[-1].receipt or {}
    assert receipt["mode"] == "completion" and receipt["cached_tokens"] == receipt["prompt_tokens"]

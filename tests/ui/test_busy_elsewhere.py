"""A reply running in one chat, seen from another: the new chat is not "Generating…", Send queues, the sidebar marks
both chats, Esc stops only the shown chat's reply. The real window over the real engine (the endless tiny model)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.conversation_list import QUEUED, WRITING
from llamadesk.ui.main_window import MainWindow
from tests.ui.conftest import REPLY_TIMEOUT_MS


def _busy(window: MainWindow) -> int | None:
    """The conversation whose reply the engine writes."""
    request = window.session.active_request
    pending = window.session.requests.get(request) if request is not None else None
    return pending.cid if pending is not None else None


def _cancel_asked(window: MainWindow) -> bool:
    """Whether Stop was asked of the reply in flight (its cancel Event is what crosses to the engine thread)."""
    request = window.session.active_request
    pending = window.session.requests.get(request) if request is not None else None
    return pending is not None and pending.cancel is not None and pending.cancel.is_set()


def test_a_reply_in_another_chat_leaves_this_one_usable(
    endless_window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window = endless_window
    window.send("Write a long story")
    first = window.current_cid
    assert first is not None and _busy(window) == first

    # Ctrl+N while the reply runs: an empty chat that does not claim to be generating.
    window.new_chat_action.trigger()
    second = window.current_cid
    assert second is not None and second != first and window.chat_model.rowCount() == 0
    assert "Generating" not in window.statusBar().currentMessage()
    assert "Write a long story" in window.statusBar().currentMessage()  # it names where the reply is written
    assert window.composer.send_button.isEnabled() and not window.composer.stop_button.isEnabled()
    assert window.sidebar.activity(first) == WRITING and window.sidebar.activity(second) is None
    assert window.composer.send_button.isEnabled() and not window.composer.stop_button.isEnabled()
    assert window.composer.note.isVisible() and "waits" in window.composer.note.text()

    # Esc here does not stop the other chat's reply.
    window.composer.edit.setFocus()
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
    assert not _cancel_asked(window)

    # Enter is never silently ignored: the message is saved and shown now, its reply queued.
    window.composer.edit.setPlainText("Hello from the second chat")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    assert window.composer.text() == ""
    rows = window.chat_model.rows()
    assert [(r.role, r.content) for r in rows] == [("user", "Hello from the second chat")]
    assert window.sidebar.activity(second) == QUEUED
    assert "Queued" in window.composer.note.text() and window.composer.note.isVisible()
    assert not window.composer.send_button.isEnabled()  # one queued message per chat; the note says why
    assert not _cancel_asked(window)

    # Back in the first chat, Esc stops its reply; the queued one then starts in the second chat.
    window.sidebar.select(first)
    assert window.current_cid == first
    if _busy(window) == first:  # (a reply that reached its token limit has ended by itself)
        assert window.composer.stop_button.isEnabled()
        qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
        assert _cancel_asked(window)
    qtbot.waitUntil(lambda: _busy(window) == second, timeout=REPLY_TIMEOUT_MS)
    assert window.sidebar.activity(second) == WRITING and window.sidebar.activity(first) is None
    assert window.composer.send_button.isEnabled()  # the first chat can queue again

    window.sidebar.select(second)
    qtbot.waitUntil(lambda: len(window.chat_model.rows()) == 2 and window.chat_model.rows()[1].content != "",
                    timeout=REPLY_TIMEOUT_MS)  # fmt: skip
    assert window.statusBar().currentMessage() == "Generating…"
    window.stop_generation()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    messages = history.all_messages(second)
    assert [m.role for m in messages] == ["user", "assistant"] and messages[1].parent_id == messages[0].id
    assert window.sidebar.activity(second) is None


def test_esc_takes_back_a_queued_reply(endless_window: MainWindow, history: History, qtbot: QtBot) -> None:
    window = endless_window
    window.send("Write a long story")
    first = window.current_cid
    window.new_chat_action.trigger()
    second = window.current_cid
    window.composer.edit.setPlainText("Queued, then taken back")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    assert window.composer.text() == "" and [r.content for r in window.chat_model.rows()] == ["Queued, then taken back"]
    assert window.sidebar.activity(second) == QUEUED
    window.chat.stop_here()  # Esc (or Stop) in the chat whose message waits
    assert window.sidebar.activity(second) is None and window.chat.queue == []
    assert window.composer.send_button.isEnabled()
    assert not _cancel_asked(window) and _busy(window) == first
    window.stop_generation()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert [m.content for m in history.all_messages(second)] == ["Queued, then taken back"]  # your message stays


def test_a_queued_message_in_a_chat_moved_to_the_trash_gets_no_reply(
    endless_window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window = endless_window
    window.send("Write a long story")
    window.new_chat_action.trigger()
    second = window.current_cid
    assert second is not None
    window.composer.edit.setPlainText("Never mind")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    assert window.sidebar.activity(second) == QUEUED
    window.sidebar.trash(second)
    window.stop_generation()
    qtbot.waitUntil(lambda: not window.is_generating and window.chat.queue == [], timeout=REPLY_TIMEOUT_MS)
    assert not window.is_generating  # nothing was started for the trashed chat
    assert [m.role for m in history.all_messages(second)] == ["user"]

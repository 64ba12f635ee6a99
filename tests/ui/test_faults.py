"""Resource faults through the real window: the history's disk fills up mid-reply; the model file is deleted."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.history.db import DISK_FULL_MESSAGE
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.workers import live_query_runners
from tests.ui.conftest import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS, Dialogs


@pytest.fixture(autouse=True)
def no_query_thread_left() -> Iterator[None]:
    yield
    assert live_query_runners() == [], "a query thread is still running after the test"


def stored(db: Path, message_id: int) -> tuple[str, str]:
    """(content, status) of a message as another connection sees it: what is really on disk."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT content, status FROM messages WHERE id = ?", (message_id,)).fetchone()
    return str(row[0]), str(row[1])


def test_disk_full_while_a_reply_streams(
    endless_window: MainWindow, history: History, paths: Paths, qtbot: QtBot, dialogs: Dialogs
) -> None:
    window = endless_window
    window.send("Write a long story")
    assert window.is_generating
    reply_id = window.chat_model.row(window.chat_model.rowCount() - 1).message_id
    user_id = window.chat_model.row(window.chat_model.rowCount() - 2).message_id
    qtbot.waitUntil(lambda: len(stored(paths.history_db, reply_id)[0]) > 0, timeout=REPLY_TIMEOUT_MS)

    # The disk is "full" for real: SQLite refuses to grow the file past its current size (SQLITE_FULL), exactly
    # as on a full disk. The writer is the window's own connection.
    conn = history._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    saved_before = stored(paths.history_db, reply_id)[0]
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == DISK_FULL_MESSAGE, timeout=REPLY_TIMEOUT_MS)
    shown_when_full = len(window.chat_model.row(window.chat_model.rowCount() - 1).content)
    qtbot.waitUntil(  # the reply goes on in the view, unsaved
        lambda: len(window.chat_model.row(window.chat_model.rowCount() - 1).content) > shown_when_full + 20,
        timeout=REPLY_TIMEOUT_MS,
    )
    window.stop_generation()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)

    assert dialogs.warnings == [("Reply not saved", DISK_FULL_MESSAGE)]  # one sentence, once
    shown = window.chat_model.row(window.chat_model.rowCount() - 1)
    on_disk, status = stored(paths.history_db, reply_id)
    assert shown.message_id == reply_id and len(shown.content) > len(on_disk) >= len(saved_before) > 0
    assert shown.content.startswith(on_disk)  # what was saved is the reply's beginning
    assert status == "streaming"  # never finished: the next start marks it interrupted
    assert stored(paths.history_db, user_id)[0] == "Write a long story"

    conn.execute("PRAGMA max_page_count = 1073741823")  # space again: the window keeps working
    # How long the stopped reply grew depends on the machine's speed; leave the oldest turns out if it filled
    # the context, so that the next reply is not refused for its length.
    window.chat.set_policy("drop_oldest")
    window.send("And another")
    qtbot.waitUntil(
        lambda: len(window.chat_model.row(window.chat_model.rowCount() - 1).content) > 5, timeout=REPLY_TIMEOUT_MS
    )
    window.stop_generation()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert len(dialogs.warnings) == 1

    reopened = History(paths.history_db)  # as at the next start
    try:
        message = reopened.get_message(reply_id)
        assert message.status == "interrupted" and message.content == on_disk
        assert reopened.check_integrity() == []
    finally:
        reopened.close()


def test_a_model_file_deleted_while_in_use(window: MainWindow, paths: Paths, qtbot: QtBot, dialogs: Dialogs) -> None:
    model = window.loaded_model
    assert model is not None
    model.path.unlink()  # the engine maps the file: its pages stay readable while it is loaded
    assert not model.path.exists()

    window.send("still there?")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    last = window.chat_model.row(window.chat_model.rowCount() - 1)
    assert last.role == "assistant" and last.status == "complete" and last.content

    window.window_actions.regenerate.trigger()
    qtbot.waitUntil(lambda: window.chat_model.row(window.chat_model.rowCount() - 1).alternatives == 2)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.chat_model.row(window.chat_model.rowCount() - 1).status == "complete"

    window.load_model(model)  # reloading needs the file: one sentence, and the loaded model stays
    qtbot.waitUntil(lambda: bool(dialogs.warnings), timeout=LOAD_TIMEOUT_MS)
    title, sentence = dialogs.warnings[0]
    assert title == "Model not loaded" and str(model.path) in sentence
    assert "\n" not in sentence and "Traceback" not in sentence
    qtbot.waitUntil(lambda: not window.is_loading, timeout=LOAD_TIMEOUT_MS)
    assert window.model_info is not None
    window.send("and now?")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.chat_model.row(window.chat_model.rowCount() - 1).status == "complete"

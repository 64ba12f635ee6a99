"""Ctrl+F's bar over a real SQLite history: counts the matches of the branch shown and steps through them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.find_bar import DEBOUNCE_MS, FindBar
from llamadesk.ui.workers import live_query_runners


@pytest.fixture(autouse=True)
def no_query_thread_left() -> Iterator[None]:
    yield
    assert live_query_runners() == [], "a query thread is still running after the test"


@pytest.fixture
def bar(qtbot: QtBot, history: History) -> Iterator[FindBar]:
    b = FindBar(history)
    qtbot.addWidget(b)
    b.resize(520, b.sizeHint().height())
    with qtbot.waitActive(b):
        b.show()
        b.activateWindow()
    yield b
    b.shutdown()


def find(bar: FindBar, qtbot: QtBot, text: str | None = None, **kwargs: object) -> None:
    """Opens the bar on `text` and waits for the matches (found in the query thread)."""
    with qtbot.waitSignal(bar.searched, timeout=5000):
        bar.open_find(text, **kwargs)  # type: ignore[arg-type]


def cake_conversation(history: History) -> tuple[int, list[int]]:
    """A conversation with three messages about cake on the branch shown (and one on another branch)."""
    conv = history.create_conversation("Baking")
    q = history.add_message(conv.id, "user", "How do I bake a cake?")
    history.add_message(conv.id, "assistant", "Cakes need an oven at 180 °C.")  # "cakes" is another word
    other = history.add_message(conv.id, "assistant", "A cake on another branch", parent_id=q.id)
    history.add_message(conv.id, "assistant", "Use a tin for the cake.", parent_id=q.id)
    history.add_message(conv.id, "user", "Thanks")
    last = history.add_message(conv.id, "assistant", "Enjoy the CAKE!")
    assert other.id not in [m.id for m in history.messages(conv.id)]
    shown = history.messages(conv.id)
    ids = [m.id for m in shown if "cake" in m.content.lower().replace("cakes", "")]
    assert len(ids) == 3 and ids[-1] == last.id
    return conv.id, ids


def test_counts_matches_and_steps_through_them(bar: FindBar, history: History, qtbot: QtBot) -> None:
    cid, ids = cake_conversation(history)
    bar.set_conversation(cid)
    scrolled: list[int] = []
    highlights: list[str] = []
    bar.scrollToMessage.connect(scrolled.append)
    bar.highlightChanged.connect(highlights.append)

    find(bar, qtbot, "cake")
    assert bar.matches() == ids  # the branch shown only, oldest first
    assert bar.count_label.text() == "3 of 3"  # starts at the newest: the chat shows the bottom
    assert scrolled == [ids[2]] and highlights == ["cake"]

    qtbot.keyClick(bar.field, Qt.Key.Key_Return)  # next wraps around to the oldest
    assert bar.count_label.text() == "1 of 3" and scrolled[-1] == ids[0]
    qtbot.mouseClick(bar.next_button, Qt.MouseButton.LeftButton)
    assert bar.count_label.text() == "2 of 3" and scrolled[-1] == ids[1]
    qtbot.keyClick(bar.field, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert bar.count_label.text() == "1 of 3"
    qtbot.mouseClick(bar.prev_button, Qt.MouseButton.LeftButton)
    assert bar.count_label.text() == "3 of 3" and scrolled[-1] == ids[2]
    assert bar.prev_button.accessibleName() == "Previous match" and bar.next_button.accessibleName() == "Next match"

    with qtbot.waitSignal(bar.closed):
        qtbot.keyClick(bar.field, Qt.Key.Key_Escape)
    assert not bar.isVisible() and highlights == ["cake", ""]


def test_typing_searches_after_a_pause_with_prefixes(bar: FindBar, history: History, qtbot: QtBot) -> None:
    cid, _ = cake_conversation(history)
    bar.set_conversation(cid)
    bar.open_find()
    qtbot.keyClicks(bar.field, "cak")
    qtbot.waitUntil(lambda: bar.count_label.text() == "3 of 3", timeout=DEBOUNCE_MS + 2000)
    qtbot.keyClicks(bar.field, "ez")
    with qtbot.waitSignal(bar.searched, timeout=1000):  # sooner than the pause: Enter searched at once
        qtbot.keyClick(bar.field, Qt.Key.Key_Return)
    assert bar.matches() == [] and bar.count_label.text() == "No matches"
    assert not bar.next_button.isEnabled() and not bar.prev_button.isEnabled()


def test_starts_at_the_anchor_and_refresh_keeps_the_current_match(bar: FindBar, history: History, qtbot: QtBot) -> None:
    cid, ids = cake_conversation(history)
    bar.set_conversation(cid)
    bar.set_anchor(lambda: ids[1])  # the chat view's top message: the search starts there, like a browser
    find(bar, qtbot, "cake")
    assert bar.current_message() == ids[1] and bar.count_label.text() == "2 of 3"

    new = history.add_message(cid, "user", "one more cake please")
    with qtbot.assertNotEmitted(bar.scrollToMessage), qtbot.waitSignal(bar.searched):
        bar.refresh()  # a reply arrived: the count grows, the view stays where it is
    assert bar.matches() == [*ids, new.id] and bar.count_label.text() == "2 of 4"

    empty = history.create_conversation("Empty")
    with qtbot.waitSignal(bar.searched):
        bar.set_conversation(empty.id)  # another conversation: searched afresh
    assert bar.matches() == [] and bar.count_label.text() == "No matches"


def test_opening_at_a_search_hit_without_taking_the_focus(bar: FindBar, history: History, qtbot: QtBot) -> None:
    cid, ids = cake_conversation(history)
    bar.set_conversation(cid)
    bar.close_find()
    with qtbot.waitSignal(bar.scrollToMessage, timeout=5000) as scrolled:
        bar.open_find("cake", start_at=ids[0], focus=False)
    assert scrolled.args == [ids[0]] and bar.count_label.text() == "1 of 3"
    assert not bar.field.hasFocus()


def test_esc_closes_the_bar_even_where_the_window_binds_it(history: History, qtbot: QtBot) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    layout = QVBoxLayout(window)
    bar = FindBar(history, window)
    layout.addWidget(bar)
    window.destroyed.connect(lambda *_: bar.runner.shutdown())
    stop = QShortcut(QKeySequence(Qt.Key.Key_Escape), window)  # like MainWindow's Stop while a reply streams
    stopped: list[bool] = []
    stop.activated.connect(lambda: stopped.append(True))
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    find(bar, qtbot, "cake")
    assert bar.field.hasFocus()
    qtbot.keyClick(bar.field, Qt.Key.Key_Escape)
    assert not bar.isVisible() and stopped == []
    qtbot.keyClick(window, Qt.Key.Key_Escape)  # elsewhere, Esc still stops
    assert stopped == [True]


def test_a_late_result_after_closing_is_dropped(bar: FindBar, history: History, qtbot: QtBot) -> None:
    cid, _ids = cake_conversation(history)
    bar.set_conversation(cid)
    highlights: list[str] = []
    bar.highlightChanged.connect(highlights.append)
    bar.open_find("cake")  # the search is on its way to the query thread...
    bar.close_find()  # ...and Esc comes first
    probe: list[int] = []
    bar.runner.submit("probe", lambda h: 1, probe.append, lambda _e: None)  # queued after the dropped one
    qtbot.waitUntil(lambda: probe == [1])
    assert highlights == [""] and bar.matches() == []  # nothing highlighted again behind your back

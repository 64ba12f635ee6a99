"""The search panel over a real SQLite history: as-you-type results, highlighted snippets, paging, opening a hit."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from llamadesk.core.history import MARK_END, MARK_START, History
from llamadesk.ui.search_panel import DEBOUNCE_MS, HitRole, SearchPanel, SnippetHtmlRole, format_when, snippet_html
from llamadesk.ui.workers import BackgroundQueries, live_query_runners


@pytest.fixture(autouse=True)
def no_query_thread_left() -> Iterator[None]:
    yield
    assert live_query_runners() == [], "a query thread is still running after the test"


@pytest.fixture
def panel(qtbot: QtBot, history: History) -> Iterator[SearchPanel]:
    p = SearchPanel(history)
    qtbot.addWidget(p)
    p.resize(380, 520)
    with qtbot.waitActive(p):
        p.show()
        p.activateWindow()
    yield p
    p.shutdown()


def search(panel: SearchPanel, qtbot: QtBot, text: str) -> None:
    """Types `text` at once and waits for its first page (searches run in the query thread)."""
    with qtbot.waitSignal(panel.model.searched, timeout=5000):
        panel.set_query(text)


def test_snippet_html_bolds_matches_and_escapes_everything_else() -> None:
    snippet = f"…use <b>{MARK_START}ginger{MARK_END} & <script>alert(1)</script> {MARK_START}Cake{MARK_END}"
    out = snippet_html(snippet)
    assert "<script>" not in out and "<b>use" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "&lt;b&gt;" in out and "&amp;" in out
    assert out.count("<b ") == 2 and ">ginger</b>" in out and ">Cake</b>" in out


def test_format_when() -> None:
    import datetime as dt

    now = dt.datetime(2026, 3, 10, 12, 0).timestamp()
    assert format_when(dt.datetime(2026, 3, 10, 9, 5).timestamp(), now) == "09:05"
    assert format_when(dt.datetime(2026, 1, 2, 9, 5).timestamp(), now) == "2 Jan"
    assert format_when(dt.datetime(2024, 1, 2, 9, 5).timestamp(), now) == "2 Jan 2024"


def test_results_as_you_type_with_highlights_and_open(panel: SearchPanel, history: History, qtbot: QtBot) -> None:
    cake = history.create_conversation("Ginger cake")
    history.add_message(cake.id, "user", "How long do I bake a ginger cake?")
    reply = history.add_message(cake.id, "assistant", "Bake the <b>gingerbread</b> for 40 minutes <script>x</script>.")
    other = history.create_conversation("Taxes")
    history.add_message(other.id, "user", "nothing about it here")

    assert panel.status.isVisible() and "Type to search" in panel.status.text()
    assert panel.field.accessibleName() == "Search conversations"
    assert panel.results.accessibleName() == "Search results"
    panel.field.setFocus()
    qtbot.keyClicks(panel.field, "gingerb")  # a prefix: search as you type
    assert panel.model.rowCount() == 0  # debounced: nothing yet
    qtbot.waitUntil(lambda: panel.model.rowCount() > 0, timeout=DEBOUNCE_MS + 2000)
    hits = [panel.model.index(r, 0).data(HitRole) for r in range(panel.model.rowCount())]
    assert [(h.conversation_id, h.message_id) for h in hits] == [(cake.id, reply.id)]
    html_text = panel.model.index(0, 0).data(SnippetHtmlRole)
    assert ">gingerbread</b>" in html_text and "&lt;script&gt;" in html_text and "<script>" not in html_text
    assert "&lt;b&gt;" in html_text  # the message's own markup is text, not bold
    assert not panel.status.isVisible()

    search(panel, qtbot, "ginger")  # a title hit first, then the messages, newest first
    hits = [panel.model.index(r, 0).data(HitRole) for r in range(panel.model.rowCount())]
    assert hits[0].message_id is None and hits[0].conversation_id == cake.id
    assert {h.message_id for h in hits[1:]} >= {reply.id}

    with qtbot.waitSignal(panel.openRequested) as opened:
        qtbot.keyClick(panel.field, Qt.Key.Key_Return)  # Enter in the field opens the selected (first) hit
    assert opened.args == [cake.id, None, "ginger"]

    qtbot.keyClick(panel.field, Qt.Key.Key_Down)  # into the list
    assert panel.results.hasFocus()
    qtbot.keyClick(panel.results, Qt.Key.Key_Down)
    row = panel.results.currentIndex().row()
    expected = panel.model.index(row, 0).data(HitRole)
    with qtbot.waitSignal(panel.openRequested) as opened:
        qtbot.keyClick(panel.results, Qt.Key.Key_Return)
    assert opened.args == [expected.conversation_id, expected.message_id, "ginger"]

    rect = panel.results.visualRect(panel.model.index(0, 0))
    with qtbot.waitSignal(panel.openRequested) as opened:  # a real double click: press, release, double click
        qtbot.mouseClick(panel.results.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(panel.results.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args == [cake.id, None, "ginger"]
    assert not panel.grab().isNull()  # paints without warnings


def test_order_toggle_and_no_results(panel: SearchPanel, history: History, qtbot: QtBot) -> None:
    conv = history.create_conversation("Notes")
    history.add_message(conv.id, "user", "sqlite sqlite sqlite wal")
    history.add_message(conv.id, "user", "sqlite once, then many other words about nothing in particular")
    search(panel, qtbot, "sqlite")
    assert panel.order() == "recent" and panel.newest_button.isChecked()
    newest = [panel.model.index(r, 0).data(HitRole).message_id for r in range(panel.model.rowCount())]
    with qtbot.waitSignal(panel.model.searched):
        qtbot.mouseClick(panel.relevance_button, Qt.MouseButton.LeftButton)
    assert panel.order() == "relevance" and panel.model.order == "relevance"
    ranked = [panel.model.index(r, 0).data(HitRole).message_id for r in range(panel.model.rowCount())]
    assert sorted(ranked) == sorted(newest) and ranked != newest  # the dense one ranks first

    search(panel, qtbot, "zzqx")
    assert panel.model.rowCount() == 0
    assert panel.status.isVisible() and panel.status.text() == "Nothing found for “zzqx”."
    with qtbot.waitSignal(panel.closeRequested):
        qtbot.keyClick(panel.field, Qt.Key.Key_Escape)


def test_results_are_read_page_by_page(panel: SearchPanel, history: History, qtbot: QtBot) -> None:
    conv = history.create_conversation("Many")
    for i in range(130):
        history.add_message(conv.id, "user", f"kettle number {i}")
    search(panel, qtbot, "kettle")
    model = panel.model
    assert model.rowCount() == 50 and model.canFetchMore()
    panel.results.scrollToBottom()
    qtbot.waitUntil(lambda: model.rowCount() == 100)
    model.fetchMore()
    assert not model.canFetchMore()  # a page is on its way: the view does not ask twice
    qtbot.waitUntil(lambda: model.rowCount() == 130)
    assert not model.canFetchMore()
    assert len({model.index(r, 0).data(HitRole).message_id for r in range(130)}) == 130


def test_focus_search_selects_the_text(panel: SearchPanel, qtbot: QtBot) -> None:
    panel.field.setText("old query")
    panel.results.setFocus()
    panel.focus_search()
    assert QApplication.focusWidget() is panel.field and panel.field.selectedText() == "old query"


def test_esc_asks_to_close_even_where_the_window_binds_it(history: History, qtbot: QtBot) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    panel = SearchPanel(history, window)
    QVBoxLayout(window).addWidget(panel)
    window.destroyed.connect(lambda *_: panel.runner.shutdown())  # the panel's own query thread ends with it
    stop = QShortcut(QKeySequence(Qt.Key.Key_Escape), window)
    stopped: list[bool] = []
    stop.activated.connect(lambda: stopped.append(True))
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    panel.focus_search()
    with qtbot.waitSignal(panel.closeRequested):
        qtbot.keyClick(panel.field, Qt.Key.Key_Escape)
    assert stopped == []


def test_searches_run_in_a_thread_of_their_own_and_stale_results_are_dropped(history: History, qtbot: QtBot) -> None:
    runner = BackgroundQueries(lambda: History(history.path, trash_retention_s=None), name="test-queries")
    try:
        started, release = threading.Event(), threading.Event()
        threads: list[int] = []
        results: list[str] = []

        def slow(h: History) -> str:
            threads.append(threading.get_ident())
            started.set()
            assert release.wait(10)  # held until the GUI thread has asked again
            return "old"

        runner.submit("search", slow, results.append, results.append)
        assert started.wait(10)  # it runs while the GUI thread goes on: not here
        assert threads[0] != threading.get_ident()
        runner.submit("search", lambda h: "skipped", results.append, results.append)  # stale before it starts
        runner.submit("search", lambda h: h.path.name, results.append, results.append)
        release.set()
        qtbot.waitUntil(lambda: results == [history.path.name])  # its own History on the same file
        assert not runner.busy("search")

        runner.submit("search", lambda h: 1 / 0, results.append, results.append)
        qtbot.waitUntil(lambda: len(results) == 2)
        assert results[1].startswith("The operation failed unexpectedly")
    finally:
        runner.shutdown()
    assert not runner.thread_running


def test_typing_stays_responsive_while_a_search_runs(panel: SearchPanel, history: History, qtbot: QtBot) -> None:
    conv = history.create_conversation("Kettles")
    history.add_message(conv.id, "user", "a kettle of fish")
    release = threading.Event()
    panel.runner.submit("block", lambda h: release.wait(10), lambda _r: None, lambda _e: None)  # a busy thread
    panel.set_query("kettle")
    qtbot.keyClicks(panel.field, " fish")  # the GUI thread is free: typing goes on while the search waits
    assert panel.field.text() == "kettle fish" and panel.model.rowCount() == 0
    with qtbot.waitSignal(panel.model.searched, timeout=5000):
        release.set()
        panel.run_now()
    assert panel.model.query == "kettle fish" and panel.model.rowCount() == 1


def test_enter_right_after_typing_opens_the_first_hit_of_what_was_typed(
    panel: SearchPanel, history: History, qtbot: QtBot
) -> None:
    conv = history.create_conversation("Notes")
    target = history.add_message(conv.id, "user", "the kettle whistles")
    panel.field.setFocus()
    qtbot.keyClicks(panel.field, "whistle")
    with qtbot.waitSignal(panel.openRequested, timeout=5000) as opened:
        qtbot.keyClick(panel.field, Qt.Key.Key_Return)  # before the pause in typing: searched, then opened
    assert opened.args == [conv.id, target.id, "whistle"]
    with qtbot.assertNotEmitted(panel.openRequested, wait=300):
        panel.run_now()  # the one-shot open does not fire again on a later search

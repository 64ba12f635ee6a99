"""Narrow windows: the side panels give way before the chat does, and a reply's code stays inside its bubble."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRect, QRectF
from PySide6.QtGui import QFontMetrics
from pytestqt.qtbot import QtBot

from llamadesk.core.markdown import copy_href
from llamadesk.ui.chat.delegate import SIDE_MARGIN
from llamadesk.ui.chat.model import ChatRow, MessageListModel
from llamadesk.ui.chat.view import ChatView
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.panel_fit import CHAT_MIN_WIDTH

LONG_CODE = "```python\n" + "result = compute(" + ", ".join(f"argument_{i}" for i in range(40)) + ")\nx = 1\n```"


def _chat_width(window: MainWindow) -> int:
    return window.chat_view.parentWidget().width()


def _resize(window: MainWindow, qtbot: QtBot, width: int, height: int) -> None:
    """Resizes the window and waits until it has that size and the panels have settled (a window with its panels
    open may refuse to be narrower than they are: it is asked again once they gave way)."""
    window.resize(width, height)

    def settled() -> bool:
        if window.width() != width:
            window.resize(width, height)
            return False
        fit = getattr(window, "panel_fit", None)
        return fit is None or fit.settled()

    qtbot.waitUntil(settled, timeout=10_000)


def test_side_panels_give_way_before_the_chat(make_window: Callable[..., MainWindow], qtbot: QtBot) -> None:
    window = make_window(auto_load=False)
    _resize(window, qtbot, 1280, 800)
    assert window.settings_dock.isVisible() and window.sidebar.isVisible()
    assert _chat_width(window) >= CHAT_MIN_WIDTH

    _resize(window, qtbot, 800, 600)  # the settings give way first, to their toolbar button
    qtbot.waitUntil(lambda: not window.settings_dock.isVisible() and _chat_width(window) >= CHAT_MIN_WIDTH)
    assert window.sidebar.isVisible()
    assert not window.toggle_settings_action.isChecked()

    _resize(window, qtbot, 560, 400)  # then the conversation list, to its button
    qtbot.waitUntil(lambda: not window.sidebar.isVisible() and _chat_width(window) >= CHAT_MIN_WIDTH)
    assert not window.toggle_sidebar_action.isChecked()

    _resize(window, qtbot, 1280, 800)  # wide again: both come back
    qtbot.waitUntil(lambda: window.sidebar.isVisible() and window.settings_dock.isVisible())
    qtbot.waitUntil(lambda: _chat_width(window) >= CHAT_MIN_WIDTH)


def test_a_panel_you_closed_stays_closed_and_one_you_open_stays_open(
    make_window: Callable[..., MainWindow], qtbot: QtBot
) -> None:
    window = make_window(auto_load=False)
    _resize(window, qtbot, 1280, 800)
    window.toggle_settings_action.trigger()  # you close the settings
    assert not window.settings_dock.isVisible()
    _resize(window, qtbot, 560, 400)
    qtbot.waitUntil(lambda: not window.sidebar.isVisible())
    _resize(window, qtbot, 1280, 800)
    qtbot.waitUntil(lambda: window.sidebar.isVisible())
    assert not window.settings_dock.isVisible()  # yours: not reopened by the fit

    window.toggle_settings_action.trigger()  # open again, then search: the settings give way to the search
    window.navigation.show_search()
    qtbot.waitUntil(lambda: not window.settings_dock.isVisible() and _chat_width(window) >= CHAT_MIN_WIDTH)
    assert window.navigation.search_dock.isVisible()


def _view(qtbot: QtBot, width: int, rows: list[ChatRow]) -> ChatView:
    model = MessageListModel()
    view = ChatView(model)
    qtbot.addWidget(view)
    view.resize(width, 600)
    view.show()
    model.set_rows(rows)
    return view


def test_code_stays_inside_its_bubble_at_every_width(qtbot: QtBot) -> None:
    for width in (1000, 560, 300):
        row = ChatRow(2, "assistant", "Here it is:\n\n" + LONG_CODE)
        view = _view(qtbot, width, [ChatRow(1, "user", "code please"), row])
        delegate = view.delegate
        rect = QRect(0, 0, delegate.row_width(), 2000)
        text_width = delegate.text_width(rect.width())
        doc, _info, _fresh = delegate.document(row, text_width)
        assert doc.size().width() <= text_width + 1, width  # no line is wider than the bubble's text
        bubble = delegate.bubble_rect(row, doc, rect)
        assert QRectF(rect).contains(bubble)
        copy = delegate.anchor_rect(view.model().index(1, 0), rect, copy_href(0))
        assert copy is not None and bubble.contains(copy), width  # "Copy code" whole, inside the bubble
        assert copy.width() >= QFontMetrics(delegate.small_font()).horizontalAdvance("Copy code") - 1
        assert delegate.hit(view.model().index(1, 0), rect, copy.center()) == ("link", copy_href(0))
        assert "argument_39" in doc.toPlainText()  # wrapped, nothing cut


def test_footer_actions_fit_a_narrow_chat(qtbot: QtBot) -> None:
    stats = {"generated_tokens": 1234, "tokens_per_s": 56.7}
    rows = [
        ChatRow(1, "user", "hi", alternatives=2, alternative=2),
        ChatRow(2, "assistant", "hello", stats=stats, finish_reason="length", parent_id=1, alternatives=3),
    ]
    view = _view(qtbot, CHAT_MIN_WIDTH - 10, rows)  # the chat at about its minimum (a scroll bar may take some)
    delegate = view.delegate
    rect = QRect(0, 0, delegate.row_width(), 200)
    for row in rows:
        doc, _info, _fresh = delegate.document(row, delegate.text_width(rect.width()))
        items = delegate.footer_items(row, delegate.bubble_rect(row, doc, rect), rect, True)
        names = [item.action for item in items if item.action]
        assert {"prev", "next"} <= set(names)
        for item in items:  # every word of the footer is drawn whole, inside the row
            assert rect.left() + SIDE_MARGIN / 2 - 1 <= item.rect.left(), item.text
            assert item.rect.right() <= rect.right() - SIDE_MARGIN / 2 + 1, item.text
        if row.role == "assistant":
            assert {"copy", "receipt", "regenerate", "continue"} <= set(names)
            assert delegate.hit(view.model().index(1, 0), rect, QPointF(items[-1].rect.center())) is not None

"""Search, find and the model manager reached from the real main window."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QTextCursor
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.workers import live_query_runners


@pytest.fixture(autouse=True)
def no_query_thread_left() -> Iterator[None]:
    yield
    assert live_query_runners() == [], "a query thread is still running after the test"


def highlighted_pixels(widget: QWidget) -> int:
    """How many pixels of `widget` have a highlight colour (#ffe26a, or #ff9632 for the find bar's current hit) —
    what a user sees, not a flag."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    bgra = pixels[:, : image.width() * 4].reshape(image.height(), image.width(), 4)
    yellow = (bgra[..., 0] == 0x6A) & (bgra[..., 1] == 0xE2) & (bgra[..., 2] == 0xFF)
    orange = (bgra[..., 0] == 0x32) & (bgra[..., 1] == 0x96) & (bgra[..., 2] == 0xFF)
    return int(np.count_nonzero(yellow | orange))


def _fill(history: History) -> tuple[int, int, int]:
    first = history.create_conversation("Sailing notes")
    history.add_message(first.id, "user", "How do llamas sail?")
    history.add_message(first.id, "assistant", "With a small boat and a steady wind.")
    second = history.create_conversation("Cooking")
    history.add_message(second.id, "user", "A soup recipe please")
    target = history.add_message(second.id, "assistant", "Boil the turnips slowly in broth.")
    for i in range(40):  # enough rows that the hit has to be scrolled to
        history.add_message(second.id, "user", f"filler question {i}")
        history.add_message(second.id, "assistant", f"filler answer {i}")
    return first.id, second.id, target.id


def test_a_search_hit_opens_its_conversation_at_the_message(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot
) -> None:
    first, second, target = _fill(history)
    window = make_window(auto_load=False)
    window.select_conversation(first)
    nav = window.navigation
    nav.search_action.trigger()  # Ctrl+Shift+F
    qtbot.waitUntil(nav.search_dock.isVisible)
    panel = nav.search_panel
    panel.set_query("turnips")
    panel.run_now()
    qtbot.waitUntil(lambda: panel.model.rowCount() > 0)
    with qtbot.waitSignal(panel.openRequested, timeout=5000):
        qtbot.keyClick(panel.field, Qt.Key.Key_Return)
    assert window.current_cid == second
    row = window.chat_model.find(target)
    assert row >= 0
    qtbot.waitUntil(lambda: window.chat_view.visualRect(window.chat_model.index(row, 0)).intersects(
        window.chat_view.viewport().rect()))  # fmt: skip

    # ...with the words highlighted in the bubble, and the find bar ready to step to the next match
    view = window.chat_view
    qtbot.waitUntil(lambda: view.delegate.highlight_query == "turnips")
    doc = view.delegate.document(window.chat_model.row(row), view.delegate.text_width(view.delegate.row_width()))[0]
    spans = view.delegate.highlight_spans(window.chat_model.row(row), doc)
    assert [doc.toPlainText()[a:b] for a, b in spans] == ["turnips"]
    qtbot.waitUntil(lambda: highlighted_pixels(view.viewport()) > 20)
    bar = nav.find_bar
    assert bar.isVisible() and bar.count_label.text() == "1 of 1" and bar.current_message() == target
    bar.close_find()  # Esc: the highlight goes
    assert view.delegate.highlight_query == "" and highlighted_pixels(view.viewport()) == 0


def test_highlight_handles_markdown_and_characters_outside_the_bmp(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot
) -> None:
    conv = history.create_conversation("Emoji")
    history.add_message(conv.id, "user", "🦙🦙 llama time")
    history.add_message(conv.id, "assistant", "Here **Llamas** and 🦙 *llama* wool, no llamadesk.")
    window = make_window(auto_load=False)
    window.select_conversation(conv.id)
    view = window.chat_view
    width = view.delegate.text_width(view.delegate.row_width())

    def selected(i: int) -> list[str]:
        doc = view.delegate.document(window.chat_model.row(i), width)[0]
        texts = []
        for a, b in view.delegate.highlight_spans(window.chat_model.row(i), doc):
            cursor = QTextCursor(doc)  # positions in UTF-16 units: the cursor selects exactly the word
            cursor.setPosition(a)
            cursor.setPosition(b, QTextCursor.MoveMode.KeepAnchor)
            texts.append(cursor.selectedText())
        return texts

    view.set_highlight("llama")  # as typed in the find bar: the last word is a prefix
    assert selected(0) == ["llama"] and selected(1) == ["Llamas", "llama", "llamadesk"]
    view.set_highlight('"llama"')  # quoted: the whole word only
    assert selected(0) == ["llama"] and selected(1) == ["llama"]
    qtbot.waitUntil(lambda: highlighted_pixels(view.viewport()) > 20)
    view.set_highlight("")
    qtbot.waitUntil(lambda: highlighted_pixels(view.viewport()) == 0)


def test_find_bar_steps_through_matches_in_the_open_conversation(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot
) -> None:
    _, second, _ = _fill(history)
    window = make_window(auto_load=False)
    window.select_conversation(second)
    window.window_actions.find.trigger()
    bar = window.navigation.find_bar
    qtbot.waitUntil(bar.isVisible)
    bar.open_find("filler answer")
    qtbot.waitUntil(lambda: len(bar.matches()) == 40)
    assert window.chat_view.delegate.highlight_query == "filler answer"  # Ctrl+F highlights the same way
    qtbot.waitUntil(lambda: highlighted_pixels(window.chat_view.viewport()) > 20)


def test_models_menu_opens_the_model_manager(make_window: Callable[..., MainWindow], qtbot: QtBot) -> None:
    window = make_window(auto_load=False)
    window.navigation.models_action.trigger()
    manager = window.navigation.model_manager
    assert manager is not None
    qtbot.waitUntil(manager.isVisible)

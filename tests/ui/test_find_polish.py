"""Find and polish in the real window: the find bar counts (and marks) the words you see highlighted, one click on a
search hit opens it, the A/B dialog fits the window, hover leaves with the mouse, "↓ Latest" covers nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QAbstractSlider, QApplication, QWidget
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.chat.model import ChatRow, MessageListModel
from llamadesk.ui.chat.view import ChatView
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.workers import live_query_runners
from tests.ui.conftest import LOAD_TIMEOUT_MS


@pytest.fixture(autouse=True)
def no_query_thread_left() -> Iterator[None]:
    yield
    assert live_query_runners() == [], "a query thread is still running after the test"


def pixels_of(widget: QWidget, rgb: int) -> int:
    """How many pixels of `widget` have the colour `rgb` — what a user sees, not a flag."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    bgra = pixels[:, : image.width() * 4].reshape(image.height(), image.width(), 4)
    r, g, b = (rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF
    return int(np.count_nonzero((bgra[..., 0] == b) & (bgra[..., 1] == g) & (bgra[..., 2] == r)))


YELLOW, ORANGE = 0xFFE26A, 0xFF9632  # a highlighted word, the current hit


def test_find_counts_the_words_highlighted_and_marks_the_current_one(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot
) -> None:
    conv = history.create_conversation("Turnips")
    first = history.add_message(conv.id, "user", "Turnips or parsnips? I like turnips.")  # two hits
    second = history.add_message(conv.id, "assistant", "Roast the turnips.")  # one hit
    window = make_window(auto_load=False)
    window.select_conversation(conv.id)
    bar, view = window.navigation.find_bar, window.chat_view
    with qtbot.waitSignal(bar.searched, timeout=5000):
        bar.open_find("turnips")
    # Three words highlighted are three hits (it said "1 of 2"); it starts at the top of the view, as browsers do.
    assert bar.count_label.text() == "1 of 3" and bar.current_hit() == (first.id, 0)
    assert bar.hits() == [(first.id, 0), (first.id, 1), (second.id, 0)]
    qtbot.waitUntil(lambda: pixels_of(view.viewport(), ORANGE) > 20)  # the current hit is marked, in its colour
    assert pixels_of(view.viewport(), YELLOW) > 40  # the two others are highlighted
    marked = pixels_of(view.viewport(), ORANGE)

    qtbot.keyClick(bar.field, Qt.Key.Key_Return)  # next: the second word of the same message
    assert bar.count_label.text() == "2 of 3" and view.delegate.current_hit == (first.id, 1)
    qtbot.keyClick(bar.field, Qt.Key.Key_Return)
    assert bar.count_label.text() == "3 of 3" and view.delegate.current_hit == (second.id, 0)
    qtbot.waitUntil(lambda: 0 < pixels_of(view.viewport(), ORANGE) < 2 * marked)  # one word marked at a time
    qtbot.keyClick(bar.field, Qt.Key.Key_Return)  # wraps around
    assert bar.count_label.text() == "1 of 3" and view.delegate.current_hit == (first.id, 0)
    bar.close_find()
    assert pixels_of(view.viewport(), ORANGE) == 0 and pixels_of(view.viewport(), YELLOW) == 0


def test_one_click_on_a_search_result_opens_it(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot
) -> None:
    other = history.create_conversation("Other")
    history.add_message(other.id, "user", "nothing here")
    conv = history.create_conversation("Soup")
    target = history.add_message(conv.id, "user", "Boil the turnips slowly")
    window = make_window(auto_load=False)
    window.select_conversation(other.id)
    nav = window.navigation
    nav.search_action.trigger()
    panel = nav.search_panel
    panel.set_query("turnips")
    qtbot.waitUntil(lambda: panel.model.rowCount() > 0)
    results = panel.results
    rect = results.visualRect(panel.model.index(0, 0))
    qtbot.mouseClick(results.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: window.current_cid == conv.id)
    assert window.chat_model.find(target.id) >= 0


def test_the_compare_dialog_fits_inside_the_window(
    make_window: Callable[..., MainWindow], models_dir: object, history: History, qtbot: QtBot
) -> None:
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() == 800 and window.height() == 600)
    conv = history.create_conversation("Compare")
    history.add_message(conv.id, "user", "Say something")
    window.select_conversation(conv.id)
    dialog = window.chat.show_compare()
    assert dialog is not None
    qtbot.waitExposed(dialog)
    assert dialog.width() <= window.width() and dialog.height() <= window.height()
    dialog.sides[1].figures.setText("12345 tokens · 99.9 tok/s · 0.123 s to the first token · " * 4)  # long text
    dialog.memory.setText("A very long memory note about the second model. " * 6)
    dialog.memory.show()
    QApplication.processEvents()
    qtbot.waitUntil(lambda: dialog.width() <= window.width() and dialog.height() <= window.height())
    dialog.close()


def _view(qtbot: QtBot, rows: list[ChatRow], size: tuple[int, int] = (600, 400)) -> ChatView:
    model = MessageListModel()
    view = ChatView(model)
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    model.set_rows(rows)
    return view


def test_hover_leaves_with_the_mouse(qtbot: QtBot) -> None:
    view = _view(qtbot, [ChatRow(1, "user", "hello"), ChatRow(2, "assistant", "hi there"), ChatRow(3, "user", "ok")])
    shots = [view.viewport().grab().toImage()]

    def steady() -> bool:  # the first layout and paint are done: two grabs in a row are the same
        shots.append(view.viewport().grab().toImage())
        return shots[-1] == shots[-2]

    qtbot.waitUntil(steady)
    plain = shots[-1]
    index = view.model().index(0, 0)
    center = view.visualRect(index).center()
    qtbot.mouseMove(view.viewport(), center)
    qtbot.waitUntil(lambda: view.delegate.hover_id == 1)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=center)  # a click makes it current...
    QApplication.sendEvent(view.viewport(), QEvent(QEvent.Type.Leave))  # ...the mouse goes to the scroll bar
    assert view.delegate.hover_id is None
    view.setFocus()
    qtbot.waitUntil(lambda: view.viewport().grab().toImage() == plain)  # no outline, no actions left behind


def test_jump_to_latest_covers_no_message(qtbot: QtBot) -> None:
    rows = []
    for i in range(0, 60, 2):
        rows += [ChatRow(i + 1, "user", f"question {i}", alternatives=2, alternative=2),
                 ChatRow(i + 2, "assistant", f"answer {i} " + "word " * 12)]  # fmt: skip
    view = _view(qtbot, rows)
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    bar.setSliderPosition(bar.maximum() - 120)
    bar.triggerAction(QAbstractSlider.SliderAction.SliderMove)  # you scroll up a little
    qtbot.waitUntil(view.jump_button.isVisible)
    button = view.jump_button.geometry()
    assert not button.intersects(view.viewport().geometry())  # in a strip of its own, over no message
    # every ‹ › under a message on screen stays clickable
    for row in range(view.model().rowCount()):
        rect = view.visualRect(view.model().index(row, 0))
        if not rect.intersects(view.viewport().rect()):
            continue
        arrow = view.delegate.action_rect(view.model().index(row, 0), rect, "next")
        if arrow is not None and view.viewport().rect().contains(arrow.toRect()):
            assert not button.contains(view.viewport().mapTo(view, QPoint(*arrow.center().toPoint().toTuple())))
    qtbot.mouseClick(view.jump_button, Qt.MouseButton.LeftButton)
    assert view.is_following() and not view.jump_button.isVisible()
    qtbot.waitUntil(lambda: view.viewportMargins().bottom() == 0)

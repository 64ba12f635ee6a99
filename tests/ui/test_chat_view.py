"""The chat view in the real window: following the stream, and the "jump to latest" control when you scroll up."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QAbstractSlider
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.chat.delegate import PAD_H, PAD_V
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000


def test_scrolling_up_while_streaming_shows_jump_to_latest(
    endless_window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window = endless_window
    conv = history.create_conversation("Scroll")
    for i in range(30):
        history.add_message(conv.id, "user" if i % 2 == 0 else "assistant", f"message {i} " + "word " * 10)
    window.select_conversation(conv.id)
    view, bar = window.chat_view, window.chat_view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    assert not view.jump_button.isVisible()

    window.send("keep talking")
    qtbot.waitUntil(lambda: len(window.chat_model.row(window.chat_model.rowCount() - 1).content) > 20,
                    timeout=REPLY_TIMEOUT_MS)  # fmt: skip
    bar.triggerAction(QAbstractSlider.SliderAction.SliderToMinimum)  # you scroll up to read
    assert not view.is_following() and view.jump_button.isVisible()
    grown = len(window.chat_model.row(window.chat_model.rowCount() - 1).content)
    qtbot.waitUntil(lambda: len(window.chat_model.row(window.chat_model.rowCount() - 1).content) > grown + 50,
                    timeout=REPLY_TIMEOUT_MS)  # fmt: skip
    assert bar.value() == 0  # the stream did not pull you down

    qtbot.mouseClick(view.jump_button, Qt.MouseButton.LeftButton)
    assert view.is_following() and not view.jump_button.isVisible()
    qtbot.waitUntil(lambda: bar.value() == bar.maximum())
    window.stop_generation()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert bar.value() == bar.maximum()


def test_a_row_shown_again_is_never_drawn_from_an_old_layout(qtbot: QtBot) -> None:
    from llamadesk.ui.chat.model import ChatRow, MessageListModel
    from llamadesk.ui.chat.view import ChatView

    model = MessageListModel()
    view = ChatView(model)
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    model.set_rows([ChatRow(1, "user", "hi"), ChatRow(2, "assistant", "", "streaming")])
    width = view.delegate.text_width(view.delegate.row_width())
    assert view.delegate.document(model.row(1), width)[0].toPlainText().strip() == "…"
    model.sync_rows([ChatRow(1, "user", "hi"), ChatRow(3, "assistant", "other")])  # another alternative
    model.sync_rows([ChatRow(1, "user", "hi"), ChatRow(2, "assistant", "the final text", "complete")])  # back
    assert view.delegate.document(model.row(1), width)[0].toPlainText().strip() == "the final text"


@pytest.mark.parametrize("role", ["assistant", "user"])
def test_right_to_left_text_is_drawn_inside_its_bubble_and_found_under_the_mouse(qtbot: QtBot, role: str) -> None:
    from llamadesk.ui.chat.model import ChatRow, MessageListModel
    from llamadesk.ui.chat.view import ChatView

    short = "שלום עולם"  # shorter than a line: the bubble is only as wide as the text
    long = "مرحبا بالعالم " * 12  # wraps: its last line is shorter than the others
    model = MessageListModel()
    view = ChatView(model)
    qtbot.addWidget(view)
    view.resize(500, 600)
    view.show()
    model.set_rows([ChatRow(1, role, short), ChatRow(2, role, long.strip())])  # type: ignore[arg-type]
    for row in range(2):
        index = model.index(row, 0)
        rect = view.visualRect(index)
        doc, _info, _fresh = view.delegate.document(model.row(row), view.delegate.text_width(rect.width()))
        bubble = view.delegate.bubble_rect(model.row(row), doc, rect)
        text = doc.toPlainText()
        block = doc.begin()
        assert block.textDirection() == Qt.LayoutDirection.RightToLeft
        layout = block.layout()
        found = []
        for position in range(len(text)):
            line = layout.lineForTextPosition(position)
            x0, x1 = (line.cursorToX(p)[0] for p in (position, position + 1))
            assert min(x0, x1) >= 0 and max(x0, x1) <= bubble.width() - 2 * PAD_H + 1, "drawn outside the bubble"
            point = bubble.topLeft() + QPointF(PAD_H + (x0 + x1) / 2, PAD_V + line.y() + line.height() / 2)
            hit = view.delegate.text_position(index, rect, point)
            if role == "assistant":  # only replies carry token probabilities
                assert hit is not None
                found.append(hit[2])
        if role == "assistant":
            assert found == list(range(len(text)))

"""Markdown in the real window: highlighted code, tables, inert output, copy buttons, links, streaming cost."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QDesktopServices, QGuiApplication, QTextDocument
from PySide6.QtWidgets import QMenu, QMessageBox
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.markdown import copy_href
from llamadesk.ui.chat.model import ChatRow, MessageListModel
from llamadesk.ui.chat.render import MessageRenderer
from llamadesk.ui.chat.view import ChatView
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000

MARKDOWN = """Here is **bold**, `inline`, a [docs link](https://example.org/docs) and ![a diagram](https://example.org/d.png).

```python
def add(a, b):
    return a + b  # sum
```

| name | value |
|------|-------|
| x    | 1     |

- one
- two <b>not bold</b> <script>alert(1)</script> <img src="https://evil.example/p.png">
"""


def show_markdown(window: MainWindow, history: History, text: str = MARKDOWN) -> int:
    conv = history.create_conversation("Markdown")
    history.add_message(conv.id, "user", "show me")
    reply = history.add_message(conv.id, "assistant", text, finish_reason="stop", receipt={"generated_tokens": 50})
    window.refresh_conversations()
    window.select_conversation(conv.id)
    return reply.id


def reply_document(window: MainWindow, row: int = 1) -> QTextDocument:
    view = window.chat_view
    chat_row = window.chat_model.row(row)
    return view.delegate.document(chat_row, view.delegate.text_width(view.delegate.row_width()))[0]


def click_anchor(qtbot: QtBot, window: MainWindow, row: int, href: str) -> None:
    view = window.chat_view
    index = window.chat_model.index(row, 0)
    view.scrollTo(index)
    rect = view.delegate.anchor_rect(index, view.visualRect(index), href)
    assert rect is not None, f"no anchor {href}"
    pos = rect.center().toPoint()
    assert view.delegate.hit(index, view.visualRect(index), rect.center()) == ("link", href)
    qtbot.mouseMove(view.viewport(), pos)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_a_reply_is_markdown_with_highlighted_code_and_a_table(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    show_markdown(window, history)
    doc = reply_document(window)
    text = doc.toPlainText()
    assert "**" not in text and "bold" in text  # markup became formatting
    html = doc.toHtml()
    assert "<img" not in html  # no picture is ever loaded; the image is a link placeholder
    assert "[image: a diagram]" in text
    # raw HTML from the model is shown as text, never interpreted
    assert "<b>not bold</b>" in text and "<script>alert(1)</script>" in text and "<img src=" in text

    tables = [f for f in doc.rootFrame().childFrames() if f.__class__.__name__ == "QTextTable"]
    assert len(tables) == 2  # the code block's box and the markdown table
    colours: set[str] = set()
    block = doc.begin()
    while block.isValid():
        if "return a + b" in block.text():
            it = block.begin()
            while not it.atEnd():
                colours.add(it.fragment().charFormat().foreground().color().name())
                it += 1
        block = block.next()
    assert len(colours - {QColor().name()}) >= 2  # Pygments coloured the keyword, the operator, the comment


def test_copy_code_button_and_copy_message(window: MainWindow, history: History, qtbot: QtBot) -> None:
    show_markdown(window, history)
    clipboard = QGuiApplication.clipboard()
    clipboard.clear()
    click_anchor(qtbot, window, 1, copy_href(0))
    assert clipboard.text() == "def add(a, b):\n    return a + b  # sum\n"

    view = window.chat_view
    view.setFocus()
    view.setCurrentIndex(window.chat_model.index(1, 0))
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert clipboard.text() == MARKDOWN


def test_the_keyboard_menu_offers_every_code_block_and_link(
    window: MainWindow, history: History, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    show_markdown(window, history)
    view = window.chat_view
    view.setCurrentIndex(window.chat_model.index(1, 0))
    shown: list[QMenu] = []
    monkeypatch.setattr(view, "show_menu", lambda menu, _pos: shown.append(menu))
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Menu)
    menu = shown[0]
    assert menu is view.menu
    labels = [a.text() for a in menu.actions() if a.text()]
    assert "Copy message" in labels and "Copy code block 1 (python)" in labels
    assert "Open link https://example.org/docs" in labels
    assert {"Receipt…", "Regenerate", "Branches…"} <= set(labels)
    next(a for a in menu.actions() if a.text() == "Copy code block 1 (python)").trigger()
    assert QGuiApplication.clipboard().text().startswith("def add(a, b):")


def test_a_link_opens_only_after_you_saw_the_address_and_agreed(
    window: MainWindow, history: History, qtbot: QtBot, dialogs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True)
    show_markdown(window, history)
    dialogs.answer = QMessageBox.StandardButton.Cancel
    click_anchor(qtbot, window, 1, "https://example.org/docs")
    assert opened == [] and "https://example.org/docs" in dialogs.questions[-1]

    dialogs.answer = QMessageBox.StandardButton.Open
    click_anchor(qtbot, window, 1, "https://example.org/docs")
    assert opened == ["https://example.org/docs"]
    assert window.chat_view.open_link("javascript:alert(1)") is False  # never reaches the browser
    assert opened == ["https://example.org/docs"]


def test_only_the_streaming_row_is_laid_out_again_and_at_most_per_batch(
    endless_window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window = endless_window
    conv = history.create_conversation("Long")
    for i in range(20):
        history.add_message(conv.id, "user" if i % 2 == 0 else "assistant", f"message **{i}**\n\n```\ncode {i}\n```")
    window.refresh_conversations()
    window.select_conversation(conv.id)
    delegate = window.chat_view.delegate
    batches: list[int] = []
    window.host.worker.tokens.connect(lambda _rid, text: batches.append(len(text)))
    window.panel.rows["max_tokens"].spin.setValue(300)
    before = dict(delegate.layouts)
    window.send("go on")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    reply = window.chat_model.row(window.chat_model.rowCount() - 1)
    assert reply.role == "assistant" and reply.status == "complete" and reply.finish_reason == "length"
    changed = {mid: n - before.get(mid, 0) for mid, n in delegate.layouts.items() if n != before.get(mid, 0)}
    user = window.chat_model.row(window.chat_model.rowCount() - 2).message_id
    assert set(changed) <= {reply.message_id, user}  # older rows were not laid out again
    assert changed[reply.message_id] <= len(batches) + 2  # the streaming row: at most once per batch (+ the end)


def test_streaming_markdown_renders_finished_blocks_once(qtbot: QtBot) -> None:
    renderer = MessageRenderer()
    text = "# Title\n\nFirst paragraph.\n\n```python\nx = 1\n\ny = 2\n"
    doc = QTextDocument()
    renderer(doc, text, "assistant", streaming=True)
    before = renderer.renders
    renderer(doc, text + "z = 3\n", "assistant", streaming=True)  # the open fence keeps growing
    assert renderer.renders == before + 1  # only the tail: the title and paragraph came from the cache
    done = text + "z = 3\n```\n"
    info = renderer(doc, done, "assistant")
    assert info.code_blocks[0].code == "x = 1\n\ny = 2\nz = 3\n" and "First paragraph." in doc.toPlainText()


def test_ten_thousand_rows_open_without_laying_out_every_row(qtbot: QtBot) -> None:
    model = MessageListModel()
    view = ChatView(model)
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    rows = [ChatRow(i, "user" if i % 2 else "assistant", f"message {i} " * (i % 30 + 1)) for i in range(10_000)]
    model.set_rows(rows)
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    assert 0 < len(view.delegate.layouts) < 60  # only the rows on screen (and a few around) were laid out
    bar.setValue(bar.maximum() // 2)
    assert len(view.delegate.layouts) < 120

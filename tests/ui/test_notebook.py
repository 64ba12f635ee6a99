"""Notebook mode in the real window: raw-text continuation for a base model, saved in history, export/import."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from gguf_factory import END_OF_TURN, edit_output_rows
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.history.export import export_to_path
from llamadesk.core.history.importer import import_file
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow

LOAD_TIMEOUT_MS = 60_000
REPLY_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def endless_base_model(tiny_model_no_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model without a chat template (a "base model") whose end-of-generation tokens never win."""
    dst = tmp_path_factory.mktemp("base") / "tiny-base.gguf"
    return edit_output_rows(tiny_model_no_template, dst, zero=END_OF_TURN)


def base_window(make_window: Callable[..., MainWindow], paths: Paths, model: Path, qtbot: QtBot) -> MainWindow:
    shutil.copy(model, paths.models / model.name)
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None and not window.is_loading, timeout=LOAD_TIMEOUT_MS)
    window.panel.rows["max_tokens"].spin.setValue(6)
    return window


def idle(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)


def test_a_base_model_opens_a_notebook_that_generates_continues_and_is_saved(
    make_window: Callable[..., MainWindow], paths: Paths, endless_base_model: Path, history: History, qtbot: QtBot
) -> None:
    window = base_window(make_window, paths, endless_base_model, qtbot)
    notebook = window.notebook
    info = window.model_info
    assert info is not None and not info.has_chat_template and info.template_source == "architecture"
    assert notebook.default_on, "a model without a chat template starts conversations as notebooks"
    window.new_chat()
    cid = window.current_cid
    assert cid is not None and notebook.active and notebook.action.isChecked()
    assert notebook.panel.isVisible() and not window.chat_view.isVisible() and not window.composer.isVisible()

    editor = notebook.panel.editor
    editor.setFocus()
    qtbot.keyClicks(editor, "Once upon a time")
    qtbot.mouseClick(notebook.panel.generate_button, Qt.MouseButton.LeftButton)
    assert editor.isReadOnly() and notebook.panel.stop_button.isEnabled()
    idle(qtbot, window)
    qtbot.waitUntil(lambda: not editor.isReadOnly())
    stored = history.messages(cid)
    assert [m.role for m in stored] == ["user", "assistant"]
    document, reply = stored
    assert document.content == "Once upon a time" and reply.content
    assert editor.toPlainText() == document.content + reply.content
    assert reply.receipt is not None and reply.receipt["mode"] == "completion"
    assert reply.receipt["generated_tokens"] == 6 and reply.finish_reason == "length"
    assert history.get_conversation(cid).sampling["mode"] == "notebook"
    assert history.get_conversation(cid).title == "Once upon a time"

    qtbot.mouseClick(notebook.panel.continue_button, Qt.MouseButton.LeftButton)
    idle(qtbot, window)
    again = history.messages(cid)
    assert len(again) == 2 and again[1].id == reply.id, "Continue extends the reply in place"
    assert again[1].content.startswith(reply.content) and len(again[1].content) > len(reply.content)
    assert again[1].receipt["continuations"][0]["mode"] == "completion"  # type: ignore[index]
    qtbot.waitUntil(lambda: editor.toPlainText() == document.content + again[1].content)

    editor.moveCursor(editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(editor, " The end.")  # an edit: Continue now starts from the text as it is
    edited = editor.toPlainText()
    qtbot.mouseClick(notebook.panel.continue_button, Qt.MouseButton.LeftButton)
    idle(qtbot, window)
    latest = history.messages(cid)
    assert [m.role for m in latest] == ["user", "assistant", "user", "assistant"]
    assert latest[2].content == edited and latest[3].parent_id == latest[2].id

    window.panel.rows["max_tokens"].spin.setValue(7)  # the settings are saved with the mode kept
    window.save_conversation_settings()
    window.new_chat()
    window.select_conversation(cid)
    assert notebook.active and editor.toPlainText() == latest[2].content + latest[3].content

    out = paths.data / "export.json"
    export_to_path(history, [cid], "json", out)
    new_ids = import_file(history, out)
    assert history.get_conversation(new_ids[0]).sampling["mode"] == "notebook"
    imported = history.messages(new_ids[0])
    assert imported[-1].receipt["mode"] == "completion"  # type: ignore[index]


def test_the_toggle_turns_a_chat_model_conversation_into_a_notebook_and_back(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    notebook = window.notebook
    assert not notebook.default_on, "a model with a chat template starts chats"
    window.new_chat()
    cid = window.current_cid
    assert cid is not None and not notebook.active and window.chat_view.isVisible()
    window.panel.rows["max_tokens"].spin.setValue(4)
    notebook.action.trigger()
    assert notebook.active and notebook.panel.isVisible() and not window.chat_view.isVisible()
    assert history.get_conversation(cid).sampling["mode"] == "notebook"
    qtbot.keyClicks(notebook.panel.editor, "Dear diary,")
    qtbot.mouseClick(notebook.panel.generate_button, Qt.MouseButton.LeftButton)
    idle(qtbot, window)
    reply = history.messages(cid)[-1]
    assert reply.receipt is not None and reply.receipt["mode"] == "completion"
    assert reply.receipt["template"] == "gguf"  # the template is recorded but not used for raw text
    notebook.action.trigger()
    assert not notebook.active and window.chat_view.isVisible() and window.composer.isVisible()
    assert "mode" not in history.get_conversation(cid).sampling
    assert window.chat_model.rowCount() == 2  # the chat shows the document and its continuation

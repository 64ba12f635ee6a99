"""Files dropped on the real window: a model is used where it lies and loaded, an export is imported, a text file
on the composer joins the message; the rest is left to the widget under the mouse."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QTextCursor
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from llamadesk.core.attachments import ATTACH_MAX_BYTES
from llamadesk.core.history import History
from llamadesk.core.history.export import export_to_path
from llamadesk.ui.main_window import MainWindow
from tests.ui.conftest import LOAD_TIMEOUT_MS, Dialogs


def mime_of(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drag_enter(target: QWidget, mime: QMimeData) -> bool:
    """Whether `target` (the window or the composer) accepts the drag as it enters."""
    event = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)  # fmt: skip
    event.setAccepted(False)
    QApplication.sendEvent(target, event)
    return event.isAccepted()


def drop(target: QWidget, mime: QMimeData) -> None:
    assert drag_enter(target, mime)
    event = QDropEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)  # fmt: skip
    QApplication.sendEvent(target, event)
    assert event.isAccepted()


def test_a_dropped_model_is_used_where_it_lies_and_loaded(
    window: MainWindow, tiny_model: Path, tmp_path: Path, qtbot: QtBot
) -> None:
    elsewhere = tmp_path / "Downloads" / "my-tiny-model.gguf"
    elsewhere.parent.mkdir()
    shutil.copy(tiny_model, elsewhere)
    before = {m.path for m in window.picker.models()}
    drop(window, mime_of(elsewhere))
    qtbot.waitUntil(lambda: window.loaded_model is not None and window.loaded_model.path == elsewhere.resolve(),
                    timeout=LOAD_TIMEOUT_MS)  # fmt: skip
    assert {m.path for m in window.picker.models()} == before | {elsewhere.resolve()}
    assert elsewhere.exists() and not any(window.paths.models.rglob("my-tiny-model.gguf"))  # not copied
    assert window.picker.current_model() is not None and window.picker.current_model().path == elsewhere.resolve()


def test_a_file_that_is_not_a_model_says_why_and_changes_nothing(
    window: MainWindow, dialogs: Dialogs, tmp_path: Path, qtbot: QtBot
) -> None:
    broken = tmp_path / "notes.gguf"
    broken.write_bytes(b"not a model at all, only text that happens to be named .gguf\n" * 20)
    loaded, listed = window.loaded_model, [m.path for m in window.picker.models()]
    drop(window.composer.edit.viewport(), mime_of(broken))  # the composer passes model files on
    qtbot.waitUntil(lambda: bool(dialogs.warnings))
    title, sentence = dialogs.warnings[0]
    assert title == "Model not added" and "notes.gguf" in sentence and "\n" not in sentence.strip()
    assert window.loaded_model is loaded and [m.path for m in window.picker.models()] == listed


def test_a_dropped_export_is_imported(
    make_window: Callable[..., MainWindow], history: History, tmp_path: Path, qtbot: QtBot
) -> None:
    cid = history.create_conversation("Soup").id
    history.add_message(cid, "user", "How long do turnips cook?")
    history.add_message(cid, "assistant", "About twenty minutes.")
    export_to_path(history, None, "json", tmp_path / "soup.json")
    window = make_window(auto_load=False)
    transfer = window.navigation.history_actions.transfer
    with qtbot.waitSignal(transfer.imported, timeout=10_000) as done:
        drop(window, mime_of(tmp_path / "soup.json"))
    (new_id,) = done.args[0]
    assert new_id != cid and [m.content for m in history.messages(new_id)] == [
        "How long do turnips cook?",
        "About twenty minutes.",
    ]


def test_other_drags_are_left_to_the_widget_under_the_mouse(
    make_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    window = make_window(auto_load=False)
    assert "Drop a .gguf file on this window" in window.chat_view.placeholder  # no models yet: how to add one
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello", encoding="utf-8")
    model = tmp_path / "model.gguf"
    assert not drag_enter(window, mime_of(text_file))
    assert not drag_enter(window, mime_of(model, text_file))  # a mixed drag is not ours either
    remote = QMimeData()
    remote.setUrls([QUrl("https://example.com/model.gguf")])
    assert not drag_enter(window, remote)
    words = QMimeData()
    words.setText("some words")
    assert drag_enter(window.composer.edit.viewport(), words)  # the composer still takes dropped text


def test_a_text_file_dropped_on_the_composer_is_added_to_the_message(
    make_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    window = make_window(auto_load=False)
    code = tmp_path / "sort.py"
    code.write_text('"""Docs with a fence inside:\n```\nnot the end\n```\n"""\nprint(sorted([3, 1, 2]))\n', "utf-8")
    window.composer.edit.setPlainText("Why does this print a sorted list?")
    window.composer.edit.moveCursor(QTextCursor.MoveOperation.End)
    drop(window.composer.edit.viewport(), mime_of(code))
    text = window.composer.text()
    assert text.startswith("Why does this print a sorted list?\nsort.py:\n````py\n")  # a fence longer than any inside
    assert code.read_text("utf-8").rstrip() in text and text.endswith("\n````\n")
    assert "Added sort.py" in window.statusBar().currentMessage()
    assert not drag_enter(window, mime_of(code))  # outside the composer a .py file is not ours


def test_files_that_are_not_text_or_too_large_are_not_added(
    make_window: Callable[..., MainWindow], tmp_path: Path
) -> None:
    window = make_window(auto_load=False)
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    drop(window.composer.edit.viewport(), mime_of(picture))
    assert window.composer.text() == ""
    assert (
        window.statusBar().currentMessage() == "photo.png is not UTF-8 text; only text files can be added to a message."
    )
    huge = tmp_path / "huge.log"
    huge.write_text("x" * (ATTACH_MAX_BYTES + 1), "utf-8")
    drop(window.composer.edit.viewport(), mime_of(huge))
    assert window.composer.text() == "" and "too large" in window.statusBar().currentMessage()

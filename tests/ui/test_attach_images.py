"""Images attached in the real window (issue 17, Attaching): "Attach image…" and Ctrl+V put chips above the box;
sending stores them with your message and the generated vision model reads them (the reply's receipt lists each);
a text-only model refuses in one sentence and keeps the message; a file that is not an image says why."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QGuiApplication, QImage
from pytestqt.qtbot import QtBot
from vision_factory import write_tiny_vision_pair

from llamadesk.core.settings import AppSettings, save_settings
from llamadesk.paths import Paths
from llamadesk.ui.chat import attachments
from llamadesk.ui.chat.model import shown_text
from llamadesk.ui.main_window import MainWindow

LOAD_TIMEOUT_MS = 180_000
REPLY_TIMEOUT_MS = 180_000


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Path:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return path


@pytest.fixture
def vision_window(make_window: Callable[..., MainWindow], paths: Paths, qtbot: QtBot) -> MainWindow:
    """The window with the generated vision model loaded through its own load path (the projector beside it)."""
    model, _projector = write_tiny_vision_pair(paths.models)
    save_settings(paths.settings_file, AppSettings(n_threads=1, last_model=str(model)))
    w = make_window()
    qtbot.waitUntil(lambda: w.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    assert w.model_info is not None and w.model_info.projector.startswith("mmproj-")
    w.panel.rows["max_tokens"].spin.setValue(8)
    return w


def pick(monkeypatch: pytest.MonkeyPatch, *files: Path) -> None:
    """The file dialog answers with `files` (the dialog itself is Qt's)."""
    monkeypatch.setattr(attachments.QFileDialog, "getOpenFileNames",
                        staticmethod(lambda *_a, **_k: ([str(f) for f in files], "")))  # fmt: skip


def paste_picture(qtbot: QtBot, window: MainWindow, color: Qt.GlobalColor) -> None:
    picture = QImage(40, 30, QImage.Format.Format_RGB32)
    picture.fill(color)
    mime = QMimeData()
    mime.setImageData(picture)
    QGuiApplication.clipboard().setMimeData(mime)
    window.composer.edit.setFocus()
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)


def type_and_send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)


def test_picked_and_pasted_images_go_with_the_message_to_the_vision_model(
    vision_window: MainWindow, tmp_path: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, composer = vision_window, vision_window.composer
    pick(monkeypatch, write_png(tmp_path / "red.png", (200, 30, 30)))
    qtbot.mouseClick(composer.attach_button, Qt.MouseButton.LeftButton)
    paste_picture(qtbot, w, Qt.GlobalColor.blue)
    assert [a.name for a in composer.images()] == ["red.png", attachments.PASTED_NAME]
    assert composer.attachments.isVisible() and len(composer.attachments.chips()) == 2
    assert composer.text() == ""  # the pasted picture is attached, not typed

    type_and_send(qtbot, w, "What is in these?")
    qtbot.waitUntil(lambda: not w.is_generating and len(w.history.messages(w.current_cid or 0)) == 2,
                    timeout=REPLY_TIMEOUT_MS)  # fmt: skip
    user, reply = w.history.messages(w.current_cid)  # type: ignore[arg-type]
    assert user.content == "What is in these?"
    assert [(i.width, i.height) for i in user.images] == [(64, 48), (40, 30)]
    assert all(w.history.images.path(i.sha256) is not None for i in user.images)
    assert reply.receipt is not None
    assert [i["sha256"] for i in reply.receipt["images"]] == [i.sha256 for i in user.images]
    assert all(i["tokens"] > 0 for i in reply.receipt["images"])
    assert composer.images() == [] and not composer.attachments.isVisible()
    assert shown_text(w.chat_model.rows()[0]).splitlines() == ["What is in these?", "🖼 64×48", "🖼 40×30"]

    type_and_send(qtbot, w, "And now?")  # a later turn: the images held on screen are sent again
    qtbot.waitUntil(lambda: not w.is_generating and len(w.history.messages(w.current_cid or 0)) == 4,
                    timeout=REPLY_TIMEOUT_MS)  # fmt: skip
    later = w.history.messages(w.current_cid)[-1]  # type: ignore[arg-type]
    assert later.receipt is not None
    assert [i["sha256"] for i in later.receipt["images"]] == [i.sha256 for i in user.images]
    assert shown_text(w.chat_model.rows()[2]) == "And now?"


def test_a_chip_is_removed_with_its_cross(
    vision_window: MainWindow, tmp_path: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    composer = vision_window.composer
    pick(monkeypatch, write_png(tmp_path / "a.png", (1, 2, 3)), write_png(tmp_path / "b.png", (4, 5, 6)))
    qtbot.mouseClick(composer.attach_button, Qt.MouseButton.LeftButton)
    first = composer.attachments.chips()[0]
    qtbot.mouseClick(first.remove_button, Qt.MouseButton.LeftButton)
    assert [a.name for a in composer.images()] == ["b.png"]


def test_a_file_that_is_not_an_image_says_why_and_the_others_stay(
    vision_window: MainWindow, tmp_path: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    composer = vision_window.composer
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture at all\n", encoding="utf-8")
    pick(monkeypatch, notes, write_png(tmp_path / "ok.png", (9, 9, 9)))
    qtbot.mouseClick(composer.attach_button, Qt.MouseButton.LeftButton)
    assert [a.name for a in composer.images()] == ["ok.png"]
    # the sentence of the bad file was said, then the good file's attaching cleared the line; attach it alone
    pick(monkeypatch, notes)
    qtbot.mouseClick(composer.attach_button, Qt.MouseButton.LeftButton)
    sentence = composer.note.text()
    assert composer.note.isVisible() and sentence.startswith("notes.png ") and sentence.endswith(".")
    assert "Traceback" not in sentence
    assert [a.name for a in composer.images()] == ["ok.png"]


def test_a_text_only_model_refuses_images_in_a_sentence_and_keeps_the_message(window: MainWindow, qtbot: QtBot) -> None:
    composer = window.composer
    paste_picture(qtbot, window, Qt.GlobalColor.green)
    assert len(composer.images()) == 1
    type_and_send(qtbot, window, "Describe it")
    assert "does not read images" in composer.note.text() and composer.note.isVisible()
    assert composer.text() == "Describe it" and len(composer.images()) == 1  # nothing lost
    assert window.current_cid is None or window.history.messages(window.current_cid) == []
    assert not window.is_generating


def test_the_model_picker_lists_the_vision_model_but_not_its_projector(
    make_window: Callable[..., MainWindow], paths: Paths, qtbot: QtBot
) -> None:
    model, projector = write_tiny_vision_pair(paths.models)
    window = make_window(auto_load=False)
    listed = [m.path for m in window.picker.models()]
    assert model in listed and projector not in listed  # a projector is loaded with its model, never alone

"""Receipts in the real window: every value on demand, and Reproduce gives the identical reply."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000
LOAD_TIMEOUT_MS = 60_000


def send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)


def click_action(qtbot: QtBot, window: MainWindow, row: int, action: str) -> None:
    view = window.chat_view
    index = window.chat_model.index(row, 0)
    rect = view.delegate.action_rect(index, view.visualRect(index), action)
    assert rect is not None
    qtbot.mouseMove(view.viewport(), rect.center().toPoint())
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center().toPoint())


def test_the_receipt_shows_model_sampling_seed_template_and_figures(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window.panel.system_prompt_edit.setPlainText("Be brief.")
    send(qtbot, window, "hello")
    click_action(qtbot, window, 1, "receipt")
    dialog = window.chat.receipt_dialog
    assert dialog is not None and dialog.isVisible()
    info = window.model_info
    assert info is not None
    receipt = history.messages(window.current_cid)[-1].receipt  # type: ignore[arg-type]
    assert receipt is not None
    assert dialog.value("File") == info.file_name
    assert dialog.value("SHA-256") == info.sha256
    assert dialog.value("Quantization") == info.quantization
    assert dialog.value("Chat template") == f"{info.template_name} (from {info.template_source})"
    assert dialog.value("Temperature") == "0.7" and dialog.value("Top-k") == "40"
    assert dialog.value("Max tokens") == "64" and dialog.value("Mirostat eta") == "0.1"
    assert dialog.value("Seed") == str(receipt["seed"])
    assert dialog.value("Generated tokens") == str(receipt["generated_tokens"])
    assert dialog.value("Finish reason") in ("stop", "length")
    assert dialog.value("Time to first token").endswith(("ms", "s"))  # type: ignore[union-attr]
    assert dialog.value("Speed").endswith("tokens/s")  # type: ignore[union-attr]
    assert dialog.value("System prompt") == "Be brief." and receipt["system_prompt"] == "Be brief."
    assert dialog.reproduce_button.isEnabled() and not dialog.note.isVisible()
    dialog.close()


def test_reproduce_gives_the_identical_text_at_temperature_above_zero(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window.panel.rows["temperature"].set_value(0.9)
    window.panel.rows["max_tokens"].spin.setValue(40)
    assert window.panel.params().seed is None  # a random seed, recorded in the receipt
    send(qtbot, window, "surprise me")
    cid = window.current_cid
    assert cid is not None
    original = history.messages(cid)[-1]
    window.panel.rows["temperature"].set_value(0.2)  # the panel changed since: Reproduce uses the receipt
    send(qtbot, window, "and something else")  # the engine's cache now holds another conversation

    window.chat.on_action("prev", window.chat_model.row(1).message_id)  # nothing to go back to: no change
    window.chat.show_branches()
    assert window.chat.branch_dialog is not None
    window.chat.branch_dialog.close()
    window.chat.on_action("receipt", original.id)
    dialog = window.chat.receipt_dialog
    assert dialog is not None
    qtbot.mouseClick(dialog.reproduce_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)

    alternatives = history.children(cid, original.parent_id)
    again = alternatives[-1]
    assert len(alternatives) == 2 and again.id != original.id
    assert again.content == original.content and original.content
    assert again.receipt is not None and original.receipt is not None
    assert again.receipt["seed"] == original.receipt["seed"]
    assert again.receipt["sampling"]["temperature"] == 0.9 and again.receipt["reproduces"] == original.id
    shown = window.chat_model.row(1)
    assert shown.message_id == again.id and (shown.alternative, shown.alternatives) == (2, 2)


def test_reproduce_needs_the_same_model_file(
    make_window: Callable[..., MainWindow], paths: Paths, models_dir: Path, endless_model: Path,
    history: History, qtbot: QtBot,
) -> None:  # fmt: skip
    shutil.copy(endless_model, paths.models / "zz-other.gguf")
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    window.panel.rows["max_tokens"].spin.setValue(16)
    loaded = window.model_info.file_name  # type: ignore[union-attr]
    send(qtbot, window, "hi")
    reply = window.chat_model.row(1).message_id
    other = "zz-other.gguf" if loaded != "zz-other.gguf" else "tiny-chatml.gguf"
    names = [m.path.name for m in window.picker.models()]
    window.picker.combo.setCurrentIndex(names.index(other))
    qtbot.mouseClick(window.picker.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: window.model_info is not None and window.model_info.file_name == other and not window.is_loading,
        timeout=LOAD_TIMEOUT_MS,
    )
    dialog = window.chat.show_receipt(reply)
    assert dialog is not None
    assert not dialog.reproduce_button.isEnabled()
    assert loaded in dialog.note.text() and "load that exact file" in dialog.note.text()
    dialog.close()

"""A/B compare in the real window: your last message with two settings or two models, with speed and TTFT."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.sampling import PRESETS
from llamadesk.paths import Paths
from llamadesk.ui.chat.compare import CURRENT, LOADED, memory_note
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.workers import live_hosts

REPLY_TIMEOUT_MS = 60_000
LOAD_TIMEOUT_MS = 60_000


def test_compare_runs_a_then_b_and_keeps_the_history_as_it_was(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    assert window.chat.show_compare() is None  # nothing to compare yet
    window.send("compare me")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    before = [m.id for m in history.all_messages(window.current_cid)]  # type: ignore[arg-type]

    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dialog = window.chat.compare_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.prompt_view.toPlainText() == "compare me"
    a, b = dialog.sides
    a.combo.setCurrentText("Precise")
    b.combo.setCurrentText("Creative")
    assert dialog.params_of(b).temperature == PRESETS["Creative"].temperature
    assert dialog.params_of(a).max_tokens == window.panel.params().max_tokens  # the reply length is yours
    with qtbot.waitSignal(dialog.finishedBoth, timeout=REPLY_TIMEOUT_MS):
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    for side in (a, b):
        assert side.stats is not None and side.stats.generated_tokens > 0
        assert "tokens/s" in side.figures.text() and "first token after" in side.figures.text()
        assert side.text.toPlainText()
    assert [m.id for m in history.all_messages(window.current_cid)] == before  # type: ignore[arg-type]
    dialog.close()
    window.send("still works")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.chat_model.row(3).status == "complete"


def test_compare_two_models_runs_b_in_a_second_engine_closed_with_the_dialog(
    make_window: Callable[..., MainWindow], paths: Paths, models_dir: Path, endless_model: Path, qtbot: QtBot
) -> None:
    shutil.copy(endless_model, paths.models / "zz-other.gguf")
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None and not window.is_loading, timeout=LOAD_TIMEOUT_MS)
    window.panel.rows["max_tokens"].spin.setValue(6)
    loaded = window.model_info.file_name  # type: ignore[union-attr]
    window.send("which model are you?")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)

    dialog = window.chat.show_compare()
    assert dialog is not None
    a, b = dialog.sides
    assert not a.model_combo.isEnabled() and a.model_combo.currentText() == f"{LOADED}: {loaded}"
    other = next(i for i in range(b.model_combo.count()) if b.model_combo.itemText(i) != LOADED)
    other_name = b.model_combo.itemData(other).path.name
    assert other_name != loaded and b.model_combo.count() == 2  # the loaded model is not offered twice
    b.model_combo.setCurrentIndex(other)
    assert dialog.memory.isVisible() and other_name in dialog.memory.text()
    b.combo.setCurrentText(CURRENT)
    with qtbot.waitSignal(dialog.finishedBoth, timeout=REPLY_TIMEOUT_MS):
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    assert a.stats is not None and b.stats is not None
    assert a.figures.text().startswith(loaded) and b.figures.text().startswith(other_name)
    assert "tokens/s" in b.figures.text() and "first token after" in b.figures.text()
    assert dialog.other_host is not None and len(live_hosts()) == 2
    assert window.model_info is not None and window.model_info.file_name == loaded  # A's model stays loaded

    with qtbot.waitSignal(dialog.finishedBoth, timeout=REPLY_TIMEOUT_MS):  # again: B's model is still loaded
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    assert b.figures.text().startswith(other_name)
    dialog.close()
    assert dialog.other_host is None and live_hosts() == [window.host]
    window.send("still works")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.chat_model.row(3).status == "complete"


def test_compare_on_a_notebook_continues_its_text_as_a_completion(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window.panel.system_prompt_edit.setPlainText("Be brief.")  # a chat would send it; a completion must not
    window.notebook.action.trigger()
    editor = window.notebook.panel.editor
    editor.setPlainText("Once upon a time")
    qtbot.mouseClick(window.notebook.panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    cid = window.current_cid
    assert cid is not None and window.notebook.active
    document, continuation = history.messages(cid)[-2:]
    assert document.content == "Once upon a time" and continuation.receipt is not None
    assert continuation.receipt["mode"] == "completion"
    before = [m.id for m in history.all_messages(cid)]

    dialog = window.chat.show_compare()
    assert dialog is not None and dialog.mode == "completion"
    assert dialog.prompt_view.toPlainText() == "Once upon a time"
    a, b = dialog.sides
    b.combo.setCurrentText(CURRENT)
    with qtbot.waitSignal(dialog.finishedBoth, timeout=REPLY_TIMEOUT_MS):
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    for side in (a, b):
        assert side.stats is not None and side.stats.generated_tokens > 0
        assert side.receipt["mode"] == "completion"  # the text continued as raw text, with nothing before it
        assert side.stats.prompt_tokens == continuation.receipt["prompt_tokens"]
    dialog.close()
    assert [m.id for m in history.all_messages(cid)] == before

    window.notebook.action.trigger()  # the same conversation as a chat: compare answers it as a chat again
    dialog = window.chat.show_compare()
    assert dialog is not None and dialog.mode == "chat"
    dialog.close()


def test_memory_note_warns_when_the_second_model_may_not_fit(tiny_model: Path) -> None:
    assert "may not fit" in memory_note(tiny_model, 512, ram_free=0)
    assert "second engine" in memory_note(tiny_model, 512, ram_free=8 << 30)
    assert "No model file" in memory_note(tiny_model.parent / "missing.gguf", 512)

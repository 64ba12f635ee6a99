"""A/B compare in the real window: your last message with two settings, side by side, with speed and TTFT."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.sampling import PRESETS
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000


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
        assert "tok/s" in side.figures.text() and "TTFT" in side.figures.text()
        assert side.text.toPlainText()
    assert [m.id for m in history.all_messages(window.current_cid)] == before  # type: ignore[arg-type]
    dialog.close()
    window.send("still works")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.chat_model.row(3).status == "complete"

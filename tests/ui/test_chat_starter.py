"""The real starter model in the real window: a markdown answer with a highlighted code block, reproduced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow

pytestmark = pytest.mark.starter
TIMEOUT_MS = 180_000


def test_a_real_answer_renders_code_and_reproduces(
    make_window: Callable[..., MainWindow], paths: Paths, starter_model: Path, history: History, qtbot: QtBot
) -> None:
    (paths.models / starter_model.name).symlink_to(starter_model)
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=TIMEOUT_MS)
    panel = window.panel
    panel.rows["max_tokens"].spin.setValue(120)
    panel.rows["temperature"].set_value(0.8)
    # A fixed seed: at 0.8 a 135M model does not put its answer in a code block every time (a random seed
    # made this test fail now and then). Reproduce with a random seed is tested on the generated model.
    panel.random_seed.setChecked(False)
    panel.seed_spin.setValue(7)
    window.send("Write a Python function that adds two numbers. Put the code in a markdown code block.")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    index = window.chat_model.index(1, 0)
    blocks = window.chat_view.delegate.render_info(index).code_blocks
    assert blocks and "def " in blocks[0].code  # the fence became a block with a Copy link

    original = history.messages(window.current_cid)[-1]  # type: ignore[arg-type]
    assert window.chat.show_receipt(original.id) is not None
    assert window.chat.receipt_dialog is not None and window.chat.receipt_dialog.reproduce_button.isEnabled()
    window.chat.receipt_dialog.reproduce_button.click()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    again = history.messages(window.current_cid)[-1]  # type: ignore[arg-type]
    assert again.id != original.id and again.content == original.content

"""Search, find and the model manager reached from the real main window."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.main_window import MainWindow


def _fill(history: History) -> tuple[int, int, int]:
    first = history.create_conversation("Sailing notes")
    history.add_message(first.id, "user", "How do llamas sail?")
    history.add_message(first.id, "assistant", "With a small boat and a steady wind.")
    second = history.create_conversation("Cooking")
    history.add_message(second.id, "user", "A soup recipe please")
    target = history.add_message(second.id, "assistant", "Boil the turnips slowly in broth.")
    for i in range(40):  # enough rows that the hit has to be scrolled to
        history.add_message(second.id, "user", f"filler question {i}")
        history.add_message(second.id, "assistant", f"filler answer {i}")
    return first.id, second.id, target.id


def test_a_search_hit_opens_its_conversation_at_the_message(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot
) -> None:
    first, second, target = _fill(history)
    window = make_window(auto_load=False)
    window.select_conversation(first)
    nav = window.navigation
    nav.search_action.trigger()  # Ctrl+Shift+F
    qtbot.waitUntil(nav.search_dock.isVisible)
    panel = nav.search_panel
    panel.set_query("turnips")
    panel.run_now()
    qtbot.waitUntil(lambda: panel.model.rowCount() > 0)
    with qtbot.waitSignal(panel.openRequested, timeout=5000):
        qtbot.keyClick(panel.field, Qt.Key.Key_Return)
    assert window.current_cid == second
    row = window.chat_model.find(target)
    assert row >= 0
    qtbot.waitUntil(lambda: window.chat_view.visualRect(window.chat_model.index(row, 0)).intersects(
        window.chat_view.viewport().rect()))  # fmt: skip


def test_find_bar_steps_through_matches_in_the_open_conversation(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot
) -> None:
    _, second, _ = _fill(history)
    window = make_window(auto_load=False)
    window.select_conversation(second)
    window.window_actions.find.trigger()
    bar = window.navigation.find_bar
    qtbot.waitUntil(bar.isVisible)
    bar.open_find("filler answer")
    qtbot.waitUntil(lambda: len(bar.matches()) == 40)


def test_models_menu_opens_the_model_manager(make_window: Callable[..., MainWindow], qtbot: QtBot) -> None:
    window = make_window(auto_load=False)
    window.navigation.models_action.trigger()
    manager = window.navigation.model_manager
    assert manager is not None
    qtbot.waitUntil(manager.isVisible)

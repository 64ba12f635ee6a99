"""Keyboard, theme, text size and screen-reader names in the real window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QApplication, QComboBox, QWidget
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.markdown import DARK, LIGHT
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.theme import ThemeManager, is_dark

REPLY_TIMEOUT_MS = 60_000
CTRL = Qt.KeyboardModifier.ControlModifier


def _inside(widget: QWidget, kinds: tuple[type, ...]) -> bool:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, kinds):
            return True
        parent = parent.parentWidget()
    return False


def unnamed_controls(root: QWidget) -> list[str]:
    """Focusable widgets under `root` that a screen reader could not name."""
    missing = []
    for w in root.findChildren(QWidget):
        if w.focusPolicy() == Qt.FocusPolicy.NoFocus or w.objectName().startswith("qt_"):
            continue
        if _inside(w, (QAbstractSpinBox, QComboBox)):
            continue  # the line edit or popup list of a spin box or combo box: named through its owner
        name = w.accessibleName() or (w.text() if isinstance(w, QAbstractButton) else "")
        if not name.strip():
            missing.append(f"{type(w).__name__} {w.objectName()!r}")
    return missing


def test_shortcuts_new_find_focus_settings(window: MainWindow, history: History, qtbot: QtBot) -> None:
    window.chat_view.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_N, CTRL)
    assert window.current_cid is not None and len(history.list_conversations()) == 1
    with qtbot.waitSignal(window.find_requested, timeout=1000):
        qtbot.keyClick(window, Qt.Key.Key_F, CTRL)
    window.chat_view.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_L, CTRL)
    assert QApplication.focusWidget() is window.composer.edit
    visible = window.settings_dock.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_Comma, CTRL)
    assert window.settings_dock.isVisible() is not visible
    qtbot.keyClick(window, Qt.Key.Key_Comma, CTRL)
    assert window.settings_dock.isVisible() is visible


def test_enter_sends_escape_stops_and_ctrl_r_regenerates(endless_window: MainWindow, qtbot: QtBot) -> None:
    window = endless_window
    window.panel.rows["max_tokens"].spin.setValue(200)
    edit = window.composer.edit
    edit.setFocus()
    qtbot.keyClicks(edit, "go")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert window.is_generating
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.chat_model.row(1).status == "cancelled"
    assert window.window_actions.regenerate.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_R, CTRL)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.chat_model.row(1).alternatives == 2


def test_dark_theme_follows_the_system_and_can_be_chosen(
    window: MainWindow, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = QGuiApplication.instance()
    assert isinstance(app, QGuiApplication)
    renderer = window.chat_view.delegate.renderer
    assert getattr(renderer, "theme", None) is LIGHT and not window.theme.dark
    monkeypatch.setattr(ThemeManager, "system_dark", lambda self: True)
    app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # the OS switched to dark
    assert window.theme.dark and is_dark(app.palette()) and getattr(renderer, "theme", None) is DARK
    combo = window.panel.appearance_box.theme_combo
    combo.setCurrentIndex(combo.findData("light"))
    combo.activated.emit(combo.currentIndex())
    assert not window.theme.dark and not is_dark(app.palette()) and window.prefs.theme.value == "light"
    app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # your choice wins over the system's
    assert not window.theme.dark
    window.close()
    assert app.palette().color(QPalette.ColorRole.Window).lightness() >= 128  # the process's palette is back


def test_text_size_changes_with_ctrl_plus_and_is_remembered(
    make_window: Callable[..., MainWindow], models_dir: Path, qtbot: QtBot
) -> None:
    window = make_window(auto_load=False)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)  # shortcuts reach the active window only
    base = window.font_size()
    qtbot.keyClick(window, Qt.Key.Key_Plus, CTRL)
    qtbot.keyClick(window, Qt.Key.Key_Plus, CTRL)
    assert window.font_size() == round(base) + 2 and window.composer.edit.font().pointSizeF() == window.font_size()
    assert window.panel.appearance_box.font_spin.value() == round(base) + 2
    window.close()
    again = make_window(auto_load=False)
    assert again.font_size() == round(base) + 2
    again.activateWindow()
    qtbot.waitUntil(again.isActiveWindow)
    qtbot.keyClick(again, Qt.Key.Key_0, CTRL)
    assert again.font_size() == QApplication.font().pointSizeF()


def test_every_control_has_a_name_for_screen_readers(window: MainWindow, qtbot: QtBot) -> None:
    window.send("hello")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    receipt = window.chat.show_receipt(window.chat_model.row(1).message_id)
    branches = window.chat.show_branches()
    assert receipt is not None and branches is not None
    for root in (window, receipt, branches):  # the whole window: sidebar, toolbar and docks included
        assert unnamed_controls(root) == [], type(root).__name__
    receipt.close()
    branches.close()

"""Icons come from the platform's theme, with Qt's bundled icons where the theme has none (issue 20): the window's
common actions carry one, and the toolbar's Settings button keeps its word beside it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QToolBar, QToolButton
from pytestqt.qtbot import QtBot

from llamadesk.ui.icons import ICONS, icon
from llamadesk.ui.main_window import MainWindow


def test_every_icon_has_a_fallback_when_the_theme_has_none(qapp: object) -> None:
    theme = QIcon.themeName()
    QIcon.setThemeName("no-such-theme")  # as on a desktop without an icon theme
    try:
        for name in ICONS:
            assert not icon(name).isNull(), name
    finally:
        QIcon.setThemeName(theme)


def test_the_window_actions_show_icons_and_settings_keeps_its_word(
    make_window: Callable[..., MainWindow], qtbot: QtBot
) -> None:
    window = make_window(auto_load=False)
    actions = window.window_actions
    for action in (actions.new_chat, actions.quit, actions.find, actions.regenerate, window.toggle_settings_action):
        assert not action.icon().isNull(), action.text()
    toolbar = window.findChild(QToolBar, "modelToolbar")
    button = toolbar.widgetForAction(window.toggle_settings_action)
    assert isinstance(button, QToolButton)
    assert button.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon and button.text()

"""The window's menus and keyboard shortcuts, in one place: New, Find, Regenerate, Focus, Settings, text size."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QMainWindow, QMenu

from llamadesk.ui.icons import icon


class MenuId(str, Enum):
    """The menu bar's menus, addressed by id: features add their actions to `window.menus[MenuId.VIEW]`."""

    FILE = "&File"
    EDIT = "&Edit"
    CHAT = "&Chat"
    VIEW = "&View"
    HELP = "&Help"


@dataclass
class WindowActions:
    """The actions the window connects; each carries its shortcut, so menus show them."""

    new_chat: QAction
    quit: QAction
    find: QAction
    regenerate: QAction
    branches: QAction
    compare: QAction
    focus_composer: QAction
    larger_text: QAction
    smaller_text: QAction
    default_text: QAction
    stop: QShortcut
    menus: dict[MenuId, QMenu] = field(default_factory=dict)  # every menu of the bar, made here in this order


def _action(window: QMainWindow, text: str, keys: QKeySequence | QKeySequence.StandardKey | str, tip: str) -> QAction:
    action = QAction(text, window)
    action.setShortcut(QKeySequence(keys))
    action.setToolTip(tip)
    action.setStatusTip(tip)
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    return action


def build_menus(window: QMainWindow, settings_toggle: QAction) -> WindowActions:
    """File / Edit / Chat / View menus. Enter (send) and Esc (stop) live in the composer; Esc also works here."""
    actions = WindowActions(
        new_chat=_action(window, "New chat", QKeySequence.StandardKey.New, "Start a new conversation (Ctrl+N)"),
        quit=_action(window, "Quit", QKeySequence.StandardKey.Quit, "Quit LlamaDesk"),
        find=_action(window, "Find…", QKeySequence.StandardKey.Find, "Find in the conversations (Ctrl+F)"),
        regenerate=_action(window, "Regenerate", "Ctrl+R", "Another reply in place of the last; all are kept (Ctrl+R)"),
        branches=_action(window, "Branches…", "Ctrl+Shift+B", "The conversation's branches as a tree"),
        compare=_action(window, "Compare settings…", "Ctrl+Shift+K", "Your last message, two settings side by side"),
        focus_composer=_action(window, "Type a message", "Ctrl+L", "Move the cursor to the message box (Ctrl+L)"),
        larger_text=_action(window, "Larger text", QKeySequence.StandardKey.ZoomIn, "Make the chat's text larger"),
        smaller_text=_action(window, "Smaller text", QKeySequence.StandardKey.ZoomOut, "Make the chat's text smaller"),
        default_text=_action(window, "Default text size", "Ctrl+0", "The system's text size"),
        stop=QShortcut(QKeySequence(Qt.Key.Key_Escape), window),
    )
    actions.larger_text.setShortcuts([QKeySequence("Ctrl++"), QKeySequence("Ctrl+=")])
    for name in ("new_chat", "quit", "find", "regenerate"):
        getattr(actions, name).setIcon(icon(name))
    bar = window.menuBar()
    actions.menus = {menu_id: bar.addMenu(menu_id.value) for menu_id in MenuId}
    file_menu = actions.menus[MenuId.FILE]
    file_menu.addAction(actions.new_chat)
    file_menu.addSeparator()
    file_menu.addAction(actions.quit)
    actions.menus[MenuId.EDIT].addAction(actions.find)
    for action in (actions.regenerate, actions.branches, actions.compare, actions.focus_composer):
        actions.menus[MenuId.CHAT].addAction(action)
    view_menu = actions.menus[MenuId.VIEW]
    view_menu.addAction(settings_toggle)
    view_menu.addSeparator()
    for action in (actions.larger_text, actions.smaller_text, actions.default_text):
        view_menu.addAction(action)
    return actions

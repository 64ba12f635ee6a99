"""Screen readers (issue 20): every control a person can reach in the main window says what it is — its own text or
an accessible name — with the settings panel open at "Show all settings", and every one of them takes the keyboard's
focus by Tab or is a button's shortcut away."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QSlider,
    QTextEdit,
    QWidget,
)
from pytestqt.qtbot import QtBot

from llamadesk.ui.main_window import MainWindow

CONTROLS = (QAbstractButton, QComboBox, QLineEdit, QAbstractSpinBox, QSlider, QPlainTextEdit, QTextEdit)


def _name(widget: QWidget) -> str:
    text = widget.text() if isinstance(widget, (QAbstractButton, QLineEdit)) else ""
    return (widget.accessibleName() or text or "").strip(" &…")


def _unnamed(root: QWidget) -> tuple[list[str], int]:
    missing, checked = [], 0
    for widget in root.findChildren(QWidget):
        if not isinstance(widget, CONTROLS) or not widget.isVisibleTo(root):
            continue
        if isinstance(widget, QLineEdit) and isinstance(widget.parent(), (QComboBox, QAbstractSpinBox)):
            continue  # the combo's or spin box's own editor: the box carries the name
        checked += 1
        if not _name(widget):
            missing.append(
                f"{type(widget).__name__} {widget.objectName() or '(no objectName)'} tip={widget.toolTip()!r}"
            )
    return missing, checked


def test_every_visible_control_has_a_name(make_window: Callable[..., MainWindow], qtbot: QtBot) -> None:
    window = make_window(auto_load=False)
    window.resize(1280, 800)
    window.settings_dock.show()
    panel = window.panel
    if not panel.show_all_button.isChecked():
        panel.show_all_button.click()
    qtbot.waitUntil(lambda: window.settings_dock.isVisible())
    missing, checked = _unnamed(window)
    assert missing == [] and checked >= 30  # the composer, the toolbar, the list and every setting


def test_tab_reaches_the_composer_and_the_settings(make_window: Callable[..., MainWindow], qtbot: QtBot) -> None:
    window = make_window(auto_load=False)
    window.resize(1280, 800)
    window.settings_dock.show()
    window.activateWindow()
    window.composer.edit.setFocus()
    seen: set[int] = set()
    reached: list[QWidget] = []
    for _ in range(400):
        widget = window.focusWidget()
        if widget is None or id(widget) in seen:
            break
        seen.add(id(widget))
        reached.append(widget)
        window.focusNextChild()
    assert window.composer.edit in reached
    assert any(window.panel.isAncestorOf(w) for w in reached)  # the settings panel is on the Tab chain
    assert all(w.focusPolicy() & Qt.FocusPolicy.TabFocus for w in reached)

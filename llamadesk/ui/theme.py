"""Light and dark: follows the OS colour scheme unless you chose one; the chat's text size; UI preferences."""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from llamadesk.core.markdown import DARK, LIGHT, Theme

FONT_MIN, FONT_MAX = 7, 28


class ThemeChoice(str, Enum):
    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


THEME_LABELS = {ThemeChoice.SYSTEM: "Follow the system", ThemeChoice.LIGHT: "Light", ThemeChoice.DARK: "Dark"}


class UiPrefs:
    """How the window looks and behaves, in config/ui.ini (the core's settings.json holds the rest)."""

    def __init__(self, path: Path) -> None:
        self._settings = QSettings(str(path), QSettings.Format.IniFormat)

    def _get(self, key: str, default: str) -> str:
        return str(self._settings.value(key, default))

    @property
    def theme(self) -> ThemeChoice:
        try:
            return ThemeChoice(self._get("theme", ThemeChoice.SYSTEM.value))
        except ValueError:
            return ThemeChoice.SYSTEM

    @theme.setter
    def theme(self, value: ThemeChoice) -> None:
        self._settings.setValue("theme", ThemeChoice(value).value)

    @property
    def font_pt(self) -> int:
        try:
            value = int(self._get("font_pt", "0"))
        except ValueError:
            return 0
        return value if FONT_MIN <= value <= FONT_MAX else 0

    @font_pt.setter
    def font_pt(self, value: int) -> None:
        self._settings.setValue("font_pt", int(value) if FONT_MIN <= value <= FONT_MAX else 0)

    @property
    def overflow_policy(self) -> str:
        return self._get("overflow_policy", "stop")

    @overflow_policy.setter
    def overflow_policy(self, value: str) -> None:
        self._settings.setValue("overflow_policy", value)

    @property
    def prefill_while_typing(self) -> bool:
        return self._get("prefill_while_typing", "true").lower() != "false"

    @prefill_while_typing.setter
    def prefill_while_typing(self, value: bool) -> None:
        self._settings.setValue("prefill_while_typing", "true" if value else "false")

    @property
    def show_all_settings(self) -> bool:
        """The settings panel shows every setting (else the few most people touch)."""
        return self._get("show_all_settings", "false").lower() == "true"

    @show_all_settings.setter
    def show_all_settings(self, value: bool) -> None:
        self._settings.setValue("show_all_settings", "true" if value else "false")

    def sync(self) -> None:
        self._settings.sync()


def dark_palette() -> QPalette:
    p = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#202124",
        QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#1b1c1e",
        QPalette.ColorRole.AlternateBase: "#26282b",
        QPalette.ColorRole.ToolTipBase: "#2d2f33",
        QPalette.ColorRole.ToolTipText: "#e8eaed",
        QPalette.ColorRole.PlaceholderText: "#9aa0a6",
        QPalette.ColorRole.Text: "#e8eaed",
        QPalette.ColorRole.Button: "#2d2f33",
        QPalette.ColorRole.ButtonText: "#e8eaed",
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: "#3b82f6",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#7ab7ff",
        QPalette.ColorRole.LinkVisited: "#c59cff",
    }
    for role, colour in colours.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7f8489"))
    return p


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


class ThemeManager(QObject):
    """Applies the theme to the application and says when it changes (the chat re-renders its markdown)."""

    changed = Signal(bool)  # dark

    def __init__(self, choice: ThemeChoice = ThemeChoice.SYSTEM, parent: QObject | None = None) -> None:
        super().__init__(parent)
        app = QGuiApplication.instance()
        assert isinstance(app, QGuiApplication)
        self._app = app
        self._original = QPalette(app.palette())
        self._custom = False
        self.choice = choice
        self.dark = is_dark(self._original)
        app.styleHints().colorSchemeChanged.connect(self._on_system_changed)
        self.apply()

    def system_dark(self) -> bool:
        scheme = self._app.styleHints().colorScheme()
        if scheme == Qt.ColorScheme.Dark:
            return True
        if scheme == Qt.ColorScheme.Light:
            return False
        return is_dark(self._original)

    def set_choice(self, choice: ThemeChoice) -> None:
        self.choice = ThemeChoice(choice)
        self.apply()

    def apply(self) -> None:
        want_dark = self.system_dark() if self.choice is ThemeChoice.SYSTEM else self.choice is ThemeChoice.DARK
        if want_dark == is_dark(self._original):
            palette = self._original  # the platform's own palette already has the right brightness
        else:
            palette = dark_palette() if want_dark else QApplication.style().standardPalette()
        self._custom = palette is not self._original
        self._app.setPalette(palette)
        if want_dark != self.dark:
            self.dark = want_dark
            self.changed.emit(want_dark)

    def markdown_theme(self) -> Theme:
        return DARK if self.dark else LIGHT

    def _on_system_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self.choice is ThemeChoice.SYSTEM:
            self.apply()

    def restore(self) -> None:
        """Gives the application its own palette back (a window closing in a process that goes on)."""
        with contextlib.suppress(RuntimeError, TypeError):
            self._app.styleHints().colorSchemeChanged.disconnect(self._on_system_changed)
        if self._custom:
            self._app.setPalette(self._original)
            self._custom = False

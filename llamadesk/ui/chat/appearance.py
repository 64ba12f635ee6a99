"""The chat's look: the theme reaches the markdown renderer, the text size reaches the view and the composer."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QWidget

from llamadesk.ui.chat.view import ChatView
from llamadesk.ui.settings.general import AppearanceBox
from llamadesk.ui.theme import FONT_MAX, FONT_MIN, ThemeChoice, ThemeManager, UiPrefs

DEFAULT_POINTS = 10


class ChatAppearance(QObject):
    """Applies and remembers the theme choice and the chat's text size."""

    def __init__(
        self, prefs: UiPrefs, theme: ThemeManager, view: ChatView, editor: QWidget, box: AppearanceBox
    ) -> None:
        super().__init__(view)
        self.prefs, self.theme, self.view, self.editor, self.box = prefs, theme, view, editor, box
        box.themeChanged.connect(self.choose_theme)
        box.fontSizeChanged.connect(self.set_font_size)
        theme.changed.connect(self._on_theme_changed)
        box.set_values(prefs.theme.value, prefs.font_pt)
        self._on_theme_changed(theme.dark)
        self.set_font_size(prefs.font_pt)

    def choose_theme(self, value: str) -> None:
        self.prefs.theme = ThemeChoice(value)
        self.theme.set_choice(ThemeChoice(value))

    def _on_theme_changed(self, _dark: bool) -> None:
        set_theme = getattr(self.view.delegate.renderer, "set_theme", None)
        if set_theme is not None:
            set_theme(self.theme.markdown_theme())
        self.view.refresh_layout()

    def font_size(self) -> float:
        return self.view.font().pointSizeF()

    def set_font_size(self, points: int) -> None:
        """The chat's text size in points (0: the system's); kept for the next start."""
        points = points if FONT_MIN <= points <= FONT_MAX else 0
        font = QFont(QApplication.font())
        if points:
            font.setPointSizeF(points)
        for widget in (self.view, self.editor):
            widget.setFont(font)
        self.prefs.font_pt = points
        self.box.set_values(self.prefs.theme.value, points)
        self.view.refresh_layout()

    def step_font_size(self, step: int) -> None:
        current = round(self.font_size()) if self.font_size() > 0 else DEFAULT_POINTS
        self.set_font_size(max(FONT_MIN, min(FONT_MAX, current + step)))

"""The settings beside sampling: what happens when the context is full, and how the app looks."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QSpinBox, QWidget

from llamadesk.core.conversation.plan import POLICY_HELP, POLICY_LABELS, OverflowPolicy, parse_policy
from llamadesk.ui.theme import FONT_MAX, FONT_MIN, THEME_LABELS, ThemeChoice

POLICY_TIP = "What happens when the conversation no longer fits the model's context."


class ContextBox(QGroupBox):
    """The overflow policy: stop, drop the oldest turns, or drop the middle."""

    policyChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Context", parent)
        self.policy_combo = QComboBox(self)
        self.policy_combo.setObjectName("overflowPolicy")
        self.policy_combo.setAccessibleName("When the context is full")
        self.policy_combo.setToolTip(POLICY_TIP)
        for policy in OverflowPolicy:
            self.policy_combo.addItem(POLICY_LABELS[policy], policy.value)
            last = self.policy_combo.count() - 1
            self.policy_combo.setItemData(last, POLICY_HELP[policy], Qt.ItemDataRole.ToolTipRole)
        form = QFormLayout(self)
        form.addRow("When full", self.policy_combo)
        self.policy_combo.activated.connect(lambda _i: self.policyChanged.emit(self.policy().value))

    def policy(self) -> OverflowPolicy:
        return parse_policy(self.policy_combo.currentData())

    def set_policy(self, value: str) -> None:
        index = self.policy_combo.findData(parse_policy(value).value)
        self.policy_combo.setCurrentIndex(max(index, 0))


class AppearanceBox(QGroupBox):
    """Theme (follow the system, light, dark) and the text size of the chat."""

    themeChanged = Signal(str)
    fontSizeChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Appearance", parent)
        self.theme_combo = QComboBox(self)
        self.theme_combo.setObjectName("themeCombo")
        self.theme_combo.setAccessibleName("Theme")
        self.theme_combo.setToolTip("Follow the system's light or dark mode, or choose one.")
        for choice in ThemeChoice:
            self.theme_combo.addItem(THEME_LABELS[choice], choice.value)
        self.font_spin = QSpinBox(self)
        self.font_spin.setObjectName("fontSize")
        self.font_spin.setAccessibleName("Text size")
        self.font_spin.setToolTip("The size of the chat's text, in points (Ctrl++ and Ctrl+- also change it).")
        self.font_spin.setRange(FONT_MIN - 1, FONT_MAX)
        self.font_spin.setSpecialValueText("System")
        self.font_spin.setSuffix(" pt")
        self.font_spin.setKeyboardTracking(False)
        form = QFormLayout(self)
        form.addRow("Theme", self.theme_combo)
        form.addRow("Text size", self.font_spin)
        self.theme_combo.activated.connect(lambda _i: self.themeChanged.emit(str(self.theme_combo.currentData())))
        self.font_spin.valueChanged.connect(self._on_font)
        self._quiet = False

    def _on_font(self, value: int) -> None:
        if not self._quiet:
            self.fontSizeChanged.emit(0 if value < FONT_MIN else value)

    def set_values(self, theme: str, font_pt: int) -> None:
        """Shows the stored choices without emitting."""
        self._quiet = True
        try:
            self.theme_combo.setCurrentIndex(max(self.theme_combo.findData(theme), 0))
            self.font_spin.setValue(font_pt if font_pt >= FONT_MIN else FONT_MIN - 1)
        finally:
            self._quiet = False

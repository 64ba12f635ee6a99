"""The sampling panel, built from core.sampling.RANGES: a slider and a spin box per setting, kept in sync.

It opens on the few controls most people touch (preset, temperature, max tokens, system prompt) and the look of
the app; "Show all settings" opens the rest (the choice is kept in ui.ini by the settings keeper). Every control has
an information button that shows its explanation inside the panel, wrapped to its width (a tooltip runs off
the screen)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.presets import PresetStore, apply_preset
from llamadesk.core.sampling import MAX_SEED, RANGES, SEED_HELP, Range, SamplingParams
from llamadesk.ui.settings.general import AppearanceBox, ContextBox
from llamadesk.ui.settings.presets_bar import CUSTOM, PresetBar
from llamadesk.ui.settings.response_format import ResponseFormatBox
from llamadesk.ui.settings.tools_box import ToolsBox

__all__ = ["BASIC", "CUSTOM", "SamplingPanel", "SettingsDock"]
N_CTX_MIN, N_CTX_MAX, N_CTX_STEP = 256, 131072, 256
DEFAULTS = SamplingParams()
BASIC = ("temperature", "max_tokens")  # the sampling rows shown before "Show all settings"
SHOW_ALL, SHOW_FEWER = "Show all settings", "Show fewer settings"
PROMPT_HELP = "Instructions the model reads before every message of the conversation, such as a role or a style."
PRESET_HELP = (
    "A preset sets how the next word is picked (temperature and the settings under Show all settings); your reply "
    "length and seed stay. Save your own with Save…."
)
CTX_HELP = "How many tokens the model can see at once: prompt, history and reply together."
MODEL_RESET_HELP = (
    "Each model remembers the settings you last used with it. This puts back the settings its file recommends "
    "(LlamaDesk's defaults where it recommends none) for the loaded model."
)


class HelpToggle:
    """An information button and the explanation it shows or hides, wrapped inside the panel (tooltips run off)."""

    def __init__(self, name: str, label: str, text: str, parent: QWidget) -> None:
        self.button = QToolButton(parent)
        self.button.setObjectName(f"help_{name}")
        # The platform's information icon (bundled with Qt as a fallback); "?" where a style has none. Not the
        # ⓘ character: many fonts lack it and draw an empty box.
        icon = parent.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation)
        self.button.setText("?")
        if not icon.isNull():
            self.button.setIcon(icon)
            self.button.setIconSize(QSize(14, 14))
        self.button.setCheckable(True)
        self.button.setAutoRaise(True)
        self.button.setAccessibleName(f"Explain {label}")
        self.button.setToolTip(f"What {label} does")
        self.text = QLabel(text, parent)
        self.text.setObjectName(f"helpText_{name}")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setAccessibleName(f"About {label}")
        small = QFont(self.text.font())
        small.setPointSizeF(max(small.pointSizeF() * 0.9, 7.0))
        self.text.setFont(small)
        self.text.setVisible(False)
        self.button.toggled.connect(self.text.setVisible)


def _decimals(step: float) -> int:
    text = f"{step:g}"
    return len(text.split(".")[1]) if "." in text else 0


class RangeRow:
    """One setting: label, spin box, reset button and slider; the spin box holds the value."""

    def __init__(self, rng: Range, parent: QWidget) -> None:
        self.range = rng
        self.default = getattr(DEFAULTS, rng.name)
        self.label = QLabel(rng.label, parent)
        self.label.setToolTip(rng.help)
        self.spin: QSpinBox | QDoubleSpinBox
        if rng.is_int:
            spin = QSpinBox(parent)
            spin.setRange(int(rng.minimum), int(rng.maximum))
            spin.setSingleStep(int(rng.step))
            self.spin = spin
        else:
            dspin = QDoubleSpinBox(parent)
            dspin.setDecimals(_decimals(rng.step))
            dspin.setRange(rng.minimum, rng.maximum)
            dspin.setSingleStep(rng.step)
            self.spin = dspin
        self.spin.setObjectName(f"spin_{rng.name}")
        self.spin.setAccessibleName(rng.label)
        self.spin.setToolTip(rng.help)
        self.spin.setKeyboardTracking(False)
        self.spin.setMinimumWidth(84)
        self.slider = QSlider(Qt.Orientation.Horizontal, parent)
        self.slider.setObjectName(f"slider_{rng.name}")
        self.slider.setAccessibleName(f"{rng.label} slider")
        self.slider.setToolTip(rng.help)
        self.slider.setRange(0, round((rng.maximum - rng.minimum) / rng.step))
        self.slider.setPageStep(max(1, self.slider.maximum() // 20))
        self.reset = QToolButton(parent)
        self.reset.setObjectName(f"reset_{rng.name}")
        self.reset.setText("↺")
        self.reset.setAutoRaise(True)
        self.label.setBuddy(self.spin)
        self.reset.setToolTip(f"Reset {rng.label} to {self.default:g}")
        self.reset.setAccessibleName(f"Reset {rng.label}")
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(self._spin_changed)
        self.reset.clicked.connect(lambda: self.set_value(self.default))
        self.help = HelpToggle(rng.name, rng.label, rng.help, parent)
        self.set_value(self.default)

    def place(self, grid: QGridLayout, line: int) -> int:
        """Lays the row out from `line`: label, help, spin box, reset; the slider; the explanation. Returns the next."""
        grid.addWidget(self.label, line, 0)
        grid.addWidget(self.help.button, line, 1)
        grid.addWidget(self.spin, line, 2)
        grid.addWidget(self.reset, line, 3)
        grid.addWidget(self.slider, line + 1, 0, 1, 4)
        grid.setRowMinimumHeight(line + 1, 22)
        grid.addWidget(self.help.text, line + 2, 0, 1, 4)
        return line + 3

    def value(self) -> float | int:
        v = self.spin.value()
        return int(v) if self.range.is_int else round(float(v), _decimals(self.range.step) + 1)

    def set_value(self, value: float) -> None:
        self.spin.setValue(value)  # type: ignore[arg-type]
        self._spin_changed()

    def _position(self, value: float) -> int:
        return round((value - self.range.minimum) / self.range.step)

    def _slider_moved(self, position: int) -> None:
        value = self.range.minimum + position * self.range.step
        if self._position(self.spin.value()) != position:
            self.spin.setValue(round(value) if self.range.is_int else value)  # type: ignore[arg-type]

    def _spin_changed(self, *_: object) -> None:
        position = self._position(self.spin.value())
        if self.slider.value() != position:
            self.slider.blockSignals(True)
            self.slider.setValue(position)
            self.slider.blockSignals(False)
        self.reset.setEnabled(self.value() != self.default)


class SamplingPanel(QWidget):
    """System prompt, preset, every sampling setting, seed and context length. Emits on user changes only."""

    paramsChanged = Signal(object)  # SamplingParams
    systemPromptChanged = Signal(str)
    contextLengthChanged = Signal(int)
    showAllChanged = Signal(bool)  # the user opened or closed "Show all settings"

    def __init__(self, store: PresetStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("samplingPanel")
        self._updating = False
        self._model_defaults: Callable[[], SamplingParams] = SamplingParams

        prompt_box = QGroupBox("System prompt", self)
        self.system_prompt_edit = QPlainTextEdit(prompt_box)
        self.system_prompt_edit.setObjectName("systemPrompt")
        self.system_prompt_edit.setAccessibleName("System prompt")
        self.system_prompt_edit.setPlaceholderText("Instructions the model gets before every conversation turn")
        self.system_prompt_edit.setFixedHeight(96)
        self.system_prompt_edit.setTabChangesFocus(True)
        self.prompt_help = HelpToggle("systemPrompt", "the system prompt", PROMPT_HELP, prompt_box)
        prompt_grid = QGridLayout(prompt_box)
        prompt_grid.addWidget(self.system_prompt_edit, 0, 0)
        prompt_grid.addWidget(self.prompt_help.button, 0, 1, Qt.AlignmentFlag.AlignTop)
        prompt_grid.addWidget(self.prompt_help.text, 1, 0, 1, 2)

        # The few controls most people touch.
        sampling_box = QGroupBox("Sampling", self)
        sampling_box.setObjectName("basicSampling")
        grid = QGridLayout(sampling_box)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(2)
        grid.setColumnStretch(0, 1)
        self.presets = PresetBar(store, sampling_box)
        self.preset_combo = self.presets.combo
        preset_label = QLabel("Preset", sampling_box)
        preset_label.setBuddy(self.preset_combo)
        self.preset_help = HelpToggle("preset", "presets", PRESET_HELP, sampling_box)
        grid.addWidget(preset_label, 0, 0)
        grid.addWidget(self.preset_help.button, 0, 1)
        grid.addWidget(self.presets, 0, 2, 1, 2)
        grid.addWidget(self.preset_help.text, 1, 0, 1, 4)
        self.rows: dict[str, RangeRow] = {}
        line = 2
        for name in BASIC:
            row = RangeRow(RANGES[name], sampling_box)
            self.rows[name] = row
            line = row.place(grid, line)
        self.model_reset = QPushButton("Reset to the model's defaults", sampling_box)
        self.model_reset.setObjectName("resetToModelDefaults")
        self.model_reset.setAccessibleName("Reset to the model's defaults")
        self.model_reset.setToolTip(MODEL_RESET_HELP)
        grid.addWidget(self.model_reset, line, 0, 1, 4, Qt.AlignmentFlag.AlignLeft)

        self.context_box = ContextBox(self)
        self.appearance_box = AppearanceBox(self)

        self.show_all_button = QToolButton(self)
        self.show_all_button.setObjectName("showAllSettings")
        self.show_all_button.setAccessibleName(SHOW_ALL)
        self.show_all_button.setCheckable(True)
        self.show_all_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.show_all_button.setArrowType(Qt.ArrowType.RightArrow)
        self.show_all_button.setText(SHOW_ALL)
        self.show_all_button.setToolTip(
            "Top-p, top-k, penalties, Mirostat, the seed, the context length and what happens when it is full"
        )

        # Everything else, behind "Show all settings".
        self.all_settings = QWidget(self)
        self.all_settings.setObjectName("allSettings")
        more_box = QGroupBox("More sampling", self.all_settings)
        more_grid = QGridLayout(more_box)
        more_grid.setHorizontalSpacing(6)
        more_grid.setVerticalSpacing(2)
        more_grid.setColumnStretch(0, 1)
        line = 0
        for name, rng in RANGES.items():
            if name in BASIC:
                continue
            row = RangeRow(rng, more_box)
            self.rows[name] = row
            line = row.place(more_grid, line)
        self.rows = {name: self.rows[name] for name in RANGES}  # in RANGES' order, as params() builds them
        for row in self.rows.values():
            row.spin.valueChanged.connect(self._on_value_changed)

        seed_box = QGroupBox("Seed", self.all_settings)
        seed_layout = QGridLayout(seed_box)
        self.random_seed = QCheckBox("Random seed", seed_box)
        self.random_seed.setObjectName("randomSeed")
        self.random_seed.setAccessibleName("Random seed")
        self.random_seed.setToolTip(SEED_HELP)
        self.random_seed.setChecked(True)
        # A double spin box with no decimals: QSpinBox stops at 2**31 - 1, seeds go up to 2**32 - 2.
        self.seed_spin = QDoubleSpinBox(seed_box)
        self.seed_spin.setObjectName("seedSpin")
        self.seed_spin.setAccessibleName("Seed")
        self.seed_spin.setDecimals(0)
        self.seed_spin.setRange(0, MAX_SEED)
        self.seed_spin.setToolTip(SEED_HELP)
        self.seed_spin.setEnabled(False)
        self.seed_spin.setKeyboardTracking(False)
        self.seed_help = HelpToggle("seed", "the seed", SEED_HELP, seed_box)
        seed_layout.addWidget(self.random_seed, 0, 0)
        seed_layout.addWidget(self.seed_help.button, 0, 1)
        seed_layout.addWidget(self.seed_spin, 0, 2)
        seed_layout.setColumnStretch(2, 1)
        seed_layout.addWidget(self.seed_help.text, 1, 0, 1, 3)

        model_box = QGroupBox("Model", self.all_settings)
        model_box.setObjectName("modelBox")  # the advanced settings add their button here
        model_layout = QGridLayout(model_box)
        self.n_ctx_spin = QSpinBox(model_box)
        self.n_ctx_spin.setObjectName("contextLength")
        self.n_ctx_spin.setAccessibleName("Context length")
        self.n_ctx_spin.setRange(N_CTX_MIN, N_CTX_MAX)
        self.n_ctx_spin.setSingleStep(N_CTX_STEP)
        self.n_ctx_spin.setValue(4096)
        self.n_ctx_spin.setSuffix(" tokens")
        self.n_ctx_spin.setKeyboardTracking(False)
        self.n_ctx_spin.setToolTip(CTX_HELP)
        ctx_label = QLabel("Context length", model_box)
        ctx_label.setToolTip(CTX_HELP)
        ctx_label.setBuddy(self.n_ctx_spin)
        self.ctx_help = HelpToggle("contextLength", "the context length", CTX_HELP, model_box)
        note = QLabel("Applies the next time a model is loaded.", model_box)
        note.setObjectName("contextNote")
        note.setWordWrap(True)
        small = QFont(note.font())
        small.setPointSizeF(max(small.pointSizeF() * 0.9, 7.0))
        note.setFont(small)
        note.setEnabled(False)
        model_layout.addWidget(ctx_label, 0, 0)
        model_layout.addWidget(self.ctx_help.button, 0, 1)
        model_layout.addWidget(self.n_ctx_spin, 0, 2)
        model_layout.addWidget(self.ctx_help.text, 1, 0, 1, 3)
        model_layout.addWidget(note, 2, 0, 1, 3)
        model_layout.setColumnStretch(0, 1)

        all_layout = QVBoxLayout(self.all_settings)
        all_layout.setContentsMargins(0, 0, 0, 0)
        all_layout.setSpacing(10)
        all_layout.addWidget(more_box)
        all_layout.addWidget(seed_box)
        all_layout.addWidget(model_box)
        self.context_box.setParent(self.all_settings)
        all_layout.addWidget(self.context_box)
        self.all_settings.setVisible(False)

        # Theme and text size come right after the basic controls, never below the expert sliders.
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(10)
        layout.addWidget(prompt_box)
        self.response_format = ResponseFormatBox(self)  # Text, JSON or a JSON schema (response_format.py)
        layout.addWidget(self.response_format)
        self.tools = ToolsBox(self)  # the tools the model may call in this conversation (tools_box.py)
        layout.addWidget(self.tools)
        layout.addWidget(sampling_box)
        layout.addWidget(self.appearance_box)
        layout.addWidget(self.show_all_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.all_settings)
        layout.addStretch(1)

        self.presets.presetChosen.connect(self._apply_preset)
        self.random_seed.toggled.connect(self._on_seed_toggled)
        self.seed_spin.valueChanged.connect(self._on_value_changed)
        self.system_prompt_edit.textChanged.connect(self._on_prompt_changed)
        self.n_ctx_spin.valueChanged.connect(self._on_ctx_changed)
        self.show_all_button.toggled.connect(self._on_show_all_toggled)
        self.model_reset.clicked.connect(self.reset_to_model_defaults)
        self._sync_preset()

    # --- basic or all ------------------------------------------------------------------------------------------
    def showing_all(self) -> bool:
        return self.show_all_button.isChecked()

    def set_show_all(self, show: bool) -> None:
        """Shows every setting or only the basic ones, without emitting showAllChanged."""
        self.show_all_button.blockSignals(True)
        self.show_all_button.setChecked(show)
        self.show_all_button.blockSignals(False)
        self._show_all(show)

    def _show_all(self, show: bool) -> None:
        self.all_settings.setVisible(show)
        self.show_all_button.setText(SHOW_FEWER if show else SHOW_ALL)
        self.show_all_button.setAccessibleName(SHOW_FEWER if show else SHOW_ALL)
        self.show_all_button.setArrowType(Qt.ArrowType.DownArrow if show else Qt.ArrowType.RightArrow)

    def _on_show_all_toggled(self, show: bool) -> None:
        self._show_all(show)
        self.showAllChanged.emit(show)

    # --- the model's defaults ----------------------------------------------------------------------------------
    def set_model_defaults(self, defaults: Callable[[], SamplingParams], model_name: str | None) -> None:
        """What "Reset to the model's defaults" puts back for the model now loaded (None: no model); read when
        the button is pressed (the model file's header may recommend values)."""
        self._model_defaults = defaults
        self.model_reset.setToolTip(
            f"{MODEL_RESET_HELP.replace('the loaded model', model_name)}" if model_name else MODEL_RESET_HELP
        )

    def reset_to_model_defaults(self) -> None:
        """One click: every sampling value back to the model's defaults, as if you had set each one."""
        self.set_params(self._model_defaults())
        self.paramsChanged.emit(self.params())

    # --- values ----------------------------------------------------------------------------------------------
    def params(self) -> SamplingParams:
        values = {name: row.value() for name, row in self.rows.items()}
        seed = None if self.random_seed.isChecked() else int(self.seed_spin.value())
        return SamplingParams(**values, seed=seed)  # type: ignore[arg-type]

    def set_params(self, params: SamplingParams) -> None:
        """Shows `params` without emitting paramsChanged."""
        self._updating = True
        try:
            for name, row in self.rows.items():
                row.set_value(getattr(params, name))
            self.random_seed.setChecked(params.seed is None)
            if params.seed is not None:
                self.seed_spin.setValue(params.seed)
            self.seed_spin.setEnabled(params.seed is not None)
        finally:
            self._updating = False
        self._sync_preset()

    def system_prompt(self) -> str:
        return self.system_prompt_edit.toPlainText()

    def set_system_prompt(self, text: str) -> None:
        if text == self.system_prompt():
            return
        self._updating = True
        try:
            self.system_prompt_edit.setPlainText(text)
        finally:
            self._updating = False

    def n_ctx(self) -> int:
        return int(self.n_ctx_spin.value())

    def set_n_ctx(self, value: int) -> None:
        self._updating = True
        try:
            self.n_ctx_spin.setValue(max(N_CTX_MIN, min(N_CTX_MAX, int(value))))
        finally:
            self._updating = False

    # --- reactions ---------------------------------------------------------------------------------------------
    def _on_value_changed(self, *_: object) -> None:
        self._sync_preset()
        if not self._updating:
            self.paramsChanged.emit(self.params())

    def _on_seed_toggled(self, random: bool) -> None:
        self.seed_spin.setEnabled(not random)
        self._on_value_changed()

    def _on_prompt_changed(self) -> None:
        if not self._updating:
            self.systemPromptChanged.emit(self.system_prompt())

    def _on_ctx_changed(self, value: int) -> None:
        if not self._updating:
            self.contextLengthChanged.emit(int(value))

    def _apply_preset(self, preset: SamplingParams) -> None:
        """A preset sets how tokens are picked; your reply length and seed stay."""
        self.set_params(apply_preset(self.params(), preset))
        self.paramsChanged.emit(self.params())

    def _sync_preset(self) -> None:
        self.presets.sync(self.params())


class SettingsDock(QDockWidget):
    """The panel in a scrolling, closable dock on the window's right."""

    def __init__(self, panel: SamplingPanel, parent: QWidget | None = None) -> None:
        super().__init__("Settings", parent)
        self.setObjectName("settingsDock")
        scroll = QScrollArea(self)
        scroll.setAccessibleName("Settings")
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(panel.sizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4)
        self.setWidget(scroll)
        self.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetClosable | QDockWidget.DockWidgetFeature.DockWidgetMovable
        )
        action = self.toggleViewAction()
        action.setText("Settings")
        action.setToolTip("Show or hide the sampling settings (Ctrl+,)")
        action.setShortcut("Ctrl+,")

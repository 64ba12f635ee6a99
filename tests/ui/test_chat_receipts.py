"""Receipts in the real window: every value on demand, and Reproduce gives the identical reply."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QHelpEvent, QTextDocument
from PySide6.QtWidgets import QApplication, QToolTip
from pytestqt.qtbot import QtBot

from llamadesk.core.conversation.lifecycle import FINISH_WORDS
from llamadesk.core.engines.api import FinishReason
from llamadesk.core.history import History
from llamadesk.core.token_probs import TokenProb, records_from_receipt
from llamadesk.paths import Paths
from llamadesk.ui.chat.delegate import PAD_H, PAD_V
from llamadesk.ui.chat.render import MessageRenderer
from llamadesk.ui.chat.token_hover import TokenLookup, align, inert_offsets, record_at, tooltip_text
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000
LOAD_TIMEOUT_MS = 60_000


def send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)


def click_action(qtbot: QtBot, window: MainWindow, row: int, action: str) -> None:
    view = window.chat_view
    index = window.chat_model.index(row, 0)
    rect = view.delegate.action_rect(index, view.visualRect(index), action)
    assert rect is not None
    qtbot.mouseMove(view.viewport(), rect.center().toPoint())
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center().toPoint())


def test_the_receipt_shows_model_sampling_seed_template_and_figures(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window.panel.system_prompt_edit.setPlainText("Be brief.")
    send(qtbot, window, "hello")
    click_action(qtbot, window, 1, "receipt")
    dialog = window.chat.receipt_dialog
    assert dialog is not None and dialog.isVisible()
    info = window.model_info
    assert info is not None
    receipt = history.messages(window.current_cid)[-1].receipt  # type: ignore[arg-type]
    assert receipt is not None
    assert dialog.value("File") == info.file_name
    assert dialog.value("SHA-256") == info.sha256
    assert dialog.value("Quantization") == info.quantization
    assert dialog.value("Chat template") == f"{info.template_name} (from {info.template_source})"
    assert dialog.value("Temperature") == "0.7" and dialog.value("Top-k") == "40"
    assert dialog.value("Max tokens") == "64" and dialog.value("Mirostat eta") == "0.1"
    assert receipt["sampling"]["seed"] is None and isinstance(receipt["seed"], int)  # asked: random; used: drawn
    assert dialog.value("Seed") == f"{receipt['seed']} (random)"
    assert dialog.value("Mode") == "chat"
    assert dialog.value("Generated tokens") == str(receipt["generated_tokens"])
    assert dialog.value("How it ended") in (FINISH_WORDS[FinishReason.STOP], FINISH_WORDS[FinishReason.LENGTH])
    assert dialog.value("Time to first token").endswith(("ms", "s"))  # type: ignore[union-attr]
    assert dialog.value("Speed").endswith("tokens/s")  # type: ignore[union-attr]
    assert dialog.value("System prompt") == "Be brief." and receipt["system_prompt"] == "Be brief."
    assert dialog.reproduce_button.isEnabled() and not dialog.note.isVisible()
    dialog.close()


def test_reproduce_gives_the_identical_text_at_temperature_above_zero(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window.panel.rows["temperature"].set_value(0.9)
    window.panel.rows["max_tokens"].spin.setValue(40)
    assert window.panel.params().seed is None  # a random seed, recorded in the receipt
    send(qtbot, window, "surprise me")
    cid = window.current_cid
    assert cid is not None
    original = history.messages(cid)[-1]
    window.panel.rows["temperature"].set_value(0.2)  # the panel changed since: Reproduce uses the receipt
    send(qtbot, window, "and something else")  # the engine's cache now holds another conversation

    window.chat.on_action("prev", window.chat_model.row(1).message_id)  # nothing to go back to: no change
    window.chat.show_branches()
    assert window.chat.branch_dialog is not None
    window.chat.branch_dialog.close()
    window.chat.on_action("receipt", original.id)
    dialog = window.chat.receipt_dialog
    assert dialog is not None
    qtbot.mouseClick(dialog.reproduce_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)

    alternatives = history.children(cid, original.parent_id)
    again = alternatives[-1]
    assert len(alternatives) == 2 and again.id != original.id
    assert again.content == original.content and original.content
    assert again.receipt is not None and original.receipt is not None
    assert again.receipt["seed"] == original.receipt["seed"]
    assert original.receipt["sampling"]["seed"] is None and again.receipt["sampling"]["seed"] == again.receipt["seed"]
    assert again.receipt["sampling"]["temperature"] == 0.9 and again.receipt["reproduces"] == original.id
    shown = window.chat_model.row(1)
    assert shown.message_id == again.id and (shown.alternative, shown.alternatives) == (2, 2)


def test_reproduce_needs_the_same_model_file(
    make_window: Callable[..., MainWindow], paths: Paths, models_dir: Path, endless_model: Path,
    history: History, qtbot: QtBot,
) -> None:  # fmt: skip
    shutil.copy(endless_model, paths.models / "zz-other.gguf")
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    window.panel.rows["max_tokens"].spin.setValue(16)
    loaded = window.model_info.file_name  # type: ignore[union-attr]
    send(qtbot, window, "hi")
    reply = window.chat_model.row(1).message_id
    other = "zz-other.gguf" if loaded != "zz-other.gguf" else "tiny-chatml.gguf"
    names = [m.path.name for m in window.picker.models()]
    window.picker.combo.setCurrentIndex(names.index(other))
    qtbot.mouseClick(window.picker.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: window.model_info is not None and window.model_info.file_name == other and not window.is_loading,
        timeout=LOAD_TIMEOUT_MS,
    )
    dialog = window.chat.show_receipt(reply)
    assert dialog is not None
    assert not dialog.reproduce_button.isEnabled()
    assert loaded in dialog.note.text() and "load that exact file" in dialog.note.text()
    dialog.close()


def _first_char_point(window: MainWindow, row: int) -> QPoint:
    """A point on the first character of a reply's bubble, in viewport coordinates."""
    view = window.chat_view
    index = window.chat_model.index(row, 0)
    view.scrollTo(index)
    rect = view.visualRect(index)
    chat_row = window.chat_model.row(row)
    doc, _info, _fresh = view.delegate.document(chat_row, view.delegate.text_width(rect.width()))
    bubble = view.delegate.bubble_rect(chat_row, doc, rect)
    line = doc.begin().layout().lineAt(0)
    x = (line.cursorToX(0)[0] + line.cursorToX(1)[0]) / 2  # the first character is on the right in Arabic or NKo
    return QPointF(bubble.left() + PAD_H + x, bubble.top() + PAD_V + line.y() + line.height() / 2).toPoint()


def test_token_probabilities_are_kept_and_shown_on_hover(
    endless_window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window = endless_window
    window.panel.rows["max_tokens"].spin.setValue(8)
    window.panel.random_seed.setChecked(False)
    window.panel.seed_spin.setValue(9)  # this seed's reply starts with right-to-left text (NKo), its hardest case
    assert not window.session.record_probs, "off by default"
    window.chat.probs_action.trigger()
    assert window.session.record_probs
    send(qtbot, window, "tell me")
    cid = window.current_cid
    assert cid is not None
    reply = history.messages(cid)[-1]
    records = records_from_receipt(reply.receipt)
    assert len(records) == 8 and reply.receipt["token_probs"]["k"] == 5  # type: ignore[index]
    for record in records[1:]:  # the first may have lost its leading space (the chat strips it)
        assert reply.content[record.offset : record.offset + len(record.text)] == record.text

    click_action(qtbot, window, 1, "continue")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    extended = history.messages(cid)[-1]
    assert extended.id == reply.id and len(extended.content) > len(reply.content)
    merged = records_from_receipt(extended.receipt)
    assert len(merged) == 16 and merged[:8] == records
    assert "token_probs" not in extended.receipt["continuations"][0]  # type: ignore[index]
    for record in merged[8:]:  # the continuation's offsets count from the start of the whole reply
        assert extended.content[record.offset : record.offset + len(record.text)] == record.text
    assert window.session.token_records(reply.id) == merged

    view = window.chat_view
    pos = _first_char_point(window, 1)
    tip = view.token_tooltip(pos)
    assert tip is not None and tip.startswith("token '") and " · alternatives: '" in tip and "%" in tip
    assert tip in {tooltip_text(r) for r in merged[:2]}
    global_pos = view.viewport().mapToGlobal(pos)
    QApplication.sendEvent(view.viewport(), QHelpEvent(QEvent.Type.ToolTip, pos, global_pos))
    qtbot.waitUntil(lambda: QToolTip.isVisible() and QToolTip.text() == tip)
    QToolTip.hideText()
    user_point = view.visualRect(window.chat_model.index(0, 0)).center()
    assert view.token_tooltip(user_point) is None  # your own messages have no probabilities

    window.chat.probs_action.trigger()
    send(qtbot, window, "again")
    assert "token_probs" not in (history.messages(cid)[-1].receipt or {})
    assert view.token_tooltip(_first_char_point(window, 3)) is None


def test_rendered_text_maps_back_to_the_markdown_source() -> None:
    source = "Some **bold** and `code`:\n\n- one\n- two"
    rendered = "Some bold and code:\n\u2022 one\n\u2022 two"
    mapping = align(source, rendered)
    assert source[mapping[rendered.index("bold")]] == "b" and mapping[rendered.index("bold")] == source.index("bold")
    assert mapping[rendered.index("code")] == source.index("code")
    assert mapping[rendered.index("two")] == source.index("two")
    assert mapping[rendered.index("\u2022")] == -1  # a bullet the renderer added
    records = [TokenProb(0, "Some", 0.5), TokenProb(4, " **", 0.2), TokenProb(7, "bold", 0.9, (("big", 0.05),))]
    assert record_at(records, source.index("bold") + 2) == records[2]
    assert record_at(records, 100) is None and record_at(records, -1) is None
    assert tooltip_text(records[2]) == "token 'bold' 90.0% · alternatives: 'big' 5.0%"
    assert tooltip_text(TokenProb(0, "\n", 0.25)) == "token '\\n' 25.0%"


def test_hover_finds_the_token_behind_escapes_and_bidi_overrides(qtbot: QtBot) -> None:
    """The bubble shows the reply made inert (a terminal title sequence dropped, a right-to-left override shown
    as "[RLO]"), so its text is not the stored one; the hover still names the token under the mouse."""
    tokens = ["Hi", " ", "\x1b]0;a totally harmless window title\x07", "\u202e", "OLD", " news", "\x1b[31m", "!"]
    records = []
    offset = 0
    for n, text in enumerate(tokens):
        records.append(TokenProb(offset, text, (n + 1) / 10))
        offset += len(text)
    source = "".join(tokens)
    doc = QTextDocument()
    MessageRenderer()(doc, source, "assistant")
    rendered = doc.toPlainText()
    assert rendered.rstrip() == "Hi [RLO]OLD news!"  # what the bubble shows
    lookup = TokenLookup()

    def tip_at(position: int) -> str | None:
        return lookup.tooltip(7, source, rendered, position, records)

    for position in range(rendered.index("[RLO]"), rendered.index("OLD")):
        assert tip_at(position) == tooltip_text(records[3])  # the stand-in is the override's own token
    for position in range(rendered.index("OLD"), rendered.index(" news")):
        assert tip_at(position) == tooltip_text(records[4])
    assert tip_at(rendered.index("news")) == tooltip_text(records[5])
    assert tip_at(rendered.index("!")) == tooltip_text(records[7])
    shown, offsets = inert_offsets(source)
    assert shown == "Hi [RLO]OLD news!" and [source[i] for i in offsets[3:8]] == ["\u202e"] * 5
    assert inert_offsets("plain") == ("plain", [0, 1, 2, 3, 4])
    assert tooltip_text(records[3]) == "token '[RLO]' 40.0%"  # the tooltip is inert too
    assert tooltip_text(records[6]) == "token '\u241b[31m' 70.0%"

"""The status bar's reply figures: the shown conversation's last reply, in plain words, never a stale one."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from llamadesk.core.engines.api import FinishReason, GenerationStats
from llamadesk.ui.chat.context_meter import ReplyFigures
from llamadesk.ui.chat.model import ChatRow, footer_text
from llamadesk.ui.main_window import MainWindow

REPLY_TIMEOUT_MS = 60_000


def stats(ttft_s: float, tokens_per_s: float) -> GenerationStats:
    return GenerationStats(
        prompt_tokens=10, cached_tokens=0, generated_tokens=20, ttft_s=ttft_s, tokens_per_s=tokens_per_s,
        total_s=1.0, finish_reason=FinishReason.STOP, seed=1,
    )  # fmt: skip


def figures_text(window: MainWindow) -> tuple[str, str]:
    return window.speed_label.text(), window.ttft_label.text()


def test_the_figures_say_what_they_mean_in_plain_words(qtbot: QtBot) -> None:
    figures = ReplyFigures()
    qtbot.addWidget(figures)
    figures.show_stats(stats(0.42, 78.14))
    assert figures.speed_label.text() == "78.1 tokens/s"
    assert figures.ttft_label.text() == "first word after 0.4 s"
    assert "TTFT" not in figures.ttft_label.text()
    assert "per second" in figures.speed_label.toolTip() and "word" in figures.speed_label.toolTip()
    assert "started answering" in figures.ttft_label.toolTip()
    figures.show_stats(stats(0.025, 5.0))
    assert figures.ttft_label.text() == "first word after 25 ms"
    figures.clear_stats()
    assert (figures.speed_label.text(), figures.ttft_label.text()) == ("", "")


def test_the_footer_says_how_a_reply_ended_in_plain_words() -> None:
    done = ChatRow(1, "assistant", "x", "complete", "stop", stats={"generated_tokens": 3, "tokens_per_s": 9.0})
    assert footer_text(done) == "3 tokens · 9.0 tok/s · finished"
    assert footer_text(ChatRow(2, "assistant", "x", "complete", "length")) == "hit the length limit"
    assert footer_text(ChatRow(3, "assistant", "x", "cancelled", "cancelled")) == "stopped by you"


def test_the_figures_follow_the_conversation_shown_and_clear_when_a_reply_starts(
    window: MainWindow, qtbot: QtBot
) -> None:
    window.send("hello model")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    first = window.current_cid
    shown = figures_text(window)
    assert shown[0].endswith("tokens/s") and shown[1].startswith("first word after")

    used = window.context_meter.used
    window.new_chat()  # a new empty chat has no reply: nothing to show, and not the other chat's token count
    assert window.current_cid != first
    assert figures_text(window) == ("", "")
    assert window.context_meter.label.text() == "" or window.context_meter.used != used
    qtbot.waitUntil(lambda: window.context_meter.label.text().endswith(" tokens"), timeout=REPLY_TIMEOUT_MS)
    assert window.context_meter.used < used

    window.select_conversation(first)  # its last reply's figures come back
    assert figures_text(window) == shown

    window.send("and again")  # a reply starts: the previous one's figures go
    assert window.is_generating
    assert figures_text(window) == ("", "")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert window.speed_label.text().endswith("tokens/s")

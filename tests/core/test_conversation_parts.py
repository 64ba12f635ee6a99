"""A reply's parts: reasoning (`<think>…</think>`) apart from the answer, parsed once in core; the next prompt
leaves old reasoning out, except for the reply being continued; the receipt keeps how long the model thought."""

from __future__ import annotations

from pathlib import Path

from llamadesk.core.conversation.lifecycle import ReplyWriter
from llamadesk.core.conversation.parts import ReasoningClock, answer_of, split_reply
from llamadesk.core.conversation.turn import Turn, entries_of
from llamadesk.core.engines.api import Done, FinishReason, GenerationStats
from llamadesk.core.history import History


def test_reasoning_is_split_from_the_answer() -> None:
    parts = split_reply("<think>\nLet me add 2 and 2.\n</think>\n\nIt is **4**.")
    assert (parts.reasoning, parts.text, parts.thinking) == ("Let me add 2 and 2.", "It is **4**.", False)
    assert "<think>\nLet me add 2 and 2.\n</think>\n\nIt is **4**."[parts.answer_start :] == parts.text
    opened = split_reply("<think>still weighing")  # streaming, or stopped while thinking
    assert (opened.reasoning, opened.text, opened.thinking) == ("still weighing", "", True)
    prompted = split_reply("The template opened it.</think>Answer")  # DeepSeek-R1 distills: <think> in the prompt
    assert (prompted.reasoning, prompted.text) == ("The template opened it.", "Answer")
    plain = split_reply("No tags here, and <think> later is just text.")
    assert (plain.reasoning, plain.has_reasoning) == ("", False)
    assert plain.text == "No tags here, and <think> later is just text."
    assert answer_of("<think>x</think>y") == "y" and answer_of("plain") == "plain"


def test_the_clock_stops_when_the_reasoning_ends_even_across_batches() -> None:
    clock = ReasoningClock()
    for piece in ("<think>hm", "m </th", "ink> done"):
        clock.feed(piece)
    assert clock.seconds is not None and clock.seconds >= 0
    plain = ReasoningClock()
    plain.feed("just an answer")
    assert plain.seconds is None


class Msg:
    def __init__(self, mid: int, role: str, content: str, status: str = "complete") -> None:
        self.id, self.role, self.content, self.status = mid, role, content, status


def test_old_reasoning_stays_out_of_the_next_prompt_but_a_continued_reply_keeps_it() -> None:
    branch = [Msg(1, "user", "2+2?"), Msg(2, "assistant", "<think>add</think>4"), Msg(3, "user", "and 3+3?"),
              Msg(4, "assistant", "<think>add again")]  # fmt: skip
    sent = entries_of(branch, lambda m: m.id)
    assert [e.content for e in sent] == ["2+2?", "4", "and 3+3?", ""]  # the open one has no answer yet
    continued = entries_of(branch, lambda m: m.id, open_reply=True)
    assert continued[1].content == "4" and continued[3].content == "<think>add again"


def test_the_receipt_records_how_long_the_model_thought(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    try:
        conv = history.create_conversation()
        turn = Turn(conv.id, ReplyWriter.begin(history, conv.id))
        for piece in ("<think>thinking", "</think>", "The answer."):
            assert turn.append(piece) is None
        stats = GenerationStats(prompt_tokens=3, cached_tokens=0, generated_tokens=3, ttft_s=0.0, tokens_per_s=1.0,
                                total_s=0.1, finish_reason=FinishReason.STOP, seed=1)  # fmt: skip
        full = turn.finish(Done(stats, {"model": "m.gguf"}))
        stored = history.get_message(turn.writer.message_id)
        assert stored.content == "<think>thinking</think>The answer."  # every part kept, as the model wrote it
        assert stored.receipt == full and isinstance(full["reasoning_s"], float)
    finally:
        history.close()

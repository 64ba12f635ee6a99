"""A reply's parts: reasoning (`<think>…</think>`, gpt-oss's harmony channels) apart from the answer, parsed once in
core; the next prompt leaves old reasoning out, except for the reply being continued; the receipt keeps how long the
model thought."""

from __future__ import annotations

from pathlib import Path

from llamadesk.core.conversation.lifecycle import ReplyWriter
from llamadesk.core.conversation.parts import ReasoningClock, ReplyParts, answer_of, split_reply
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


# gpt-oss (OpenAI harmony): the engine shows the markers as text; the reasoning is the analysis (and commentary)
THOUGHT = "The user asks for 2+2.\nThat is 4."
ANALYSIS = f"<|channel|>analysis<|message|>{THOUGHT}<|end|>"
FINAL = "<|start|>assistant<|channel|>final<|message|>It is **4**."


def test_harmony_channels_split_into_reasoning_and_the_final_answer() -> None:
    for end in ("<|return|>", "<|end|>", ""):  # <|return|> ends the generation: the engine usually leaves it out
        content = ANALYSIS + FINAL + end
        parts = split_reply(content)
        assert (parts.reasoning, parts.text, parts.thinking) == (THOUGHT, "It is **4**.", False)
        assert content[parts.answer_start :].startswith("It is **4**.") and parts.has_reasoning
        assert answer_of(content) == "It is **4**."  # what the next prompt sends: gpt-oss's template drops analysis
    only_final = split_reply("<|channel|>final<|message|> Hi.<|return|>")  # the answer starts after the space
    assert (only_final.reasoning, only_final.text, only_final.has_reasoning) == ("", "Hi.", False)
    assert only_final.answer_start == len("<|channel|>final<|message|> ")
    leading_start = split_reply("<|start|>assistant" + ANALYSIS + FINAL)
    assert (leading_start.reasoning, leading_start.text) == (THOUGHT, "It is **4**.")


def test_a_harmony_reply_thinks_until_its_final_channel_begins() -> None:
    for content in (
        "<|channel|>analysis<|message|>",  # streaming: the analysis has just opened
        "<|channel|>analysis<|message|>" + THOUGHT,
        ANALYSIS,
        ANALYSIS + "<|start|>assistant",
        ANALYSIS + "<|start|>assistant<|channel|>fin",  # the final channel's header is still arriving
        "<|channel|>anal",
    ):
        parts = split_reply(content)
        assert (parts.text, parts.thinking, parts.answer_start) == ("", True, len(content)), content
        assert parts.reasoning in ("", THOUGHT), content
        assert "<|" not in parts.reasoning and answer_of(content) == ""
    begun = split_reply(ANALYSIS + "<|start|>assistant<|channel|>final<|message|>")
    assert (begun.text, begun.thinking, begun.reasoning) == ("", False, THOUGHT)


def test_harmony_commentary_counts_as_reasoning_and_the_text_stays_whole() -> None:
    call = '<|start|>assistant<|channel|>commentary to=functions.weather <|constrain|>json<|message|>{"city":"Paris"}'
    content = ANALYSIS + call + "<|call|>"  # a tool call: the generation ends there
    parts = split_reply(content)
    assert parts.reasoning == THOUGHT + '\n\n{"city":"Paris"}'
    assert (parts.text, parts.thinking) == ("", True)
    preamble = "<|channel|>commentary<|message|>Let me check.<|end|>" + FINAL
    assert split_reply(preamble).reasoning == "Let me check." and answer_of(preamble) == "It is **4**."


def test_replies_without_a_leading_harmony_marker_are_read_as_before() -> None:
    plain = "Write <|channel|>final<|message|> to start the answer."  # a reply that talks about the format
    assert split_reply(plain) == ReplyParts("", plain)
    assert answer_of(plain) == plain
    text = "Just an answer, with no reasoning at all."
    assert answer_of(text) is text  # the fast path: no parse
    think = "<think>add</think><|channel|>final<|message|>4"  # <think> leads: its rules apply
    assert (split_reply(think).reasoning, split_reply(think).text) == ("add", "<|channel|>final<|message|>4")


def test_the_clock_stops_when_the_final_channel_begins_even_split_across_batches() -> None:
    clock = ReasoningClock()
    pieces = ("<|channel|>analysis<|message|>hm<|end|><|start|>assistant<|chan", "nel|>fin", "al<|mess", "age|>4")
    for piece in pieces[:-1]:
        clock.feed(piece)
        assert clock.seconds is None
    clock.feed(pieces[-1])
    assert clock.seconds is not None and clock.seconds >= 0
    commentary = ReasoningClock()
    commentary.feed("<|channel|>analysis<|message|>hm<|end|><|start|>assistant<|channel|>commentary<|message|>x")
    assert commentary.seconds is None


def test_an_old_harmony_reply_sends_only_its_final_answer() -> None:
    branch = [Msg(1, "user", "2+2?"), Msg(2, "assistant", ANALYSIS + FINAL), Msg(3, "user", "and 3+3?"),
              Msg(4, "assistant", "<|channel|>analysis<|message|>add again")]  # fmt: skip
    assert [e.content for e in entries_of(branch, lambda m: m.id)] == ["2+2?", "It is **4**.", "and 3+3?", ""]
    continued = entries_of(branch, lambda m: m.id, open_reply=True)
    assert continued[3].content == "<|channel|>analysis<|message|>add again"  # Continue extends the raw text

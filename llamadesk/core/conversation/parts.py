"""A reply's parts, parsed once here for every front end: the reasoning a thinking model writes before its answer
(DeepSeek-R1- and Qwen3-class `<think>…</think>`, and gpt-oss-class harmony channels: `<|channel|>analysis
<|message|>…<|end|>` then `<|start|>assistant<|channel|>final<|message|>…`), and the answer itself.

The history keeps a reply's text whole, as the model wrote it, so export and search keep every part; the window shows
the reasoning collapsed, and the next prompt leaves old reasoning out, as those models' templates expect (Qwen3's
template itself keeps only what follows `</think>`; gpt-oss's keeps only the final channel). The `<think>` tags are
plain text in the model's output; harmony's markers are special tokens that the engine alone renders as their text
(local_stream.py); they are read here only as the reply's structure (a reply continued is sent back whole).
A reply's third part, the tools it calls, is read in tool_calls.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# OpenAI harmony (gpt-oss), one message: [<|start|>ROLE]<|channel|>CHANNEL[ to=… <|constrain|>…]<|message|>TEXT
# then <|end|>, or <|return|> (the final answer's end) or <|call|> (a tool call's): those two end the generation.
CHANNEL = "<|channel|>"
MESSAGE = "<|message|>"
START = "<|start|>"
FINAL = CHANNEL + "final" + MESSAGE  # where the answer begins
_MESSAGE_ENDS = ("<|end|>", "<|return|>", "<|call|>", START, CHANNEL)  # the last two: a message left unclosed
_REASONING_CHANNELS = ("analysis", "commentary")  # commentary (tool-call preambles) counts as reasoning for now


@dataclass(frozen=True)
class ReplyParts:
    reasoning: str  # what the model thought, without the tags or markers ("" when it wrote none)
    text: str  # the answer
    thinking: bool = False  # the reasoning is still open (the reply streams, or stopped while thinking)
    answer_start: int = 0  # where the answer starts in the reply's text

    @property
    def has_reasoning(self) -> bool:
        return bool(self.reasoning.strip()) or self.thinking


def may_have_reasoning(content: str) -> bool:
    """False when the reply surely has no reasoning part (C-speed finds; most replies have none)."""
    return THINK_CLOSE in content or THINK_OPEN in content or CHANNEL in content


def split_reply(content: str) -> ReplyParts:
    """The reply's reasoning and answer. Reasoning is a leading `<think>` block, or everything before the first
    `</think>` of a reply whose template opened the block in the prompt (DeepSeek-R1 distills), or the analysis and
    commentary messages of a reply that begins with a harmony channel or `<|start|>` (gpt-oss)."""
    start = len(content) - len(content.lstrip())
    if content.startswith(CHANNEL, start) or (content.startswith(START, start) and CHANNEL in content):
        return _split_harmony(content, content.find(CHANNEL, start))
    close = content.find(THINK_CLOSE)
    opened = content.startswith(THINK_OPEN, start)
    if close < 0:
        if not opened:
            return ReplyParts("", content)
        return ReplyParts(content[start + len(THINK_OPEN) :].strip("\n"), "", thinking=True, answer_start=len(content))
    begin = start + len(THINK_OPEN) if opened else 0
    if begin > close:  # "<think>" after the close: not a reasoning block
        return ReplyParts("", content)
    end = close + len(THINK_CLOSE)
    answer_start = end + (len(content[end:]) - len(content[end:].lstrip()))
    return ReplyParts(content[begin:close].strip("\n"), content[answer_start:], answer_start=answer_start)


def _message_end(content: str, begin: int) -> int:
    ends = [i for i in (content.find(mark, begin) for mark in _MESSAGE_ENDS) if i >= 0]
    return min(ends, default=len(content))


def _split_harmony(content: str, at: int) -> ReplyParts:
    """A harmony reply: its messages in order, each `<|channel|>HEADER<|message|>TEXT` up to the message's end;
    the answer is the first final message, the reasoning every analysis and commentary message before it (text after
    the final message, which the engine's end-of-generation tokens normally cut, is left out of both)."""
    reasoning: list[str] = []
    while at >= 0:
        header_at = at + len(CHANNEL)
        body = content.find(MESSAGE, header_at)
        if body < 0:  # the header is still streaming
            break
        header = content[header_at:body]
        body += len(MESSAGE)
        end = _message_end(content, body)
        channel = header.split(maxsplit=1)[0] if header.strip() else ""
        if channel == "final":
            answer_start = body + (len(content[body:end]) - len(content[body:end].lstrip()))
            return ReplyParts("\n\n".join(reasoning), content[answer_start:end], answer_start=answer_start)
        if channel in _REASONING_CHANNELS or not channel:
            text = content[body:end].strip("\n")
            if text:
                reasoning.append(text)
        at = content.find(CHANNEL, end)
    return ReplyParts("\n\n".join(reasoning), "", thinking=True, answer_start=len(content))


def answer_of(content: str) -> str:
    """The reply without its reasoning: what a later prompt sends of it. Cheap when there is none (a C-speed find)."""
    if not may_have_reasoning(content):
        return content
    return split_reply(content).text


class ReasoningClock:
    """How long a streaming reply thought: from its start until `</think>` or harmony's final channel arrived (for the
    receipt and the window); either may come split across the text fed."""

    _MARKS = (THINK_CLOSE, FINAL)
    _KEEP = max(len(m) for m in _MARKS) - 1

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: float | None = None
        self._tail = ""

    def feed(self, text: str) -> None:
        if self.seconds is not None:
            return
        window = self._tail + text
        if THINK_CLOSE in window or FINAL in window:
            self.seconds = round(time.monotonic() - self.started, 2)
        self._tail = window[-self._KEEP :]

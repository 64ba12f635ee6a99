"""A reply's parts, parsed once here for every front end: the reasoning a thinking model writes before its answer
(DeepSeek-R1- and Qwen3-class `<think>…</think>`), and the answer itself.

The history keeps a reply's text whole, as the model wrote it, so export and search keep every part; the window shows
the reasoning collapsed, and the next prompt leaves old reasoning out, as those models' templates expect (Qwen3's
template itself keeps only what follows `</think>`). The tags are plain text in the model's output, never special
tokens here: the engine detokenizes without specials.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class ReplyParts:
    reasoning: str  # what the model thought, without the tags ("" when it wrote none)
    text: str  # the answer
    thinking: bool = False  # the reasoning is still open (the reply streams, or stopped while thinking)
    answer_start: int = 0  # where the answer starts in the reply's text

    @property
    def has_reasoning(self) -> bool:
        return bool(self.reasoning.strip()) or self.thinking


def split_reply(content: str) -> ReplyParts:
    """The reply's reasoning and answer. Reasoning is a leading `<think>` block, or everything before the first
    `</think>` of a reply whose template opened the block in the prompt (DeepSeek-R1 distills)."""
    close = content.find(THINK_CLOSE)
    start = len(content) - len(content.lstrip())
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


def answer_of(content: str) -> str:
    """The reply without its reasoning: what a later prompt sends of it. Cheap when there is none (a C-speed find)."""
    if THINK_CLOSE not in content and THINK_OPEN not in content:
        return content
    return split_reply(content).text


class ReasoningClock:
    """How long a streaming reply thought: from its start until `</think>` arrived (for the receipt and the window)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: float | None = None
        self._tail = ""

    def feed(self, text: str) -> None:
        if self.seconds is not None:
            return
        window = self._tail + text
        if THINK_CLOSE in window:
            self.seconds = round(time.monotonic() - self.started, 2)
        self._tail = window[-(len(THINK_CLOSE) - 1) :]

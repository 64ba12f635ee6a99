"""Fitting a conversation into the context: the user's overflow policy, applied to whole turns before sending."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from llamadesk.core.engines.api import Message

DEFAULT_TOKENS_PER_CHAR = 0.35  # until a real count arrives: ~2.9 characters per token errs on the safe side
MIN_TOKENS_PER_CHAR = 0.15
MAX_TOKENS_PER_CHAR = 2.5
OVERHEAD_TOKENS = 6  # the template's role markers around each message
REPLY_SHARE = 4  # at most a quarter of the context is kept free for the reply
SLACK_SHARE = 4  # leaving turns out frees a quarter of the prompt budget, for the turns to come
SAFETY = 1.1  # the margin on a tokens-per-character ratio learnt from the engine's refusal
_OVER = re.compile(r"\((\d+) tokens\)")  # the engine's "The conversation (1841 tokens) no longer fits…"


class OverflowPolicy(str, Enum):
    STOP = "stop"
    DROP_OLDEST = "drop_oldest"
    DROP_MIDDLE = "drop_middle"


POLICY_LABELS = {
    OverflowPolicy.STOP: "Stop",
    OverflowPolicy.DROP_OLDEST: "Drop the oldest turns",
    OverflowPolicy.DROP_MIDDLE: "Drop turns in the middle",
}
POLICY_HELP = {
    OverflowPolicy.STOP: "When the conversation no longer fits the context, say so and send nothing.",
    OverflowPolicy.DROP_OLDEST: "Leave the oldest turns out of the prompt (the system prompt always stays).",
    OverflowPolicy.DROP_MIDDLE: "Keep the first turn and the latest ones; leave out turns in between.",
}


def parse_policy(value: object) -> OverflowPolicy:
    try:
        return OverflowPolicy(str(value))
    except ValueError:
        return OverflowPolicy.STOP


class Entry(NamedTuple):
    """A message of the branch being sent, with its place on the branch (counted from the first message)."""

    message_id: int
    role: str
    content: str
    position: int = 0
    images: tuple[str, ...] = ()  # ImageStore hashes of the message's images, sent with it (engines/vision.py)


@dataclass
class Plan:
    """What is sent: the messages, what was left out (ids, and as spans of branch positions for the receipt:
    a prefix of a branch never changes, so positions stay true), and the estimated prompt size."""

    messages: list[Message]
    excluded: set[int] = field(default_factory=set)
    estimated_tokens: int = 0
    spans: list[list[int]] = field(default_factory=list)  # [start, end) positions left out


def spans_of(entries: Sequence[Entry], excluded: set[int]) -> list[list[int]]:
    """Runs of left-out entries as [start, end) positions; messages not sent anyway (empty) join runs."""
    spans: list[list[int]] = []
    for entry in entries:
        if entry.message_id not in excluded:
            if spans and spans[-1][1] == -1:
                spans[-1][1] = entry.position
            continue
        if not spans or spans[-1][1] != -1:
            spans.append([entry.position, -1])
    if spans and spans[-1][1] == -1:
        spans[-1][1] = (max(e.position for e in entries if e.message_id in excluded) + 1) if entries else 0
    return spans


def ids_in_spans(branch_ids: Sequence[int], spans: object) -> set[int]:
    """The ids a receipt's spans name on the branch that led to its reply (bad spans are ignored)."""
    out: set[int] = set()
    if not isinstance(spans, list):
        return out
    for span in spans:
        if isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) for v in span):
            out.update(branch_ids[max(span[0], 0) : max(span[1], 0)])
    return out


def estimate(text: str, tokens_per_char: float) -> int:
    return math.ceil(len(text) * tokens_per_char) + OVERHEAD_TOKENS


def reply_reserve(n_ctx: int, max_tokens: int) -> int:
    return max(min(max_tokens, n_ctx // REPLY_SHARE), 1)


def _turn_ranges(entries: Sequence[Entry]) -> list[tuple[int, int]]:
    """The branch as turns, [start, end) indexes: a user message and the replies after it."""
    starts = [i for i, e in enumerate(entries) if i == 0 or e.role == "user"]
    return list(zip(starts, [*starts[1:], len(entries)], strict=True))


def plan_prompt(
    system_prompt: str,
    entries: Sequence[Entry],
    *,
    policy: OverflowPolicy,
    n_ctx: int,
    reserve: int,
    tokens_per_char: float = DEFAULT_TOKENS_PER_CHAR,
    excluded: set[int] | None = None,
    previous: set[int] | None = None,
) -> Plan:
    """Applies the policy. `excluded` given (a reproduction) leaves out exactly those ids instead.
    The last turn is always sent; with DROP_MIDDLE the first one too, unless it alone is too long.

    Turns are left out with slack (a share of the budget freed at once), and `previous` (what the last prompt of
    the branch left out) is kept while the rest still fits: the start of the prompt then stays the same from turn
    to turn, and the engine reuses its cache for it instead of reading the whole context again on every reply.
    Linear in the branch with small constants: it runs in the GUI thread on every send."""
    system = system_prompt.strip()
    sizes = [math.ceil(len(e.content) * tokens_per_char) + OVERHEAD_TOKENS for e in entries]
    total = (estimate(system, tokens_per_char) if system else 0) + sum(sizes)
    if excluded is not None:
        total -= sum(size for e, size in zip(entries, sizes, strict=True) if e.message_id in excluded)
        kept = [e for e in entries if e.message_id not in excluded]
        return _plan(system, kept, set(excluded), total, spans_of(entries, excluded) if excluded else [])
    budget = n_ctx - reserve
    if policy is OverflowPolicy.STOP or n_ctx <= 0 or total <= budget:
        return _plan(system, list(entries), set(), total, [])
    turns = _turn_ranges(entries)
    keep_first = 1 if policy is OverflowPolicy.DROP_MIDDLE else 0
    droppable = turns[keep_first:-1] if len(turns) > 1 else []
    if keep_first and len(turns) > 1:
        droppable.append(turns[0])  # only when leaving out the whole middle was not enough
    ids = [e.message_id for e in entries]
    turn_sizes = [sum(sizes[start:end]) for start, end in droppable]
    count = _still_left_out(previous or set(), ids, droppable)
    total -= sum(turn_sizes[:count])
    if total > budget:  # what was left out no longer makes room: free a share of the budget at once
        target = budget - budget // SLACK_SHARE
        for_slack = len(droppable) - keep_first  # the first turn of DROP_MIDDLE goes only when it must
        while count < len(droppable) and (total > budget or (total > target and count < for_slack)):
            total -= turn_sizes[count]
            count += 1
    gone = [False] * len(entries)
    for start, end in droppable[:count]:
        gone[start:end] = [True] * (end - start)
    left_out = {e.message_id for e, out in zip(entries, gone, strict=True) if out}
    kept = [e for e, out in zip(entries, gone, strict=True) if not out]
    return _plan(system, kept, left_out, total, spans_of(entries, left_out) if left_out else [])


def _still_left_out(previous: set[int], ids: Sequence[int], droppable: Sequence[tuple[int, int]]) -> int:
    """How many of the droppable turns, in the policy's order, the last prompt left out; 0 when what it left out
    is not such a run (the policy changed, or the branch did). Linear, in comprehensions: it runs at Enter."""
    present = previous.intersection(ids)
    if not present:
        return 0
    count, covered = 0, 0
    for start, end in droppable:
        if covered >= len(present):
            break
        covered += end - start
        count += 1
    if covered != len(present):
        return 0
    return count if present.issuperset([ids[i] for start, end in droppable[:count] for i in range(start, end)]) else 0


def _plan(system: str, kept: list[Entry], excluded: set[int], total: int, spans: list[list[int]]) -> Plan:
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages += [_message(e) for e in kept]
    return Plan(messages, excluded, total, spans)


def _message(entry: Entry) -> Message:
    message: Message = {"role": entry.role, "content": entry.content}
    if not entry.images:
        return message
    from llamadesk.core.engines.vision import with_images  # only for a branch with images

    # Every later turn sends the image again: the engine keeps its encoding, so that costs no new encode.
    return with_images(message, entry.images)


def ratio_after_overflow(message: str, prompt_chars: int, current: float) -> float:
    """Tokens per character learnt from the engine's refusal (it names the prompt's real size), with a margin."""
    match = _OVER.search(message)
    if match and prompt_chars:
        measured = int(match.group(1)) / prompt_chars * SAFETY
        return min(MAX_TOKENS_PER_CHAR, max(current * SAFETY, measured))
    return min(MAX_TOKENS_PER_CHAR, current * 1.5)

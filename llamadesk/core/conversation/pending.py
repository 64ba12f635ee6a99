"""A reply in flight, and the bookkeeping of continued replies and prompts that did not fit."""

from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from llamadesk.core.conversation.plan import MAX_TOKENS_PER_CHAR
from llamadesk.core.history import StreamingReply
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.token_probs import TOP_K, TokenProb, receipt_field, records_from_receipt

_OVER = re.compile(r"\((\d+) tokens\)")  # the engine's "The conversation (1841 tokens) no longer fits…"
SAFETY = 1.1


@dataclass
class PendingReply:
    """A reply being generated, kept by request id so it lands in its own conversation wherever you look."""

    cid: int
    reply: StreamingReply
    cancel: threading.Event
    deleted: bool = False
    write_error_shown: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # receipt keys the session adds (prompt, policy)
    continued: dict[str, Any] | None = None  # the receipt of the reply being continued
    replan: tuple[int, int | None, SamplingParams, str] | None = None  # (cid, upto, params, prompt) to fit again
    retries: int = 0
    base_chars: int = 0  # the reply's length when asked for (a continued reply starts with its old text)
    excluded_ids: set[int] = field(default_factory=set)  # left out of this prompt (the chat marks them)
    prompt_chars: int = 0  # characters of the prompt sent: with the engine's token count, the real ratio
    mode: str = "chat"  # GenerationMode value: chat, continue or completion (notebook)
    records: list[TokenProb] = field(default_factory=list)  # token probabilities so far, offsets in the whole reply


def shifted(records: list[TokenProb], by: int) -> list[TokenProb]:
    """Records of a continuation, their offsets moved past the text the reply already had."""
    return [dataclasses.replace(r, offset=r.offset + by) for r in records] if by else list(records)


def merge_continuation(previous: dict[str, Any], new: dict[str, Any], base_chars: int = 0) -> dict[str, Any]:
    """The receipt of a continued reply: the first part's settings, every continuation, the totals. Token
    probabilities of the continuation join the first part's, their offsets counted from the reply's start."""
    merged = dict(previous)
    new = dict(new)
    probs = new.pop("token_probs", None)
    if isinstance(probs, dict):
        records = records_from_receipt(previous) + shifted(records_from_receipt({"token_probs": probs}), base_chars)
        merged["token_probs"] = receipt_field(records, int(probs.get("k") or TOP_K))
    merged["continuations"] = [*previous.get("continuations", []), new]
    merged["generated_tokens"] = int(previous.get("generated_tokens") or 0) + int(new.get("generated_tokens") or 0)
    merged["finish_reason"] = new.get("finish_reason", previous.get("finish_reason"))
    return merged


def ratio_after_overflow(message: str, prompt_chars: int, current: float) -> float:
    """Tokens per character learnt from the engine's refusal (it names the prompt's real size), with a margin."""
    match = _OVER.search(message)
    if match and prompt_chars:
        measured = int(match.group(1)) / prompt_chars * SAFETY
        return min(MAX_TOKENS_PER_CHAR, max(current * SAFETY, measured))
    return min(MAX_TOKENS_PER_CHAR, current * 1.5)

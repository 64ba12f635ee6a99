"""The token loop of one reply: sample, detokenize, hold back stop strings, record probabilities, stop on request."""

from __future__ import annotations

import codecs
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llamadesk.core import llama_log
from llamadesk.core.engines import grammar_sampler
from llamadesk.core.engines.api import FinishReason, GenerationStats, Token
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.token_probs import TokenProb, TopKRecorder

# OpenAI harmony's (gpt-oss) markers: special tokens that structure a reply into channels (parts.py reads them). The
# stream shows these as their text; every other special token (BOS, EOS, a template's own tags) stays hidden.
HARMONY_MARKERS = ("<|channel|>", "<|message|>", "<|start|>", "<|end|>", "<|return|>", "<|constrain|>", "<|call|>")


def marker_tokens(llama: Any) -> frozenset[int]:
    """The ids of the harmony markers that the loaded vocabulary has as single tokens (read once, at load)."""
    found = set()
    for marker in HARMONY_MARKERS:
        ids = llama.tokenize(marker.encode(), add_bos=False, special=True)
        if len(ids) == 1 and llama._model.detokenize(ids, special=True) == marker.encode():
            found.add(ids[0])
    return frozenset(found)


def token_bytes(model: Any, token: int, shown: frozenset[int]) -> bytes:
    """One token's bytes as the stream shows them: special tokens hidden, except those in `shown`."""
    piece: bytes = model.detokenize([token], token in shown)
    return piece


class StopText:
    """Holds back text that may be the start of a stop string, so a stop string never reaches the user."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to show, whether a stop string was found)."""
        self.pending += text
        for stop in self.stops:
            index = self.pending.find(stop)
            if index >= 0:
                out, self.pending = self.pending[:index], ""
                return out, True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


@dataclass
class Outcome:
    """What the loop found out, read by the engine after the last Token to build the stats and the receipt."""

    started: float = field(default_factory=time.perf_counter)
    generated: int = 0
    ttft: float = 0.0
    first_at: float = 0.0
    ended: float = 0.0
    reason: FinishReason = FinishReason.LENGTH
    error: str | None = None
    records: list[TokenProb] = field(default_factory=list)

    def stats(self, *, prompt_tokens: int, cached_tokens: int, seed: int) -> GenerationStats:
        """The reply's figures once the loop has ended (text and image prompts alike)."""
        generated, first_at, ended = self.generated, self.first_at, self.ended
        return GenerationStats(
            prompt_tokens=prompt_tokens,
            cached_tokens=cached_tokens,
            generated_tokens=generated,
            ttft_s=self.ttft,
            tokens_per_s=(generated - 1) / (ended - first_at) if generated > 1 and ended > first_at else 0.0,
            total_s=ended - self.started,
            finish_reason=self.reason,
            seed=seed,
            error=self.error,
        )


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def stream_tokens(
    llama: Any,
    tokens: list[int],
    params: SamplingParams,
    cancel: threading.Event,
    outcome: Outcome,
    *,
    budget: int,
    stops: Sequence[str],
    strip_start: bool,
    token_probs: bool,
    abort_in_decode: Callable[[bool], None],
    shown: frozenset[int] = frozenset(),
    grammar: str | None = None,
) -> Iterator[Token]:
    """Generates after `tokens`; yields Token events and fills `outcome`. `strip_start` drops the leading space of
    a chat reply (SentencePiece's "▁Word"); a continued reply or raw text keeps it. `abort_in_decode(on)` turns the
    abort callback that lets Stop interrupt the prompt's evaluation on or off. `shown`: the special tokens rendered as
    their text (marker_tokens). `grammar`: GBNF text every token must fit (structured.llama_grammar), sampled the
    rejection-first way (grammar_sampler.py); the reply then ends when the grammar is complete, or runs into
    `budget` (LENGTH) before it closes."""
    import llama_cpp

    vocab = llama._model.vocab
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stop_text = StopText(stops)
    model = llama._model
    recorder = TopKRecorder(lambda t: token_bytes(model, t, shown).decode("utf-8", "replace")) if token_probs else None
    decoded = 0  # characters decoded so far, for the records' offsets
    skipped = 0  # leading whitespace dropped from a chat reply
    at_start = strip_start
    abort_in_decode(True)  # for the prompt's evaluation
    held = contextlib.ExitStack()
    if grammar is not None:
        held.enter_context(grammar_sampler.installed(llama, grammar))
    gen = llama.generate(
        tokens,
        top_k=params.top_k,
        top_p=params.top_p,
        min_p=params.min_p,
        typical_p=params.typical_p,
        temp=params.temperature,
        repeat_penalty=params.repeat_penalty,
        frequency_penalty=params.frequency_penalty,
        presence_penalty=params.presence_penalty,
        mirostat_mode=params.mirostat_mode,
        mirostat_tau=params.mirostat_tau,
        mirostat_eta=params.mirostat_eta,
        logits_processor=llama_cpp.LogitsProcessorList([recorder]) if recorder is not None else None,
    )
    try:
        if cancel.is_set():
            outcome.reason = FinishReason.CANCELLED
            return
        for token in gen:
            if outcome.generated == 0:
                outcome.first_at = time.perf_counter()
                outcome.ttft = outcome.first_at - outcome.started
                # The prompt is evaluated: from here a Stop is seen between tokens. The callback runs in Python for
                # every graph node (with the GIL, while the other threads wait): ~5 % of the decode speed.
                abort_in_decode(False)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                outcome.reason = FinishReason.STOP
                break
            outcome.generated += 1
            piece = decoder.decode(token_bytes(model, token, shown))
            record = recorder.take(token, max(decoded - skipped, 0), piece) if recorder is not None else None
            if record is not None:
                outcome.records.append(record)
            decoded += len(piece)
            text, stopped = stop_text.feed(piece)
            if at_start:
                stripped = text.lstrip()
                skipped += len(text) - len(stripped)
                text, at_start = stripped, not stripped
            if record is not None:
                yield Token(text, (record,))
            elif text:
                yield Token(text)
            if stopped:
                outcome.reason = FinishReason.STOP
                break
            if cancel.is_set():
                outcome.reason = FinishReason.CANCELLED
                break
            if outcome.generated >= budget:
                outcome.reason = FinishReason.LENGTH
                break
    except RuntimeError as exc:  # llama_decode returned 2: aborted by the callback; else a real failure
        if cancel.is_set():
            outcome.reason = FinishReason.CANCELLED
        else:
            outcome.reason = FinishReason.ERROR
            outcome.error = f"Generation failed: {llama_log.reason_since(0) or exc}."
    finally:
        gen.close()
        held.close()
        outcome.ended = time.perf_counter()
    if outcome.reason is not FinishReason.STOP:
        tail = stop_text.flush() + decoder.decode(b"", final=True)
        if tail and not at_start:
            yield Token(tail)
    outcome.ended = time.perf_counter()

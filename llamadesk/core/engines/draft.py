"""Speculative decoding with a draft model: a second, small GGUF of the same family (same vocabulary) loaded beside
the main model proposes the next tokens greedily, and llama-cpp-python's Llama.generate verifies them in one batch
through its `draft_model` hook (llama_speculative.LlamaDraftModel). A drafted token is kept only as far as it equals
what the main model's sampler picks at that position, so the output is exactly the same at temperature 0, and with
sampling each token is still drawn from the main model's distribution.

The draft's Llama is owned by the engine's thread like the main one: the hook is called from inside generate().
When a conversation's drafts are mostly rejected, drafting costs more than it saves; it is then switched off for the
rest of that conversation (DraftModel.begin names the conversation; the receipt says so)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from llama_cpp.llama_speculative import LlamaDraftModel

from llamadesk.core.errors import ModelLoadError

log = logging.getLogger(__name__)

N_DRAFT = 8  # tokens drafted per step; bench/bench_speculative.py measures the speedup with it
# Off when it loses. One step drafts N_DRAFT tokens (N_DRAFT draft decodes) and verifies them with one batch of
# N_DRAFT + 1 tokens on the main model; it yields accepted + 1 tokens, so the speedup is linear in the acceptance
# rate (accepted / drafted) for a given pair: speedup = (1 + rate * N_DRAFT) * t_token / (t_verify + N_DRAFT * t_draft).
# Measured by bench/bench_speculative.py (2 shared CPU cores, 1 thread, a generated 1024-wide target whose draft
# costs 1/6 of it, like the catalog's pairs or cheaper; median of 3 alternated pairs, 96 tokens each):
#     rate   0.001  0.018  0.161  0.625  0.966
#     speedup 0.23   0.27   0.52   1.43   2.08
# A step costs 4.3 plain tokens on a CPU (the batch of 9 alone 2.8, measured with a nearly free 64-wide draft:
# 0.36x at rate 0.003). The least-squares line through those points crosses 1.0 at rate 0.40 (interpolating
# between 0.161 and 0.625 gives 0.41): below it a draft model makes replies slower. A GPU verifies a batch of 9
# in about the time of one token, which lowers the break-even there; 0.40 is the CPU figure and errs towards
# switching off.
BREAK_EVEN = 0.40
JUDGED_AFTER = 48  # drafted tokens of a conversation before its rate is judged (fewer: one short reply's noise)
PREFILL_CHUNK = 128  # tokens the draft reads between looks at the cancel event (engine.prefill)
CONVERSATIONS = 256  # conversations whose tallies are kept (least recently drafted for dropped first)


@dataclass
class Tally:
    drafted: int = 0
    accepted: int = 0
    off: bool = False


def conversation_key(messages: Sequence[dict[str, Any]]) -> str:
    """A conversation is named by its beginning: the messages up to and including the first user message (the
    system prompt and the first question), which every later turn of it repeats."""
    head: list[dict[str, Any]] = []
    for message in messages:
        head.append({"role": message.get("role"), "content": message.get("content")})
        if message.get("role") == "user":
            break
    return hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode()).hexdigest()


# Vocabularies may differ by this many tokens at their end, as llama.cpp's own speculative decoding allows
# (SPEC_VOCAB_MAX_SIZE_DIFFERENCE): Qwen2.5 0.5B's GGUF has 151,936 tokens and 7B's 152,064 (padding).
VOCAB_SLACK = 128


def same_vocabulary(main: Any, draft: Any, samples: int = 64) -> bool:
    """Vocabulary sizes within VOCAB_SLACK, and the same texts for a sample of the token ids both have, spread over
    them (plus BOS/EOS). A drafted id the main model does not have ends the draft (DraftModel._draft)."""
    n = min(main.n_vocab(), draft.n_vocab())
    if abs(draft.n_vocab() - main.n_vocab()) > VOCAB_SLACK:
        return False
    ids = {int(i) for i in np.linspace(0, n - 1, num=min(samples, n))} | {main.token_bos(), main.token_eos()}
    return all(main._model.token_get_text(i) == draft._model.token_get_text(i) for i in sorted(ids) if 0 <= i < n)


class DraftModel(LlamaDraftModel):
    """A second Llama that drafts N_DRAFT tokens greedily from the context it is given. Its KV cache keeps the
    longest prefix it shares with that context (the prompt is read once per reply, then a token or a few per step).
    Counts what it drafted and what the main model accepted: each draft against the tokens that came after it (the
    next call's input, or at the end of the reply the reply's tokens)."""

    def __init__(self, llama: Any, path: Path, n_vocab: int, n_draft: int = N_DRAFT) -> None:
        self.llama, self.path, self.n_draft, self.n_vocab = llama, path, n_draft, n_vocab  # n_vocab: the main model's
        self._tallies: OrderedDict[str, Tally] = OrderedDict()
        self._tally = Tally()  # the conversation now drafting (begin)
        self._reply = Tally()  # this reply's counts, for the receipt
        self._pending: tuple[int, np.ndarray] | None = None
        self._turned_off = False  # in this reply

    @classmethod
    def load(cls, path: Path, main: Any, n_ctx: int, n_threads: int, n_gpu_layers: int) -> DraftModel:
        """Loads `path` beside `main`; ModelLoadError (one sentence) when it cannot draft for it. The engine has
        validated and probed the file first, as it does the main model's (engines/local.py)."""
        import llama_cpp

        captured = io.StringIO()
        try:
            with contextlib.redirect_stderr(captured):  # verbose=True: Llama() must not dup2 the process's fds
                llama = llama_cpp.Llama(
                    model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                    n_gpu_layers=n_gpu_layers, verbose=True,
                )  # fmt: skip
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"The draft model {path.name} could not be loaded: {exc}.") from exc
        llama.verbose = False
        if not same_vocabulary(main, llama):
            llama.close()
            raise ModelLoadError(
                f"{path.name} cannot draft for this model: their vocabularies differ "
                f"({llama.n_vocab()} and {main.n_vocab()} tokens); choose a draft model of the same family."
            )
        return cls(llama, path, main.n_vocab())

    def begin(self, key: str) -> None:
        """The reply about to be generated belongs to conversation `key`."""
        self._pending = None
        self._reply, self._turned_off = Tally(), False
        self._tally = self._tallies.pop(key) if key in self._tallies else Tally()
        self._tallies[key] = self._tally
        while len(self._tallies) > CONVERSATIONS:
            self._tallies.popitem(last=False)

    def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
        self._settle(input_ids)
        if self._tally.off:
            return np.array([], dtype=np.intc)
        room = self.llama.n_ctx() - len(input_ids) - 1
        draft = self._draft([int(t) for t in input_ids], min(self.n_draft, room)) if room > 0 else []
        if draft:
            self._pending = (len(input_ids), np.array(draft, dtype=np.intc))
            self._count(drafted=len(draft))
        return np.array(draft, dtype=np.intc)

    def _draft(self, ids: list[int], n: int) -> list[int]:
        import llama_cpp

        llama = self.llama
        self._keep_prefix(ids)
        llama.eval(ids[llama.n_tokens :])
        vocab, n_vocab = llama._model.vocab, llama.n_vocab()
        out: list[int] = []
        for i in range(n):
            logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(n_vocab,))
            token = int(np.argmax(logits))
            if token >= self.n_vocab:
                break
            out.append(token)
            if llama_cpp.llama_vocab_is_eog(vocab, token) or i == n - 1:
                break
            llama.eval([token])
        return out

    def _keep_prefix(self, ids: list[int]) -> None:
        """Keeps the longest prefix of the draft's KV cache that `ids` shares, less the last token (evaluated again
        for its logits); the next eval() drops the rest."""
        llama = self.llama
        shared = 0
        for a, b in zip(llama.input_ids[: llama.n_tokens].tolist(), ids, strict=False):
            if a != b:
                break
            shared += 1
        llama.n_tokens = min(shared, len(ids) - 1)

    def prefill(self, tokens: list[int], cancel: threading.Event) -> None:
        """Reads a prompt ahead of its reply (engine.prefill), as the main model does: else the draft reads it
        after the reply's first token, a pause before the second. In chunks, so that `cancel` stops it soon."""
        llama = self.llama
        if not tokens or len(tokens) >= llama.n_ctx() - 1:
            return
        self._keep_prefix(tokens)
        while llama.n_tokens < len(tokens) and not cancel.is_set():
            llama.eval(tokens[llama.n_tokens : llama.n_tokens + PREFILL_CHUNK])

    def _settle(self, truth: Any) -> None:
        if self._pending is None:
            return
        start, draft = self._pending
        self._pending = None
        accepted = 0
        for a, b in zip(truth[start : start + len(draft)], draft, strict=False):
            if a != b:
                break
            accepted += 1
        self._count(accepted=accepted)
        tally = self._tally
        if not tally.off and tally.drafted >= JUDGED_AFTER and tally.accepted < BREAK_EVEN * tally.drafted:
            tally.off = self._turned_off = True
            log.info("Drafting off for a conversation: %d of %d drafted tokens accepted", tally.accepted, tally.drafted)

    def _count(self, drafted: int = 0, accepted: int = 0) -> None:
        for tally in (self._tally, self._reply):
            tally.drafted += drafted
            tally.accepted += accepted

    def take(self, llama: Any, n_prompt: int, n_generated: int) -> dict[str, Any]:
        """The receipt's "speculation" field for the reply that just ended."""
        self._settle(llama.input_ids[: min(n_prompt + n_generated, int(llama.n_tokens))])
        field: dict[str, Any] = {
            "method": "draft model",
            "draft_model": self.path.name,
            "drafted": self._reply.drafted,
            "accepted": self._reply.accepted,
        }
        if self._tally.off:
            tally = self._tally
            when = "during this reply" if self._turned_off else "earlier"
            field["off"] = (
                f"Drafting was switched off for this conversation {when}: {tally.accepted} of {tally.drafted} "
                f"drafted tokens were accepted, below the break-even rate of {BREAK_EVEN:.0%}, so it was slower."
            )
        self._reply = Tally()
        return field

    def close(self) -> None:
        self.llama.close()

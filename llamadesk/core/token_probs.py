"""Per-token probabilities, cheaply: a logits processor that keeps the top-k of each step with numpy.

llama-cpp-python's own logprobs need `logits_all=True` (n_ctx × n_vocab floats) and sort the whole vocabulary in
Python per token. This processor sees the logits of one step (before penalties, temperature and truncation: the
model's own distribution), keeps exp(logits - max) and their sum, and picks the top k with `argpartition`; when
the sampled token comes back, its probability and the alternatives are paired up into one `TokenProb`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported on first use: the window imports this module at start-up for TokenProb
    import numpy as np

TOP_K = 5  # alternatives kept per token
MAX_RECORDS = 2048  # per reply in the receipt: ~80 bytes each as JSON
DIGITS = 4  # probabilities are rounded to this many decimals in receipts
CLOSE = math.exp(-6.0)  # tokens this much less likely than the best are no top-k candidates if enough are closer


@dataclass(frozen=True)
class TokenProb:
    """One generated token: where its text starts in the reply, the text, its probability, the alternatives."""

    offset: int
    text: str
    p: float
    alternatives: tuple[tuple[str, float], ...] = ()

    def to_json(self) -> list[Any]:
        """The compact form stored in receipts: [offset, text, p, [[text, p], ...]]."""
        return [self.offset, self.text, round(self.p, DIGITS), [[t, round(p, DIGITS)] for t, p in self.alternatives]]

    @classmethod
    def from_json(cls, item: Any) -> TokenProb | None:
        """Reads one stored record; None for anything malformed (receipts may come from an import)."""
        try:
            offset, text, p, alternatives = item
            alts = tuple((str(t), float(q)) for t, q in alternatives)
            return cls(int(offset), str(text), float(p), alts)
        except (TypeError, ValueError):
            return None


def records_from_receipt(receipt: dict[str, Any] | None) -> list[TokenProb]:
    """The token records kept in a receipt's "token_probs" (an empty list when there are none)."""
    stored = (receipt or {}).get("token_probs")
    items = stored.get("tokens") if isinstance(stored, dict) else None
    if not isinstance(items, list):
        return []
    return [r for r in (TokenProb.from_json(item) for item in items) if r is not None]


def receipt_field(records: Sequence[TokenProb], k: int = TOP_K) -> dict[str, Any]:
    """The receipt's "token_probs" value: the first MAX_RECORDS records and whether more were left out."""
    return {
        "k": k,
        "tokens": [r.to_json() for r in records[:MAX_RECORDS]],
        "truncated": len(records) > MAX_RECORDS,
    }


class TopKRecorder:
    """A llama-cpp-python logits processor (`processor(input_ids, scores) -> scores`) that leaves the scores as
    they are and remembers the current step's distribution; `take(token)` pairs it with the sampled token.

    Cheap by design: exp(logits - max) straight from llama.cpp's strided candidates into a reused buffer (the
    normaliser needs all of them), and the top k sorted among the few tokens within e^-6 of the best
    (argpartition over the whole vocabulary only when fewer are that close).
    No Python loop over the vocabulary; the scores themselves are returned untouched.
    """

    def __init__(self, piece: Callable[[int], str], k: int = TOP_K) -> None:
        self.k = k
        self._piece = piece
        self._texts: dict[int, str] = {}
        self._weights_now: np.ndarray[Any, Any] | None = None  # this step's; valid until the next call
        self._total = 1.0
        self._top: np.ndarray[Any, Any] | None = None
        self._weights: np.ndarray[Any, Any] | None = None

    def __call__(self, _input_ids: Any, scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        import numpy as np

        best = float(scores.max())
        weights = np.subtract(scores, best, out=self._buffer(scores.shape[0]), dtype=np.float32)
        np.exp(weights, out=weights)  # exp(logit - best): the unnormalised probabilities, in a reused buffer
        near = np.flatnonzero(weights > CLOSE)  # the top k are among the few tokens close to the best
        if near.shape[0] <= self.k:
            near = np.argpartition(weights, -(self.k + 1))[-(self.k + 1) :]
        top = near[np.argsort(-weights[near])[: self.k + 1]]  # one more: the sampled token is usually among them
        self._weights_now, self._total, self._top = weights, float(weights.sum()), top
        return scores

    def _buffer(self, n: int) -> np.ndarray[Any, Any]:
        import numpy as np

        if self._weights is None or self._weights.shape[0] != n:
            self._weights = np.empty(n, dtype=np.float32)
        return self._weights

    def text(self, token: int) -> str:
        found = self._texts.get(token)
        if found is None:
            found = self._texts[token] = self._piece(token)
        return found

    def take(self, token: int, offset: int, text: str) -> TokenProb | None:
        """The record of the token just sampled (None if the processor was not called for this step)."""
        weights, top = self._weights_now, self._top
        if weights is None or top is None or not 0 <= token < weights.shape[0]:
            return None
        self._weights_now = self._top = None
        total = self._total or 1.0
        alternatives = tuple((self.text(int(t)), float(weights[t]) / total) for t in top if int(t) != token)
        return TokenProb(offset, text, float(weights[token]) / total, alternatives[: self.k])

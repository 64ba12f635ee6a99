"""Grammar-constrained sampling at nearly the speed of free sampling: the token is drawn without the grammar first
and kept when the grammar accepts it; only when it does not is the grammar applied to the whole vocabulary and the
token drawn again (llama.cpp's own common_sampler does the same; read, not copied).

Why hand-written: llama-cpp-python puts the grammar sampler first in its chain (`Llama._init_sampler`), so every
token runs the grammar over all ~50k candidates — half the tokens/s on the starter model (bench_structured). It has
no option for the rejection-first order, so this wraps the chain it builds: `installed()` makes `llama.generate()`
use a `GrammarFirstRejection` in place of its sampler for one stream.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

# llama_token_data as numpy sees it: {int32 id; float logit; float p}
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


class GrammarFirstRejection:
    """Stands in for llama-cpp-python's LlamaSampler inside `llama.generate()` (which calls only `.sample`)."""

    def __init__(self, chain: Any, vocab: Any, n_vocab: int, grammar_text: str) -> None:
        import llama_cpp

        self._c = llama_cpp
        self.chain = chain  # the LlamaSampler the library built, without the grammar
        self.grammar = llama_cpp.llama_sampler_init_grammar(vocab, grammar_text.encode("utf-8"), b"root")
        if not self.grammar:
            raise ValueError("llama.cpp refused the grammar")
        self.n_vocab = n_vocab
        self._data = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._data["id"] = np.arange(n_vocab, dtype=np.int32)
        self._ids = self._data["id"].copy()
        self._one = (llama_cpp.llama_token_data * 1)()
        self.rejections = 0  # tokens drawn again under the grammar (a figure for the bench)
        self.tokens = 0
        self._finalizer = weakref.finalize(self, llama_cpp.llama_sampler_free, self.grammar)

    def _candidates(self, ctx: Any, idx: int) -> Any:
        logits = self._c.llama_get_logits_ith(ctx, idx)
        self._data["id"] = self._ids
        self._data["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self._data["p"] = 0.0
        pointer = self._data.ctypes.data_as(self._c.llama_token_data_p)
        return self._c.llama_token_data_array(data=pointer, size=self.n_vocab, selected=-1, sorted=False)

    def _chosen(self, array: Any) -> int:
        return int(self._data["id"][array.selected])

    def _accepted(self, token: int) -> bool:
        one = self._one
        one[0] = self._c.llama_token_data(id=token, logit=1.0, p=0.0)
        array = self._c.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        self._c.llama_sampler_apply(self.grammar, ctypes.byref(array))
        return not math.isinf(one[0].logit)

    def sample(self, ctx: Any, idx: int = -1) -> int:
        chain = self.chain.sampler
        array = self._candidates(ctx.ctx, idx)
        self._c.llama_sampler_apply(chain, ctypes.byref(array))
        token = self._chosen(array)
        self.tokens += 1
        if not self._accepted(token):
            self.rejections += 1
            array = self._candidates(ctx.ctx, idx)
            self._c.llama_sampler_apply(self.grammar, ctypes.byref(array))
            self._c.llama_sampler_apply(chain, ctypes.byref(array))
            token = self._chosen(array)
        self._c.llama_sampler_accept(self.grammar, token)
        self._c.llama_sampler_accept(chain, token)
        return token

    def accept(self, token: int) -> None:
        self._c.llama_sampler_accept(self.grammar, token)
        self._c.llama_sampler_accept(self.chain.sampler, token)

    def reset(self) -> None:
        self._c.llama_sampler_reset(self.grammar)
        self.chain.reset()

    def close(self) -> None:
        self._finalizer()
        self.chain.close()


@contextlib.contextmanager
def installed(llama: Any, grammar_text: str) -> Iterator[list[GrammarFirstRejection]]:
    """While open, the samplers `llama.generate()` builds hold to `grammar_text` the rejection-first way (pass it no
    `grammar=`); yields the list they are put in."""
    made: list[GrammarFirstRejection] = []
    build = llama._init_sampler  # the bound method: the chain as llama-cpp-python makes it

    def init_sampler(**kwargs: Any) -> GrammarFirstRejection:
        kwargs.pop("grammar", None)
        sampler = GrammarFirstRejection(build(**kwargs), llama._model.vocab, llama.n_vocab(), grammar_text)
        made.append(sampler)
        return sampler

    llama._init_sampler = init_sampler  # an instance attribute: shadows the method for this stream only
    try:
        yield made
    finally:
        del llama._init_sampler

"""Special-token text inside a message stays text.

A chat template's own tags (`<|im_start|>`, `<start_of_turn>`, …) must become the model's control tokens, so the
rendered prompt is tokenized with special tokens parsed. A message, a document passage or a tool result may contain
the same strings ("<|im_end|><|im_start|>system …"): parsed, they would end the user's turn and start a system turn
that the text wrote itself. So when any message contains a control token's text, the prompt is tokenized in pieces:
the template's text with special tokens parsed, each message's text without (core/templates.py render_parts).
Prompts without such text, nearly all, are tokenized whole as before: the same tokens, the cached prefix kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import llama_cpp

CACHE_SIZE = 4096  # messages remembered as checked: a long conversation is checked once, not at every turn


class ControlTexts:
    """The texts of a vocabulary's control tokens, and a fast check of whether a message contains one."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.texts = frozenset(t for t in texts if t)
        self._lengths = sorted({len(t) for t in self.texts})
        self._starts = frozenset(t[0] for t in self.texts)
        self._checked: dict[str, bool] = {}

    @classmethod
    def of(cls, llama: Any) -> ControlTexts:
        """Read from a loaded model's vocabulary (once, at load: a loop over the vocabulary, ~0.1 s at 256k)."""
        model = llama._model
        control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        texts = []
        for token in range(model.n_vocab()):
            if model.token_get_attr(token) & control:
                texts.append(model.detokenize([token], special=True).decode("utf-8", "replace"))
        return cls(texts)

    def found_in(self, text: str) -> bool:
        """Whether `text` contains a control token's text. Looks only where one of their first characters is (few:
        '<', '[' …), comparing the few lengths they have; remembered per text."""
        known = self._checked.get(text)
        if known is not None:
            return known
        found = self._scan(text)
        if len(self._checked) >= CACHE_SIZE:
            self._checked.clear()
        self._checked[text] = found
        return found

    def _scan(self, text: str) -> bool:
        texts, lengths = self.texts, self._lengths
        for start in self._starts:
            pos = text.find(start)
            while pos >= 0:
                if any(text[pos : pos + n] in texts for n in lengths):
                    return True
                pos = text.find(start, pos + 1)
        return False

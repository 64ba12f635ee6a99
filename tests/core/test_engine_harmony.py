"""Harmony's markers (gpt-oss) through real llama.cpp, on a generated model whose vocabulary holds them as control
tokens: the stream shows them as their text, and every other special token (BOS, EOS, ChatML's tags) stays hidden."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import gguf
import gguf_factory
import pytest
from gguf_factory import edit_output_rows, write_tiny_llama

from llamadesk.core.engines.api import Done, LoadOptions, Token
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.engines.local_stream import HARMONY_MARKERS, marker_tokens, token_bytes
from llamadesk.core.sampling import SamplingParams

FIRST_MARKER = len(gguf_factory._vocab()[0])  # the markers follow the tiny model's own vocabulary
MARKER_IDS = {marker: FIRST_MARKER + i for i, marker in enumerate(HARMONY_MARKERS)}
BOS, EOS, END_OF_TEXT, IM_START = 1, 4, 2, 3  # write_tiny_llama's control tokens


@pytest.fixture(scope="module")
def harmony_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokens, scores, types = gguf_factory._vocab()
    n = len(HARMONY_MARKERS)
    extended = (tokens + list(HARMONY_MARKERS), scores + [0.0] * n, types + [gguf.TokenType.CONTROL] * n)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gguf_factory, "_vocab", lambda: extended)
        return write_tiny_llama(tmp_path_factory.mktemp("harmony") / "tiny-harmony.gguf")


@contextlib.contextmanager
def loaded(path: Path) -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine()
    try:
        engine.load(LoadOptions(path, n_ctx=512, n_threads=1))
        yield engine
    finally:
        engine.close()


@pytest.fixture
def harmony_engine(harmony_model: Path) -> Iterator[LlamaCppEngine]:
    with loaded(harmony_model) as engine:
        yield engine


def test_the_markers_are_found_at_load_and_only_they_are_shown(
    harmony_engine: LlamaCppEngine, engine: LlamaCppEngine
) -> None:
    llama = harmony_engine._llama
    shown = marker_tokens(llama)
    assert shown == set(MARKER_IDS.values())
    for marker, token in MARKER_IDS.items():
        # this llama.cpp already makes <|channel|>, <|message|>, <|start|>, <|end|> and <|constrain|> user-defined
        # tokens (shown anyway); <|return|> and <|call|> stay control tokens (they end a generation): shown when asked
        assert token_bytes(llama._model, token, shown) == marker.encode(), marker
    for hidden in (BOS, EOS, END_OF_TEXT, IM_START):
        assert token_bytes(llama._model, hidden, shown) == b"", hidden
    assert llama._model.detokenize([MARKER_IDS["<|return|>"]]) == b"", "hidden without the engine's set"
    assert marker_tokens(engine._llama) == frozenset()  # a ChatML vocabulary has none of them


def test_a_stream_of_markers_arrives_as_their_text(harmony_model: Path, tmp_path: Path) -> None:
    # a row and its negative: one of <|channel|> and <|message|> has by far the largest logit at every step
    rows = {MARKER_IDS["<|channel|>"]: 1.0, MARKER_IDS["<|message|>"]: -1.0}
    path = edit_output_rows(harmony_model, tmp_path / "markers.gguf", zero=[], rows=rows)
    params = SamplingParams(temperature=0.0, repeat_penalty=1.0, max_tokens=12, seed=1)
    with loaded(path) as engine:
        events = list(engine.stream([{"role": "user", "content": "hello"}], params, token_probs=True))
    text = "".join(e.text for e in events if isinstance(e, Token))
    records = [r for e in events if isinstance(e, Token) for r in e.probs]
    done = events[-1]
    assert isinstance(done, Done) and done.stats.generated_tokens == 12
    assert re.fullmatch(r"(?:<\|channel\|>|<\|message\|>)+", text), text
    assert len(records) == 12 and "".join(r.text for r in records) == text  # the records render tokens alike
    assert all(r.text in ("<|channel|>", "<|message|>") for r in records)

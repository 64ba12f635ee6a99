"""Reading a prompt ahead of its reply (LlamaCppEngine.prefill), with real llama.cpp: the reply then reads only what
changed, an interrupted prefill leaves a cache the reply can use, and the text is the same as without it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamadesk.core.engines.api import LoadOptions, Message
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.sampling import SamplingParams
from tests.core.conftest import collect

GREEDY = SamplingParams(temperature=0.0, max_tokens=12, seed=1)
NOTES = "The garden needs water in the morning, and the tomatoes want a stake each because the wind bends them. "


@pytest.fixture
def starter_engine(starter_model: Path) -> Iterator[LlamaCppEngine]:
    eng = LlamaCppEngine()
    # No saved prompt states (prompt_cache.py): these tests read prompts into the KV cache itself, and a state
    # restored from the cache would hand them a prompt already read.
    eng.load(LoadOptions(starter_model, n_ctx=2048, n_threads=2, prompt_cache_mb=0))
    yield eng
    eng.close()


def chat(user: str) -> list[Message]:
    return [{"role": "system", "content": "You are brief."}, {"role": "user", "content": user}]


def test_a_prepared_prompt_is_not_read_again_and_the_reply_is_the_same(engine: LlamaCppEngine) -> None:
    messages = chat("Tell me about llamas and their wool.")
    expected, _ = collect(engine.stream(messages, GREEDY))
    collect(engine.stream(chat("Something else entirely, to fill the cache."), GREEDY))

    evaluated = engine.prefill(messages)
    prompt_tokens = engine.count_tokens(messages)
    assert 0 < evaluated <= prompt_tokens
    assert engine.prefill(messages) == 0  # already there
    text, done = collect(engine.stream(messages, GREEDY))
    assert text == expected
    assert done.stats.cached_tokens == done.stats.prompt_tokens == prompt_tokens  # nothing read at Enter


def test_typing_on_reads_only_the_new_words(engine: LlamaCppEngine) -> None:
    engine.prefill(chat("How long do turnips"))
    evaluated = engine.prefill(chat("How long do turnips cook in soup?"))
    assert 0 < evaluated < engine.count_tokens(chat("How long do turnips cook in soup?")) // 2


def test_a_prompt_too_long_for_the_context_is_left_alone(engine: LlamaCppEngine) -> None:
    assert engine.prefill(chat("word " * 2000)) == 0
    _text, done = collect(engine.stream(chat("hello"), GREEDY))
    assert done.stats.finish_reason.value in ("length", "stop")


def test_an_interrupted_prefill_keeps_what_it_read_and_the_reply_is_the_same(
    starter_engine: LlamaCppEngine,
) -> None:
    engine = starter_engine
    messages = chat(NOTES * 32 + "What should I do first?")  # ~720 tokens: two batches of 512
    expected, _ = collect(engine.stream(messages, GREEDY))
    collect(engine.stream(chat("Something else entirely."), GREEDY))
    llama = engine._llama
    assert llama is not None
    cancel = threading.Event()
    first_batch = threading.Event()

    def interrupt_after_the_first_batch() -> None:
        while not cancel.is_set():
            if llama.n_tokens >= llama.n_batch:
                first_batch.set()
                cancel.set()
            else:
                threading.Event().wait(0.001)

    watcher = threading.Thread(target=interrupt_after_the_first_batch)
    watcher.start()
    try:
        evaluated = engine.prefill(messages, cancel)
    finally:
        cancel.set()
        watcher.join()
    prompt_tokens = engine.count_tokens(messages)
    assert first_batch.is_set() and llama.n_batch <= evaluated < prompt_tokens  # stopped inside a later batch
    text, done = collect(engine.stream(messages, GREEDY))
    assert text == expected
    assert done.stats.cached_tokens >= llama.n_batch


def test_a_notebook_text_is_prepared_as_raw_text(engine: LlamaCppEngine) -> None:
    document: list[Message] = [{"role": "user", "content": "Once upon a time, a llama learned to"}]
    assert engine.prefill(document, mode="completion") > 0
    _text, done = collect(engine.stream(document, GREEDY, mode="completion"))
    assert done.stats.cached_tokens == done.stats.prompt_tokens  # the same raw tokens, BOS first: nothing re-read

"""The llama.cpp engine through real llama.cpp on generated models (and the real starter model)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core.engines.api import Done, FinishReason, LoadOptions, Token
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.errors import GenerationError, ModelLoadError
from llamadesk.core.sampling import SamplingParams
from tests.core.conftest import collect

HELLO = [{"role": "user", "content": "hello model"}]


def run(engine: LlamaCppEngine, messages, params: SamplingParams, cancel=None) -> tuple[str, Done]:
    return collect(engine.stream(messages, params, cancel))


def test_load_reports_model_info(engine: LlamaCppEngine, tiny_model: Path) -> None:
    info = engine.info
    assert info is not None
    assert info.file_name == tiny_model.name
    assert info.architecture == "llama"
    assert info.quantization == "F32"
    assert info.n_ctx == 512 and info.n_layers == 2 and info.n_ctx_train == 2048
    assert info.template_name == "gguf" and info.template_source == "gguf"
    assert len(info.sha256) == 64
    assert engine.capabilities()["streaming"] is True


def test_stream_reports_stats_and_receipt(engine: LlamaCppEngine) -> None:
    _, done = run(engine, HELLO, SamplingParams(max_tokens=12, seed=7))
    s = done.stats
    assert s.finish_reason in (FinishReason.LENGTH, FinishReason.STOP)
    assert 0 < s.generated_tokens <= 12
    assert s.prompt_tokens == engine.count_tokens(HELLO) > 3
    assert s.ttft_s > 0 and s.total_s >= s.ttft_s
    assert s.seed == 7
    r = done.receipt
    assert r["seed"] == 7 and r["sampling"]["temperature"] == 0.7 and r["template"] == "gguf"
    assert r["generated_tokens"] == s.generated_tokens and r["finish_reason"] == s.finish_reason.value
    assert len(r["sha256"]) == 64 and r["model_file"].endswith(".gguf")


def test_max_tokens_ends_with_length(engine: LlamaCppEngine) -> None:
    # Random weights rarely pick the end token; top_k=1 keeps the run deterministic.
    _, done = run(engine, HELLO, SamplingParams(max_tokens=5, top_k=1, seed=1))
    if done.stats.finish_reason is FinishReason.LENGTH:
        assert done.stats.generated_tokens == 5
    else:
        assert done.stats.generated_tokens < 5


def test_fixed_seed_repeats_and_random_seed_is_recorded(engine: LlamaCppEngine) -> None:
    params = SamplingParams(max_tokens=24, temperature=1.0, seed=1234)
    a, _ = run(engine, HELLO, params)
    b, _ = run(engine, HELLO, params)
    assert a == b and a
    seeds = {run(engine, HELLO, params.replace(seed=None))[1].stats.seed for _ in range(3)}
    assert len(seeds) == 3, "a fresh random seed per request"


def test_stop_within_one_token(engine: LlamaCppEngine) -> None:
    cancel = threading.Event()
    seen = 0
    done = None
    for event in engine.stream(HELLO, SamplingParams(max_tokens=400, top_k=1, seed=3), cancel):
        if isinstance(event, Token):
            seen += 1
            if seen == 3:
                cancel.set()
        else:
            done = event
    assert done is not None
    if done.stats.finish_reason is FinishReason.CANCELLED:
        assert done.stats.generated_tokens <= 4
    else:  # the model happened to end its turn before the third token
        assert done.stats.generated_tokens < 4


def test_stop_before_start_generates_nothing(engine: LlamaCppEngine) -> None:
    cancel = threading.Event()
    cancel.set()
    text, done = run(engine, HELLO, SamplingParams(max_tokens=50), cancel)
    assert text == "" and done.stats.finish_reason is FinishReason.CANCELLED and done.stats.generated_tokens == 0


def test_stop_interrupts_long_prompt_evaluation(tmp_path: Path) -> None:
    """Stop during prompt evaluation aborts llama_decode itself, not after it finishes."""
    model = write_tiny_llama(tmp_path / "wider.gguf", n_embd=256, n_head=4, n_layers=6, n_ctx_train=8192)
    eng = LlamaCppEngine()
    eng.load(LoadOptions(model, n_ctx=8192, n_threads=2))
    try:
        long_prompt = [{"role": "user", "content": "the model " * 700}]
        started = time.perf_counter()
        _, full = run(eng, long_prompt, SamplingParams(max_tokens=1, seed=1))
        full_eval = time.perf_counter() - started
        eng.unload()
        # fresh KV cache: the whole prompt again (no saved prompt state either)
        eng.load(LoadOptions(model, n_ctx=8192, n_threads=2, prompt_cache_mb=0))
        cancel = threading.Event()
        timer = threading.Timer(full_eval / 5, cancel.set)
        started = time.perf_counter()
        timer.start()
        text, done = run(eng, long_prompt, SamplingParams(max_tokens=1, seed=1), cancel)
        aborted_after = time.perf_counter() - started
        timer.join()
        assert done.stats.finish_reason is FinishReason.CANCELLED
        assert done.stats.generated_tokens == 0 and text == ""
        assert aborted_after < full_eval * 0.8, (aborted_after, full_eval)
        # the KV cache is still usable after the abort
        _, again = run(eng, HELLO, SamplingParams(max_tokens=3, seed=1))
        assert again.stats.generated_tokens > 0 or again.stats.finish_reason is FinishReason.STOP
    finally:
        eng.close()
    assert full.stats.prompt_tokens > 3000


def test_next_turn_reuses_the_kv_prefix(engine: LlamaCppEngine) -> None:
    turn1 = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello model"}]
    reply, first = run(engine, turn1, SamplingParams(max_tokens=8, seed=5))
    turn2 = [*turn1, {"role": "assistant", "content": reply}, {"role": "user", "content": "and the stream"}]
    _, second = run(engine, turn2, SamplingParams(max_tokens=8, seed=5))
    assert second.stats.cached_tokens >= first.stats.prompt_tokens - 1
    assert second.stats.prompt_tokens > first.stats.prompt_tokens


def test_template_fallback_by_architecture_and_override(tiny_model_no_template: Path) -> None:
    eng = LlamaCppEngine()
    try:
        info = eng.load(LoadOptions(tiny_model_no_template, n_ctx=256))
        # llama architecture, no template: the vocabulary has <|im_start|>, so ChatML rather than llama-2
        assert (info.template_name, info.template_source) == ("chatml", "architecture")
        _, done = run(eng, HELLO, SamplingParams(max_tokens=4, seed=1))
        assert done.receipt["template"] == "chatml"
        info = eng.load(LoadOptions(tiny_model_no_template, n_ctx=256, chat_template="gemma"))
        assert (info.template_name, info.template_source) == ("gemma", "user")
    finally:
        eng.close()


def test_context_overflow_is_a_sentence(engine: LlamaCppEngine) -> None:
    with pytest.raises(GenerationError, match="no longer fits"):
        run(engine, [{"role": "user", "content": "the model " * 400}], SamplingParams(max_tokens=4))


@pytest.mark.parametrize(
    ("make", "phrase"),
    [
        (lambda d: d / "missing.gguf", "No model file"),
        (lambda d: d, "folder"),
        (lambda d: _write(d / "text.gguf", b"this is not a model at all" * 10), "not a GGUF"),
        (lambda d: _write(d / "empty.gguf", b""), "empty"),
    ],
)
def test_bad_files_give_one_sentence(tmp_path: Path, make, phrase: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ModelLoadError, match=phrase) as err:
        LlamaCppEngine().load(LoadOptions(path))
    assert "\n" not in str(err.value) and str(err.value).endswith(".")


def test_truncated_model_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    data = tiny_model.read_bytes()
    cut = _write(tmp_path / "cut.gguf", data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        LlamaCppEngine().load(LoadOptions(cut))


def test_unknown_architecture_is_explained(tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "alien.gguf", architecture="alienformer")
    with pytest.raises(ModelLoadError, match="architecture") as err:
        LlamaCppEngine().load(LoadOptions(model))
    assert "alienformer" in str(err.value)


def test_engine_recovers_after_failed_load(engine: LlamaCppEngine, tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(ModelLoadError):
        engine.load(LoadOptions(_write(tmp_path / "bad.gguf", b"GGUF" + b"\0" * 3)))
    engine.load(LoadOptions(tiny_model, n_ctx=256))
    _, done = run(engine, HELLO, SamplingParams(max_tokens=3, seed=1))
    assert done.stats.generated_tokens >= 0


@pytest.mark.starter
def test_starter_model_answers_two_plus_two(starter_model: Path) -> None:
    eng = LlamaCppEngine()
    try:
        eng.load(LoadOptions(starter_model, n_ctx=2048))
        text, done = run(eng, [{"role": "user", "content": "What is 2+2?"}],
                         SamplingParams(temperature=0.0, max_tokens=64, seed=0))  # fmt: skip
    finally:
        eng.close()
    assert "4" in text, text
    assert done.stats.tokens_per_s > 0


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path

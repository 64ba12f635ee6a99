"""Speculative decoding with a draft model (core/engines/draft.py) through the real engine on generated models of the
same vocabulary: the output at temperature 0 is exactly the same with and without the draft, the receipt counts
drafted and accepted tokens, a draft with another vocabulary is refused with a sentence, and a conversation whose
drafts are mostly rejected drafts no more (said in the receipt) while another conversation still drafts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np
import pytest
from conftest import collect
from gguf_factory import write_tiny_llama

from llamadesk.core.engines import draft
from llamadesk.core.engines.api import Done, LoadOptions, Message
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.errors import ModelLoadError
from llamadesk.core.sampling import SamplingParams

N_CTX = 2048
GREEDY = SamplingParams(max_tokens=48, seed=1, temperature=0.0)
PLAIN_GREEDY = SamplingParams(max_tokens=48, seed=1, temperature=0.0, repeat_penalty=1.0)  # argmax, as drafts are
A1: list[Message] = [{"role": "user", "content": "hello world the model answer " * 8}]
B1: list[Message] = [{"role": "user", "content": "python qt window stream test " * 8}]
LONG: list[Message] = [{"role": "user", "content": "the model answer is the reply to the question . " * 15}]


@pytest.fixture(scope="module")
def other_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same generator, so the same vocabulary; narrower and other weights: it mostly drafts the wrong tokens."""
    return write_tiny_llama(tmp_path_factory.mktemp("draft") / "draft-other.gguf", n_embd=32, n_head=1, seed=99)


@pytest.fixture(scope="module")
def other_vocab(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its word pieces' letters upper-cased in place: as many tokens, other texts."""
    dst = tmp_path_factory.mktemp("draft") / "draft-other-vocab.gguf"
    dst.write_bytes(tiny_model.read_bytes())
    reader = gguf.GGUFReader(dst, "r+")
    tokens = reader.fields["tokenizer.ggml.tokens"]
    for index in tokens.data:
        part = tokens.parts[index]
        if not bytes(part).startswith(b"<"):
            part[:] = np.frombuffer(bytes(part).upper(), dtype=part.dtype)
    reader.data.flush()
    del reader
    return dst


def _engine(model: Path, **options: object) -> LlamaCppEngine:
    engine = LlamaCppEngine()
    engine.load(LoadOptions(model, n_ctx=N_CTX, n_threads=1, prompt_cache_mb=0, **options))  # type: ignore[arg-type]
    return engine


def _turn(engine: LlamaCppEngine, messages: list[Message], params: SamplingParams = GREEDY) -> tuple[str, Done]:
    return collect(engine.stream(messages, params))


@pytest.mark.parametrize("which", ["identical", "other seed"])
def test_a_draft_model_gives_the_same_output_at_temperature_0(tiny_model: Path, other_seed: Path, which: str) -> None:
    plain = _engine(tiny_model)
    spec = _engine(tiny_model, draft_model=tiny_model if which == "identical" else other_seed)
    drafted = accepted = 0
    try:
        history: list[Message] = []
        for messages, params in ((A1, GREEDY), (B1, PLAIN_GREEDY), (LONG, PLAIN_GREEDY)):  # LONG: > a batch (512)
            expected, ref = _turn(plain, messages, params)
            text, done = _turn(spec, messages, params)
            assert text == expected
            assert done.stats.generated_tokens == ref.stats.generated_tokens
            field = done.receipt["speculation"]
            assert field["method"] == "draft model" and 0 <= field["accepted"] <= field["drafted"]
            assert "speculation" not in ref.receipt
            if params is PLAIN_GREEDY:  # the draft drafts the argmax; a repeat penalty makes the model pick otherwise
                drafted, accepted = drafted + field["drafted"], accepted + field["accepted"]
            history = [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": "yes no"}]
        assert _turn(spec, history)[0] == _turn(plain, history)[0]  # a second turn: the draft reuses its prefix
    finally:
        plain.close()
        spec.close()
    assert drafted > 0
    if which == "identical":  # the same weights draft what the model picks (a float tie may flip now and then)
        assert accepted >= 0.8 * drafted


def test_a_draft_model_with_another_vocabulary_is_refused(tiny_model: Path, other_vocab: Path) -> None:
    engine = LlamaCppEngine()
    with pytest.raises(ModelLoadError, match="vocabularies differ") as refused:
        engine.load(LoadOptions(tiny_model, n_ctx=N_CTX, n_threads=1, prompt_cache_mb=0, draft_model=other_vocab))
    assert str(refused.value).count(". ") == 0 and "draft model of the same family" in str(refused.value)
    assert engine.info is None
    engine.load(LoadOptions(tiny_model, n_ctx=N_CTX, n_threads=1, prompt_cache_mb=0))  # nothing was left behind
    engine.close()


def test_the_windows_draft_setting_never_blocks_a_model_of_another_family(tiny_model: Path, other_vocab: Path) -> None:
    """The window's one draft-model setting applies to every model loaded: one it cannot serve loads without it."""
    engine = LlamaCppEngine()
    options = LoadOptions(tiny_model, n_ctx=N_CTX, n_threads=1, prompt_cache_mb=0, draft_model=other_vocab)
    info = engine.load(replace(options, draft_required=False))
    assert "vocabularies differ" in info.draft_note and info.draft_note.startswith("Loaded without the draft model")
    events = list(engine.stream([{"role": "user", "content": "Hello"}], SamplingParams(max_tokens=8, seed=1)))
    done = events[-1]
    assert isinstance(done, Done) and done.stats.generated_tokens > 0
    assert not done.receipt.get("speculation")  # nothing drafted
    engine.close()


def test_prompt_lookup_and_a_draft_model_together_are_refused(tiny_model: Path) -> None:
    with pytest.raises(ModelLoadError, match="choose one"):
        LlamaCppEngine().load(LoadOptions(tiny_model, prompt_lookup=True, draft_model=tiny_model))


def test_drafting_is_switched_off_for_a_conversation_where_it_loses(tiny_model: Path, other_seed: Path) -> None:
    params = SamplingParams(max_tokens=96, seed=1, temperature=0.0)
    plain = _engine(tiny_model)
    spec = _engine(tiny_model, draft_model=other_seed)
    try:
        turns: list[dict] = []
        messages = A1
        for _ in range(4):
            text, done = _turn(spec, messages, params)
            assert text == _turn(plain, messages, params)[0]
            turns.append(done.receipt["speculation"])
            messages = [*messages, {"role": "assistant", "content": text}, {"role": "user", "content": "more"}]
            if "off" in turns[-1]:
                break
        total = sum(t["drafted"] for t in turns), sum(t["accepted"] for t in turns)
        assert total[1] < draft.BREAK_EVEN * total[0], f"the other-seed draft was accepted too often: {total}"
        assert "during this reply" in turns[-1]["off"] and "break-even" in turns[-1]["off"]
        text, done = _turn(spec, messages, params)  # the same conversation, later: no drafting
        later = done.receipt["speculation"]
        assert later["drafted"] == 0 and "earlier" in later["off"]
        assert text == _turn(plain, messages, params)[0]
        other = _turn(spec, B1, params)[1].receipt["speculation"]  # another conversation drafts again (its own tally)
        assert other["drafted"] > 0 and "earlier" not in other.get("off", "")
    finally:
        plain.close()
        spec.close()


def test_the_catalog_pairs_families_with_a_draft_that_counts_in_the_fit() -> None:
    from llamadesk.core.catalog import load_catalog
    from llamadesk.core.fit import RAM_RESERVE, Verdict

    cat = load_catalog()
    for family, size, drafted_by in (("qwen-2.5", "7b", "0.5b"), ("qwen-2.5", "32b", "0.5b"),
                                     ("llama-3", "8b", "1b"), ("smollm2", "1.7b", "135m")):  # fmt: skip
        fam = cat.family(family)
        pair = fam.draft_of(fam.size(size))
        assert pair is not None and pair[0].id == drafted_by and pair[1].name == "Q8_0"
        assert abs(pair[0].shape.n_vocab - fam.size(size).shape.n_vocab) <= draft.VOCAB_SLACK
    assert cat.family("qwen-2.5").draft_of(cat.family("qwen-2.5").size("0.5b")) is None
    fam = cat.family("llama-3")
    size, pair = fam.size("8b"), fam.draft_of(fam.size("8b"))
    alone = {q.name: e for q, e in size.fits(8192, ram_free=64 * 10**9)}["Q4_K_M"]
    both = {q.name: e for q, e in size.fits(8192, ram_free=64 * 10**9, draft=pair)}["Q4_K_M"]
    assert both.draft_bytes > pair[1].size_bytes and both.total_bytes == alone.total_bytes + both.draft_bytes
    assert both.ram_needed == alone.ram_needed + both.draft_bytes
    just_enough = alone.ram_needed + RAM_RESERVE + both.draft_bytes // 2  # enough for the model, not for both
    verdicts = [
        {q.name: e for q, e in size.fits(8192, ram_free=ram, draft=d)}["Q4_K_M"].verdict
        for ram, d in ((just_enough, None), (just_enough, pair))
    ]
    assert verdicts[0] is not Verdict.TOO_LARGE and verdicts[1] is Verdict.TOO_LARGE


def test_a_catalog_draft_that_is_not_a_smaller_model_of_the_family_is_refused(tmp_path: Path) -> None:
    import json

    from llamadesk.core.catalog import CatalogError, catalog_path, load_catalog

    data = json.loads(catalog_path().read_text(encoding="utf-8"))
    sizes = next(f for f in data["families"] if f["id"] == "llama-3")["sizes"]
    for broken in ({"size": "9000b", "quantization": "Q8_0"}, {"size": "70b", "quantization": "Q4_K_M"}):
        next(s for s in sizes if s["id"] == "8b")["draft"] = broken
        path = tmp_path / f"catalog-{broken['size']}.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        with pytest.raises(CatalogError):
            load_catalog(path)


def test_prefill_reads_the_prompt_into_the_draft_too_and_the_reply_is_the_same(tiny_model: Path) -> None:
    import threading

    plain = _engine(tiny_model)
    spec = _engine(tiny_model, draft_model=tiny_model)
    try:
        expected = _turn(plain, B1, PLAIN_GREEDY)[0]
        stop = threading.Event()
        stop.set()
        spec.prefill(B1, stop)  # stopped before it starts: neither model reads anything
        assert spec._llama.draft_model.llama.n_tokens == 0
        assert spec.prefill(B1) > 0
        n_prompt = spec.count_tokens(B1)
        assert spec._llama.draft_model.llama.n_tokens == n_prompt  # the draft read the prompt before the reply
        text, done = _turn(spec, B1, PLAIN_GREEDY)
        assert text == expected and done.receipt["speculation"]["accepted"] > 0
    finally:
        plain.close()
        spec.close()


def test_with_sampling_each_token_is_still_the_models_own_draw(tiny_model: Path) -> None:
    """Llama.generate samples every position once from the main model's distribution and keeps a drafted token
    only where it equals that draw: at a fixed seed the reply is the very one sampled without a draft."""
    plain = _engine(tiny_model)
    spec = _engine(tiny_model, draft_model=tiny_model)
    try:
        for seed, messages in enumerate((A1, B1, LONG)):
            params = SamplingParams(max_tokens=48, seed=seed, temperature=0.9)
            text, done = _turn(spec, messages, params)
            assert text == _turn(plain, messages, params)[0]
            assert done.receipt["speculation"]["drafted"] > 0
    finally:
        plain.close()
        spec.close()

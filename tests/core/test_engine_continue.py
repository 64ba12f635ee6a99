"""Continue (the last reply left open), raw-text completion and the receipt's seeds, through real llama.cpp."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamadesk.core.engines.api import Done, GenerationMode, LoadOptions
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.errors import GenerationError
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.templates import BUILTIN_TEMPLATES, CONTINUE_SENTINEL, ChosenTemplate, TemplateRenderer
from tests.core.conftest import collect

HELLO = [{"role": "user", "content": "hello model"}]
GREEDY = SamplingParams(temperature=0.0, repeat_penalty=1.0, max_tokens=8, seed=0)


def run(engine: LlamaCppEngine, messages, params: SamplingParams, **options) -> tuple[str, Done]:
    return collect(engine.stream(messages, params, **options))


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_every_builtin_template_leaves_the_reply_open(name: str) -> None:
    t = BUILTIN_TEMPLATES[name]
    renderer = TemplateRenderer(ChosenTemplate(t.name, "user", t.source, t.stop), "<s>", "</s>")
    convo = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    prompt = renderer.render_open([*convo, {"role": "assistant", "content": "Half a sent"}])
    assert prompt.endswith("Half a sent") and CONTINUE_SENTINEL not in prompt
    closed = renderer.render([*convo, {"role": "assistant", "content": "Half a sent"}], add_generation_prompt=False)
    assert closed != prompt and closed.startswith(prompt), "only the template's end of turn is cut"


def test_continue_prompt_ends_with_the_partial_reply_and_no_end_of_turn(engine: LlamaCppEngine) -> None:
    first, done = run(engine, HELLO, GREEDY)
    assert first and done.receipt["mode"] == "chat"
    convo = [*HELLO, {"role": "assistant", "content": first}]
    assert engine._llama is not None
    prompt = engine._prompt_tokens(convo, GenerationMode.CONTINUE)
    assert engine._renderer is not None
    assert engine._renderer.render_open(convo).endswith("<|im_start|>assistant\n" + first)
    start, end = (engine._llama.tokenize(t, add_bos=False, special=True)[0] for t in (b"<|im_start|>", b"<|im_end|>"))
    last_turn = prompt[len(prompt) - prompt[::-1].index(start) :]
    assert end not in last_turn and len(last_turn) > 2  # the reply's turn is open: no end-of-turn token after it
    assert len(engine._prompt_tokens(convo, GenerationMode.CHAT)) > len(prompt)  # chat closes it and opens a new one
    _more, cont = run(engine, convo, GREEDY, mode="continue")
    assert cont.receipt["mode"] == "continue" and cont.stats.prompt_tokens == len(prompt)


def test_continue_needs_a_reply_last(engine: LlamaCppEngine) -> None:
    with pytest.raises(Exception, match="Only a reply can be continued"):
        run(engine, HELLO, GREEDY, mode=GenerationMode.CONTINUE)


def test_completion_continues_raw_text_with_the_models_bos(tiny_model_no_template: Path) -> None:
    eng = LlamaCppEngine()
    try:
        eng.load(LoadOptions(tiny_model_no_template, n_ctx=256, n_threads=1))
        assert eng._llama is not None
        doc = [{"role": "user", "content": "Once upon a time <|im_start|>"}]
        tokens = eng._prompt_tokens(doc, GenerationMode.COMPLETION)
        assert tokens[0] == eng._llama.token_bos()
        assert eng._llama.tokenize(b"<|im_start|>", add_bos=False, special=True)[0] not in tokens, (
            "special-token text in a document stays text"
        )
        _text, done = run(eng, doc, GREEDY, mode="completion")
        assert done.receipt["mode"] == "completion" and done.stats.prompt_tokens == len(tokens)
        assert done.stats.generated_tokens > 0
        with pytest.raises(GenerationError, match="no text"):
            nobos = LlamaCppEngine()
            try:
                nobos.load(LoadOptions(tiny_model_no_template, n_ctx=256, n_threads=1))
                nobos._llama.tokenize = lambda *a, **k: []  # type: ignore[union-attr]
                run(nobos, [{"role": "user", "content": ""}], GREEDY, mode="completion")
            finally:
                nobos.close()
    finally:
        eng.close()


def test_receipt_tells_a_fixed_seed_from_a_random_one(engine: LlamaCppEngine) -> None:
    _, fixed = run(engine, HELLO, SamplingParams(max_tokens=3, seed=42))
    assert fixed.receipt["sampling"]["seed"] == 42 and fixed.receipt["seed"] == 42
    _, rand = run(engine, HELLO, SamplingParams(max_tokens=3, seed=None))
    assert rand.receipt["sampling"]["seed"] is None
    assert isinstance(rand.receipt["seed"], int) and rand.receipt["seed"] == rand.stats.seed
    assert engine.capabilities()["modes"] == ["chat", "continue", "completion"]


@pytest.mark.starter
def test_continuing_a_cut_reply_equals_one_longer_reply(starter_model: Path) -> None:
    eng = LlamaCppEngine()
    try:
        eng.load(LoadOptions(starter_model, n_ctx=1024, n_threads=1))
        ask = [{"role": "user", "content": "Write one sentence about the sea."}]
        params = SamplingParams(temperature=0.0, repeat_penalty=1.0, max_tokens=12, seed=0)
        part, first = run(eng, ask, params)
        assert first.stats.finish_reason.value == "length"
        rest, _ = run(eng, [*ask, {"role": "assistant", "content": part}], params, mode="continue")
        whole, _ = run(eng, ask, params.replace(max_tokens=24))
    finally:
        eng.close()
    assert part + rest == whole, (part, rest, whole)

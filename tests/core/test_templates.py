"""Chat templates: built-ins, the choice by architecture, and hostile templates stopped in time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core.engines.api import Done, LoadOptions
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.errors import TemplateError
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.templates import BUILTIN_TEMPLATES, ChosenTemplate, TemplateRenderer, choose_template

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Bye"},
]


def render(source: str, messages=CHAT, seconds: float = 2.0) -> str:
    return TemplateRenderer(ChosenTemplate("custom", "user", source, ()), "<s>", "</s>", seconds=seconds).render(
        messages
    )


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_builtins_keep_every_turn_and_the_system_prompt(name: str) -> None:
    t = BUILTIN_TEMPLATES[name]
    prompt = TemplateRenderer(ChosenTemplate(name, "user", t.source, t.stop), "<s>", "</s>").render(CHAT)
    for text in ("Be brief.", "Hi", "Hello.", "Bye"):
        assert text in prompt
    assert prompt.index("Be brief.") < prompt.index("Hi") < prompt.index("Hello.") < prompt.index("Bye")


def test_chatml_is_exact() -> None:
    t = BUILTIN_TEMPLATES["chatml"]
    prompt = TemplateRenderer(ChosenTemplate("chatml", "user", t.source, t.stop), "", "").render(CHAT[:2])
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    ("architecture", "tokens", "expected"),
    [
        ("gemma3", set(), "gemma"),
        ("qwen2", set(), "chatml"),
        ("phi3", set(), "phi-3"),
        ("llama", {"<|start_header_id|>"}, "llama-3"),
        ("llama", {"[INST]"}, "mistral-instruct"),
        ("llama", {"<|im_start|>"}, "chatml"),
        ("llama", set(), "llama-2"),
        ("brand-new-arch", set(), "chatml"),
    ],
)
def test_choice_by_architecture_when_the_gguf_has_none(architecture: str, tokens: set[str], expected: str) -> None:
    chosen = choose_template(None, architecture, tokens.__contains__)
    assert (chosen.name, chosen.source) == (expected, "architecture")


def test_gguf_template_wins_and_the_user_overrides_it() -> None:
    assert choose_template("{{ x }}", "llama", lambda _: False).name == "gguf"
    assert choose_template("{{ x }}", "llama", lambda _: False, "zephyr").source == "user"
    with pytest.raises(TemplateError, match="Unknown chat template"):
        choose_template(None, "llama", lambda _: False, "nonsense")


@pytest.mark.parametrize(
    ("source", "phrase"),
    [
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
        ("{{ cycler.__init__.__globals__ }}", "unsafe"),
        ("{{ 'a' * 10**10 }}", "huge"),
        ("{{ 9 ** 99999999 }}", "huge number"),
        ("{% set ns = namespace(s='x') %}{% for i in range(99999) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "huge"),
        ("{{ raise_exception('system role not supported') }}", "refused"),
        ("{% for m in messages %}", "not valid"),
        ("{{ messages[99]['content'] }}", "failed"),
    ],
)
def test_hostile_templates_fail_with_a_sentence(source: str, phrase: str) -> None:
    with pytest.raises(TemplateError, match=phrase) as err:
        render(source)
    assert "\n" not in str(err.value)


def test_endless_template_is_stopped_within_its_time_limit() -> None:
    forever = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(TemplateError, match="took longer than"):
        render(forever, seconds=0.3)
    assert time.monotonic() - started < 3.0


def test_a_hostile_gguf_template_can_be_replaced_by_a_builtin(tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "hostile.gguf", chat_template="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    eng = LlamaCppEngine()
    try:
        eng.load(LoadOptions(model, n_ctx=256, n_threads=1))
        with pytest.raises(TemplateError, match="Choose a built-in template"):
            list(eng.stream([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=2)))
        info = eng.load(LoadOptions(model, n_ctx=256, n_threads=1, chat_template="chatml"))
        assert info.template_name == "chatml"
        events = list(eng.stream([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=2, seed=1)))
        assert isinstance(events[-1], Done)
    finally:
        eng.close()

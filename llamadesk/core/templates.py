"""Chat templates: the GGUF's own, else a built-in chosen by architecture, else the user's choice."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from llamadesk.core.errors import TemplateError

# Built-in templates, in the Jinja dialect of Hugging Face chat templates; rendered in Jinja's sandbox.
# Kept here rather than using llama_cpp's format_* functions because some of those drop the system
# prompt (gemma) or are missing (phi-3), and one rendering path keeps receipts and overrides uniform.
_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
_GEMMA = (  # Gemma has no system role: the system prompt goes before the first user turn.
    "{{ bos_token }}{% set sys = namespace(text='') %}"
    "{% for m in messages %}{% if m['role'] == 'system' %}{% set sys.text = m['content'] + '\n\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{% if m['role'] == 'user' %}{{ sys.text }}{% set sys.text = '' %}{% endif %}"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_MISTRAL = (
    "{{ bos_token }}{% set sys = namespace(text='') %}"
    "{% for m in messages %}{% if m['role'] == 'system' %}{% set sys.text = m['content'] + '\n\n' %}"
    "{% elif m['role'] == 'user' %}[INST] {{ sys.text }}{{ m['content'] }} [/INST]{% set sys.text = '' %}"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
_PHI3 = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
_ZEPHYR = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
_LLAMA2 = (
    "{% set sys = namespace(text='') %}"
    "{% for m in messages %}{% if m['role'] == 'system' %}{% set sys.text = '<<SYS>>\n' + m['content'] + "
    "'\n<</SYS>>\n\n' %}{% elif m['role'] == 'user' %}{{ bos_token }}[INST] {{ sys.text }}{{ m['content'] | trim }}"
    " [/INST]{% set sys.text = '' %}{% else %} {{ m['content'] | trim }} {{ eos_token }}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class BuiltinTemplate:
    name: str
    source: str
    stop: tuple[str, ...]  # text that ends a turn, for models whose vocab does not mark it end-of-generation
    marker: str | None = None  # a special token whose presence in the vocab suggests this format


BUILTIN_TEMPLATES: dict[str, BuiltinTemplate] = {
    t.name: t
    for t in (
        BuiltinTemplate("chatml", _CHATML, ("<|im_end|>",), "<|im_start|>"),
        BuiltinTemplate("llama-3", _LLAMA3, ("<|eot_id|>",), "<|start_header_id|>"),
        BuiltinTemplate("gemma", _GEMMA, ("<end_of_turn>",), "<start_of_turn>"),
        BuiltinTemplate("mistral-instruct", _MISTRAL, ("</s>",), "[INST]"),
        BuiltinTemplate("phi-3", _PHI3, ("<|end|>",), "<|assistant|>"),
        BuiltinTemplate("zephyr", _ZEPHYR, ("</s>",)),
        BuiltinTemplate("llama-2", _LLAMA2, ("</s>",)),
    )
}

GGUF_TEMPLATE = "gguf"  # the name under which the file's own template appears in receipts and overrides

# general.architecture → the built-in most models of that architecture were tuned with.
_BY_ARCHITECTURE = {
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma",
    "qwen": "chatml", "qwen2": "chatml", "qwen2moe": "chatml", "qwen3": "chatml", "qwen3moe": "chatml",
    "phi3": "phi-3", "phi2": "chatml", "mistral3": "mistral-instruct", "stablelm": "zephyr",
    "starcoder2": "chatml", "olmo": "chatml", "olmo2": "chatml", "internlm2": "chatml", "smollm3": "chatml",
}  # fmt: skip


@dataclass(frozen=True)
class ChosenTemplate:
    name: str  # GGUF_TEMPLATE or a BUILTIN_TEMPLATES key
    source: str  # "gguf", "architecture" or "user"
    jinja: str
    stop: tuple[str, ...]


def choose_template(
    gguf_template: str | None,
    architecture: str,
    has_token: Callable[[str], bool],
    override: str | None = None,
) -> ChosenTemplate:
    """Picks the template: the user's override, else the GGUF's own, else a built-in by architecture.

    `has_token(text)` says whether the model's vocabulary has `text` as one special token; it separates
    llama-architecture families (Llama 3, Mistral, ChatML fine-tunes) that share general.architecture.
    """
    if override and override != GGUF_TEMPLATE:
        if override not in BUILTIN_TEMPLATES:
            names = ", ".join(BUILTIN_TEMPLATES)
            raise TemplateError(f"Unknown chat template '{override}'; choose one of: {names}.")
        t = BUILTIN_TEMPLATES[override]
        return ChosenTemplate(t.name, "user", t.source, t.stop)
    if gguf_template:
        return ChosenTemplate(GGUF_TEMPLATE, "gguf" if not override else "user", gguf_template, ())
    name = _BY_ARCHITECTURE.get(architecture)
    if name is None:
        # Same architecture, different families: ask the vocabulary which markers it knows.
        name = next(
            (t.name for t in BUILTIN_TEMPLATES.values() if t.marker and has_token(t.marker)),
            "llama-2" if architecture == "llama" else "chatml",
        )
    t = BUILTIN_TEMPLATES[name]
    return ChosenTemplate(t.name, "architecture", t.source, t.stop)


class TemplateRenderer:
    """Renders a conversation with one template in Jinja's immutable sandbox."""

    def __init__(self, template: ChosenTemplate, bos_token: str, eos_token: str) -> None:
        # Imported here so that importing core.templates stays cheap for the CLI's --help.
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.template = template
        try:
            self._formatter = Jinja2ChatFormatter(template.jinja, eos_token=eos_token, bos_token=bos_token)
        except Exception as exc:  # jinja2.TemplateSyntaxError and friends
            raise TemplateError(
                f"The chat template '{template.name}' is not valid ({exc}); choose a built-in template instead."
            ) from exc
        self.stop = tuple(s for s in (*template.stop, eos_token) if s)

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        try:
            return self._formatter(messages=[dict(m) for m in messages]).prompt
        except Exception as exc:  # a template may raise_exception(), fail in the sandbox, or hit a bug
            raise TemplateError(
                f"The chat template '{self.template.name}' failed: {exc}. Choose a built-in template instead."
            ) from exc

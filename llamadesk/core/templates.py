"""Chat templates: the GGUF's own, else a built-in chosen by architecture, else the user's choice."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

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


def prefers_completion(has_chat_template: bool, template_source: str) -> bool:
    """Whether a model is best used as a base model (notebook mode) rather than a chat: its GGUF has no chat
    template and the user chose none, so the template in use is only a guess from the architecture."""
    return not has_chat_template and template_source == "architecture"


CONTINUE_SENTINEL = "\ue000llamadesk-continue\ue000"  # private-use characters: no template produces them
_PART_OPEN, _PART_CLOSE = "\ue001llamadesk-part-", "\ue001"  # where a message's content goes (render_parts)
_PART = re.compile(re.escape(_PART_OPEN) + r"(\d+)" + re.escape(_PART_CLOSE))
RENDER_SECONDS = 2.0  # a chat template that runs longer is stuck or hostile
MAX_PROMPT_CHARS = 16 * 1024 * 1024  # far beyond any context window; stops templates that build huge strings


class _RenderLimit(Exception):
    """Raised inside a template's frames when it runs past its deadline."""


def _result_length(operator: str, left: Any, right: Any) -> int:
    """The length a string/list operation would produce, computed before doing it (0 for other operations)."""
    sized = (str, list)
    if operator == "*" and isinstance(left, sized) and isinstance(right, int):
        return len(left) * right
    if operator == "*" and isinstance(right, sized) and isinstance(left, int):
        return len(right) * left
    if operator == "+" and isinstance(left, sized) and isinstance(right, sized):
        return len(left) + len(right)
    return 0


def _limited_environment() -> Any:
    """Jinja's immutable sandbox, configured like llama-cpp-python's Jinja2ChatFormatter (same extensions and
    filters, so templates render identically), plus a cap on string/number operators that can explode."""
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    class LimitedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int) and abs(right) > 64:
                raise TemplateError("The chat template computes a huge number; choose a built-in template instead.")
            if _result_length(operator, left, right) > MAX_PROMPT_CHARS:
                raise TemplateError("The chat template builds a huge string; choose a built-in template instead.")
            return super().call_binop(context, operator, left, right)

    env = LimitedSandbox(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[Jinja2ChatFormatter.IgnoreGenerationTags, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = Jinja2ChatFormatter.tojson
    env.globals["strftime_now"] = Jinja2ChatFormatter.strftime_now
    return env


class TemplateRenderer:
    """Renders a conversation with one template in Jinja's immutable sandbox, within a time and size limit.

    The sandbox blocks access to Python internals; the deadline is enforced by a trace function on the
    template's own frames (Jinja compiles templates to Python code named "<template>"), which is the only
    way to stop a loop that produces no output without a subprocess per message."""

    def __init__(self, template: ChosenTemplate, bos_token: str, eos_token: str, *, seconds: float = RENDER_SECONDS):
        self.template = template
        self.bos_token, self.eos_token = bos_token, eos_token
        self.seconds = seconds
        try:
            self._compiled = _limited_environment().from_string(template.jinja)
        except Exception as exc:  # jinja2.TemplateSyntaxError and friends
            raise TemplateError(
                f"The chat template '{template.name}' is not valid ({exc}); choose a built-in template instead."
            ) from exc
        self.stop = tuple(s for s in (*template.stop, eos_token) if s)

    @property
    def supports_tools(self) -> bool:
        """Whether the template itself offers tools to the model (it reads a `tools` variable); if not, `render`
        describes them in the system prompt the Hermes way (core/tools/prompt.py)."""
        return "tools" in self.template.jinja

    def render_open(
        self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> str:
        """The conversation with its last message, an unfinished reply, left open for the model to extend.

        Works for any template: the reply is rendered with a sentinel as its content, without a generation prompt,
        and the text is cut at the sentinel (dropping the template's end of turn) and the reply put back. A template
        that drops or alters the reply gets the fallback: the messages before it, a new reply turn, the text."""
        return self._render_open(self._with_tools(messages, tools), tools)

    def _render_open(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None) -> str:
        if not messages or messages[-1].get("role") != "assistant":
            raise TemplateError("Only a reply can be continued; the last message is not one.")
        *head, last = messages
        marked = self._render([*head, {**last, "content": CONTINUE_SENTINEL}], False, tools)
        cut = marked.rfind(CONTINUE_SENTINEL)
        if cut < 0:
            return self._render(head, True, tools) + last.get("content", "")
        return marked[:cut] + last.get("content", "")

    def render_parts(
        self, messages: Sequence[Mapping[str, Any]], *, open_reply: bool = False,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[tuple[str, bool]]:  # fmt: skip
        """The prompt as pieces, (text, is a message's text): rendered with each message's content replaced by a
        marker, then the contents put back where the markers are. Lets the engine parse special tokens in the
        template's text only (core/engines/control_text.py). `open_reply`: as render_open."""
        messages = self._with_tools(messages, tools)
        marked = [{**m, "content": f"{_PART_OPEN}{i}{_PART_CLOSE}"} for i, m in enumerate(messages)]
        prompt = self._render_open(marked, tools) if open_reply else self._render(marked, True, tools)
        parts: list[tuple[str, bool]] = []
        end = 0
        for match in _PART.finditer(prompt):
            parts.append((prompt[end : match.start()], False))
            parts.append((messages[int(match.group(1))].get("content", ""), True))
            end = match.end()
        parts.append((prompt[end:], False))
        return [(text, content) for text, content in parts if text]

    def _with_tools(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
    ) -> list[Mapping[str, Any]]:
        """Messages of a turn that calls tools, as this template takes them (core/tools/prompt.py)."""
        if not tools and not any(m.get("role") == "tool" for m in messages):
            return list(messages)
        from llamadesk.core.tools.prompt import messages_for_template

        return messages_for_template(messages, tools or (), native=self.supports_tools)

    def render(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:  # fmt: skip
        """The prompt of `messages`; `tools` (OpenAI-style function definitions) are offered to the model."""
        return self._render(self._with_tools(messages, tools), add_generation_prompt, tools)

    def _render(
        self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool,
        tools: Sequence[Mapping[str, Any]] | None,
    ) -> str:  # fmt: skip
        def raise_exception(message: str) -> None:
            raise TemplateError(f"The chat template refused the conversation: {message}.")

        deadline = time.monotonic() + self.seconds

        def local_trace(frame: FrameType, event: str, arg: Any) -> Any:
            if time.monotonic() > deadline:
                raise _RenderLimit
            return local_trace

        def global_trace(frame: FrameType, event: str, arg: Any) -> Any:
            return local_trace if frame.f_code.co_filename == "<template>" else None

        previous = sys.gettrace()
        sys.settrace(global_trace)
        try:
            prompt = self._compiled.render(
                messages=[dict(m) for m in messages],
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                add_generation_prompt=add_generation_prompt,
                raise_exception=raise_exception,
                **({"tools": [dict(t) for t in tools]} if tools and self.supports_tools else {}),
            )
        except TemplateError:
            raise
        except _RenderLimit:
            raise TemplateError(
                f"The chat template '{self.template.name}' took longer than {self.seconds:g} s and was stopped; "
                "choose a built-in template instead."
            ) from None
        except Exception as exc:  # SecurityError, TypeError, UndefinedError, MemoryError, ...
            raise TemplateError(
                f"The chat template '{self.template.name}' failed: {str(exc).rstrip('.')}. "
                "Choose a built-in template instead."
            ) from exc
        finally:
            sys.settrace(previous)
        if len(prompt) > MAX_PROMPT_CHARS:
            raise TemplateError(f"The chat template '{self.template.name}' produced a prompt too large to use.")
        return str(prompt)

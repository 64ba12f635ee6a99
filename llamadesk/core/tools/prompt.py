"""A turn with tools, as a chat template takes it.

The turn keeps each step as the model wrote it: the assistant's text with its calls in the model's own format
(tool_calls.py parses them), then one message of role "tool" per result (`tool_message`). For the template:

- one that knows tools (its source reads `tools`: Qwen 2.5/3, Llama 3.1+, Mistral, gpt-oss, Hermes fine-tunes…)
  gets the calls as the OpenAI-style `tool_calls` of the assistant message, with the call text taken out of its
  content, and the results as role "tool": it writes both in the model's own format;
- one that does not (SmolLM2, many fine-tunes) gets the tools described in the system prompt the Hermes way
  (`<tools>` … `<tool_call>`), the calls left in the text as written, and the results as a user message in
  `<tool_response>`: the format most small models were tuned on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llamadesk.core.conversation.tool_calls import tool_calls

HERMES_SYSTEM = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
    'XML tags:\n<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)


def call_id(n: int) -> str:
    """The id of the n-th call of a turn: nine letters and digits (Mistral's templates insist on nine)."""
    return f"call{n:05d}"[-9:]


def tool_message(name: str, text: str, n: int) -> dict[str, str]:
    """The message that gives the model the n-th call's result (`text`, untrusted: it is a message's content)."""
    return {"role": "tool", "content": text, "name": name, "tool_call_id": call_id(n)}


def hermes_system(tools: Sequence[Mapping[str, Any]]) -> str:
    return HERMES_SYSTEM.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))


def messages_for_template(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]], *, native: bool
) -> list[Mapping[str, Any]]:
    """`messages` as the template takes them (see the module's docstring); `native`: it knows tools."""
    if native:
        return _native(messages)
    out: list[Mapping[str, Any]] = []
    if tools:
        block = hermes_system(tools)
        if messages and messages[0].get("role") == "system":
            first = messages[0]
            out.append({**first, "content": f"{first.get('content', '')}\n\n{block}".strip()})
            messages = messages[1:]
        else:
            out.append({"role": "system", "content": block})
    for m in messages:
        if m.get("role") == "tool":
            text = f"<tool_response>\n{m.get('content', '')}\n</tool_response>"
            if out and out[-1].get("role") == "user" and str(out[-1].get("content", "")).startswith("<tool_response>"):
                out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n{text}"}  # results of one step: one turn
            else:
                out.append({"role": "user", "content": text})
        else:
            out.append(m)
    return out


def _native(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    n = 0
    for k, m in enumerate(messages):
        content = m.get("content", "")
        answered = k + 1 < len(messages) and messages[k + 1].get("role") == "tool"  # earlier turns' calls stay text
        if m.get("role") != "assistant" or not answered or not isinstance(content, str) or "tool_calls" in m:
            out.append(m)
            continue
        calls = [c for c in tool_calls(content) if c.ok]
        if not calls:
            out.append(m)
            continue
        text, end = [], 0
        for c in calls:
            text.append(content[end : c.start])
            end = c.end
        text.append(content[end:])
        structured = []
        for c in calls:
            structured.append({"id": call_id(n), "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments}})  # fmt: skip
            n += 1
        out.append({**m, "content": "".join(text).strip(), "tool_calls": structured})
    return out

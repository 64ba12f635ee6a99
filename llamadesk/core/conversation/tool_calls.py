"""A reply's tool calls, parsed once here for every front end (the third part of a reply, beside its reasoning and its
text: parts.py). Each model family writes them its own way; the chat template asked for it:

- Hermes, Qwen 2.5/3 and most fine-tunes: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`, one block per call;
- gpt-oss (harmony): a commentary message addressed to a function,
  `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{…}<|call|>`;
- Mistral: `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]`.

A call is untrusted model output: its arguments are parsed as JSON and nothing else; one that cannot be read keeps
its raw text and gets one sentence in `error`, so the front end can show it (and a tool never runs on it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
MISTRAL = "[TOOL_CALLS]"
HARMONY_RECIPIENT = "to=functions."
_HERMES = re.compile(re.escape(HERMES_OPEN) + r"(.*?)(?:" + re.escape(HERMES_CLOSE) + r"|$)", re.DOTALL)
_HARMONY = re.compile(
    r"<\|channel\|>(?P<header>[^<]*?to=functions\.(?P<name>[\w.\-]+)[^<]*(?:<\|constrain\|>[^<]*)?)<\|message\|>"
    r"(?P<body>.*?)(?:<\|call\|>|<\|end\|>|<\|start\|>|$)",
    re.DOTALL,
)
_NAME = re.compile(r"[\w.\-]{1,128}")


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for: the tool's name and its arguments, where it is in the reply's text, and why it
    cannot be run when it cannot ("" when it can)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    start: int = 0
    end: int = 0
    raw: str = ""  # the call as written
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def may_have_tool_calls(content: str) -> bool:
    """False when the reply surely asks for no tool (C-speed finds; most replies ask for none)."""
    return HERMES_OPEN in content or HARMONY_RECIPIENT in content or MISTRAL in content


def tool_calls(content: str) -> list[ToolCall]:
    """The calls in a reply, in the order written."""
    if not may_have_tool_calls(content):
        return []
    calls = [_hermes(m) for m in _HERMES.finditer(content)]
    calls += [_harmony(m) for m in _HARMONY.finditer(content)]
    if (at := content.find(MISTRAL)) >= 0:
        calls += _mistral(content, at)
    return sorted(calls, key=lambda c: c.start)


def _hermes(match: re.Match[str]) -> ToolCall:
    raw, where = match.group(1).strip(), (match.start(), match.end())
    if not match.group(0).endswith(HERMES_CLOSE):
        return ToolCall("", {}, *where, raw=raw, error="The tool call is not finished.")
    value, error = _json(raw)
    if error:
        return ToolCall("", {}, *where, raw=raw, error=error)
    return _call(value, where, raw)


def _harmony(match: re.Match[str]) -> ToolCall:
    raw, where = match.group("body").strip(), (match.start(), match.end())
    name = match.group("name")
    arguments, error = _json(raw) if raw else ({}, "")
    if error:
        return ToolCall(name, {}, *where, raw=raw, error=error)
    if not isinstance(arguments, dict):
        return ToolCall(name, {}, *where, raw=raw, error="The tool call's arguments are not a JSON object.")
    return ToolCall(name, arguments, *where, raw=raw)


def _mistral(content: str, at: int) -> list[ToolCall]:
    begin = at + len(MISTRAL)
    begin += len(content[begin:]) - len(content[begin:].lstrip())
    try:
        value, end = json.JSONDecoder().raw_decode(content, begin)
    except ValueError:
        raw = content[begin:].strip()
        return [ToolCall("", {}, at, len(content), raw=raw, error="The tool calls are not valid JSON.")]
    items = value if isinstance(value, list) else [value]
    return [_call(item, (at, end), json.dumps(item, ensure_ascii=False)) for item in items]


def _call(value: Any, where: tuple[int, int], raw: str) -> ToolCall:
    if not isinstance(value, dict):
        return ToolCall("", {}, *where, raw=raw, error="The tool call is not a JSON object.")
    name = value.get("name")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        arguments, error = _json(arguments)
        if error:
            return ToolCall(str(name or ""), {}, *where, raw=raw, error=error)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return ToolCall("", {}, *where, raw=raw, error="The tool call names no tool.")
    if not isinstance(arguments, dict):
        return ToolCall(name, {}, *where, raw=raw, error="The tool call's arguments are not a JSON object.")
    return ToolCall(name, arguments, *where, raw=raw)


def _json(text: str) -> tuple[Any, str]:
    try:
        return json.loads(text), ""
    except json.JSONDecodeError as exc:
        return None, f"The tool call is not valid JSON ({exc.msg} at character {exc.pos})."

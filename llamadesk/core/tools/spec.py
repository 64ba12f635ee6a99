"""A tool as the model sees it (name, description, JSON-schema parameters) and as the turn runs it, and the ToolBox
of the tools a conversation has switched on.

A tool's result is untrusted text, like a reply: it is capped in size, it goes back to the model as a message's
content (so the engine never parses special-token text in it: core/engines/control_text.py), and front ends render
it inert. A tool that fails, or a call that cannot run, gives one sentence as its result: the model reads it and
the turn goes on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llamadesk.core.conversation.tool_calls import ToolCall
from llamadesk.core.errors import LlamaDeskError

MAX_RESULT_CHARS = 16_000  # ~4,000 tokens: a result larger than this is cut (a note says so to the model)
MAX_DESCRIPTION_CHARS = 2_000  # a tool's description in the prompt (a server's can be any length)
MAX_SCHEMA_CHARS = 8_000  # a tool's parameters schema as JSON in the prompt
TRUNCATED_NOTE = "\n[… the result was cut at {n} characters]"


class ToolError(LlamaDeskError):
    """A tool could not do what was asked; the sentence goes back to the model as the result."""


@dataclass(frozen=True)
class Tool:
    """One tool: what the model is told (name, description, parameters as a JSON schema object) and how it runs
    (`run(arguments) -> text`, raising ToolError with one sentence). `source` says where it comes from: "builtin"
    or "mcp:SERVER"."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[..., str] = field(compare=False, repr=False)
    source: str = "builtin"
    takes_cancel: bool = False  # run(arguments, cancel): a call that can wait long (MCP) gives up when Stop is set

    def definition(self) -> dict[str, Any]:
        """The OpenAI-style function definition chat templates take as `tools`."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolResult:
    """What a call gave: the text sent back to the model, and how it went. `status`: "ok", "error" (the tool failed
    or the call could not run: the text says why), "denied" (the user said no) or "skipped" (the step limit)."""

    name: str
    arguments: dict[str, Any]
    text: str
    status: str = "ok"
    seconds: float = 0.0
    truncated: bool = False

    def record(self) -> dict[str, Any]:
        """The receipt's record of the call (history and export keep it)."""
        out: dict[str, Any] = {"name": self.name, "arguments": self.arguments, "result": self.text,
                               "status": self.status, "seconds": round(self.seconds, 3)}  # fmt: skip
        if self.truncated:
            out["truncated"] = True
        return out


def capped(text: str, limit: int = MAX_RESULT_CHARS) -> tuple[str, bool]:
    """The text within `limit` characters (with a note when cut), and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit] + TRUNCATED_NOTE.format(n=limit), True


def clean_schema(schema: Any) -> dict[str, Any]:
    """A parameters schema fit for the prompt: an object schema, and not huge (a server's can be anything)."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return {"type": "object", "properties": {}}
    try:
        text = json.dumps(schema, ensure_ascii=False)
    except (TypeError, ValueError):
        return {"type": "object", "properties": {}}
    if len(text) > MAX_SCHEMA_CHARS:
        return {"type": "object", "properties": {}}
    return dict(schema)


def without_texts(value: Any, texts: Iterable[str]) -> Any:
    """`value` (a JSON-like structure) with every occurrence of `texts` removed from its strings: a tool's
    description or schema goes into the template's own text, where special tokens are parsed, so a server's
    description holding "<|im_end|>" must not reach it as written."""
    found = [t for t in texts if t]
    if not found:
        return value

    def clean(v: Any) -> Any:
        if isinstance(v, str):
            for t in found:
                v = v.replace(t, "")
            return v
        if isinstance(v, dict):
            return {clean(k): clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return clean(value)


class ToolBox:
    """The tools switched on for a turn, by name (a later tool of the same name replaces an earlier one)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        self._tools[tool.name] = tool

    def __bool__(self) -> bool:
        return bool(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    def definitions(self) -> list[dict[str, Any]]:
        return [t.definition() for t in self._tools.values()]

    def run(self, call: ToolCall, cancel: threading.Event | None = None) -> ToolResult:
        """Runs one call (already approved) and never raises: a call that cannot run, a tool that fails or
        raises, each gives one sentence as the result. `cancel` (the reply's Stop) ends a long call early."""
        started = time.perf_counter()
        if not call.ok:
            return ToolResult(call.name, call.arguments, call.error, "error")
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            return ToolResult(call.name, call.arguments, f"There is no tool named {call.name!r} (tools: {known}).",
                              "error")  # fmt: skip
        if problem := missing_arguments(tool.parameters, call.arguments):
            return ToolResult(call.name, call.arguments, problem, "error")
        try:
            text = tool.run(dict(call.arguments), cancel) if tool.takes_cancel else tool.run(dict(call.arguments))
            status = "ok"
        except ToolError as exc:
            text, status = str(exc), "error"
        except Exception as exc:  # a tool's bug must not end the turn: the model reads one sentence
            text, status = f"The tool {call.name} failed ({type(exc).__name__}).", "error"
        text, cut = capped(text if isinstance(text, str) else str(text))
        return ToolResult(call.name, call.arguments, text, status, time.perf_counter() - started, cut)


def missing_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str:
    """One sentence when a required argument is missing ("" when none is): the model can ask again."""
    required = schema.get("required") if isinstance(schema, Mapping) else None
    if isinstance(required, list):
        missing = [str(r) for r in required if isinstance(r, str) and r not in arguments]
        if missing:
            return f"The call is missing the argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}."
    return ""

"""The OpenAI chat-completions wire format: a request body → messages and SamplingParams; replies and errors → JSON."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from llamadesk.core.conversation.tool_calls import HERMES_CLOSE, HERMES_OPEN, MISTRAL, ToolCall
from llamadesk.core.conversation.tool_calls import tool_calls as parse_tool_calls
from llamadesk.core.engines.api import FinishReason, GenerationStats, Message
from llamadesk.core.errors import InvalidSetting, StructuredOutputError
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.structured import FormatKind, ResponseFormat
from llamadesk.core.tools.prompt import call_id
from llamadesk.core.tools.spec import MAX_SCHEMA_CHARS

# OpenAI request fields → SamplingParams fields; top_k, min_p and repeat_penalty are accepted too (llama.cpp's
# server takes them), the rest of OpenAI's fields that do not change the text (user, metadata, ...) are ignored.
_SAMPLING_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "top_k": "top_k",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
MAX_STOPS = 4  # as OpenAI
MAX_TOOLS = 128  # as OpenAI
MAX_TOOLS_CHARS = 200_000  # all the tools' definitions as JSON (each one's parameters: MAX_SCHEMA_CHARS)
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # OpenAI's rule for a function's name (the parser reads these)
# Where a reply's tool-call text may begin (core/conversation/tool_calls.py); a streamed reply holds text back from
# there: "<|channel|>" is harmony's (gpt-oss) message header, which may address a function.
CALL_MARKERS = (HERMES_OPEN, MISTRAL, "<|channel|>")


class RequestError(Exception):
    """A request the server refuses; becomes an OpenAI error object with this status, type and code."""

    def __init__(self, message: str, *, status: int = 400, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.kind, self.code, self.param = status, kind, code, param

    def body(self) -> dict[str, Any]:
        return error_body(str(self), kind=self.kind, code=self.code, param=self.param)


def error_body(message: str, *, kind: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    params: SamplingParams
    stream: bool = False
    include_usage: bool = False
    stops: tuple[str, ...] = ()
    model: str = ""
    response_format: ResponseFormat | None = None  # JSON or a JSON schema (or a forced tool call); None for text
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI function definitions offered to the model (none: not offered)
    tool_choice: str = "none"  # "auto", "required", "none", or "function:NAME"
    id: str = field(default_factory=lambda: "chatcmpl-" + secrets.token_hex(12))
    created: int = field(default_factory=lambda: int(time.time()))


def _text_of(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):  # content parts: only text is understood by a text model
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(
                    f"messages[{index}] has a content part that is not text; this model reads text only.",
                    param=f"messages[{index}].content",
                )
            texts.append(part["text"])
        return "".join(texts)
    raise RequestError(f"messages[{index}].content must be a string or a list of text parts.",
                       param=f"messages[{index}].content")  # fmt: skip


def parse_messages(raw: Any) -> list[Message]:
    """The request's messages as the engine takes them. An assistant message's `tool_calls` are written into its
    content as Hermes `<tool_call>` blocks and a `tool` message keeps its result as content: core/tools/prompt.py
    then gives a template that knows tools the calls as `tool_calls` and the results as role "tool" (in its own
    format), and one that does not the Hermes text — the same path a turn of the app's own tool loop takes. The
    client's call ids are renumbered in order (call_id(n), as prompt.py numbers them: Mistral's templates insist on
    nine characters)."""
    if not isinstance(raw, list) or not raw:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects.", param="messages")
    messages: list[Message] = []
    ids: dict[str, tuple[str, str]] = {}  # the client's call id → (our id, the tool's name)
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RequestError(f"messages[{i}] must be an object with 'role' and 'content'.", param=f"messages[{i}]")
        role = _ROLES.get(str(item.get("role")))
        if role is None:
            raise RequestError(
                f"messages[{i}] has role {str(item.get('role'))[:40]!r}; LlamaDesk serves system, developer, user, "
                "assistant and tool messages.",
                param=f"messages[{i}].role",
            )
        content = _text_of(item.get("content"), i)
        if role == "assistant" and item.get("tool_calls"):
            calls = "".join(_call_text(call, i, k, ids) for k, call in enumerate(_list(item["tool_calls"], i)))
            content = (content + calls).strip()
        if role == "tool":
            client_id = item.get("tool_call_id")
            ours, name = ids.get(client_id, ("", "")) if isinstance(client_id, str) else ("", "")
            if not ours:
                raise RequestError(f"messages[{i}] answers no tool call of an earlier assistant message; give it "
                                   "the 'tool_call_id' of that call.", param=f"messages[{i}].tool_call_id")  # fmt: skip
            messages.append({"role": "tool", "content": content, "tool_call_id": ours, "name": name})
            continue
        messages.append({"role": role, "content": content})
    return messages


def _list(value: Any, i: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise RequestError(f"messages[{i}].tool_calls must be a list of calls.", param=f"messages[{i}].tool_calls")
    return value


def _call_text(call: Any, i: int, k: int, ids: dict[str, tuple[str, str]]) -> str:
    """One of an assistant message's calls as a Hermes block; its id is remembered for the tool message."""
    where = f"messages[{i}].tool_calls[{k}]"
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise RequestError(f"{where} must be {{id, type: function, function: {{name, arguments}}}}.", param=where)
    arguments: Any = function.get("arguments") or "{}"  # type: ignore[union-attr]
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            raise RequestError(f"{where}.function.arguments is not a JSON object.", param=where) from None
    if not isinstance(arguments, dict):
        raise RequestError(f"{where}.function.arguments is not a JSON object.", param=where)
    if isinstance(call.get("id"), str):
        ids[call["id"]] = (call_id(len(ids)), name)
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"\n{HERMES_OPEN}\n{body}\n{HERMES_CLOSE}"


def parse_tools(raw: Any) -> list[dict[str, Any]]:
    """OpenAI's `tools` → function definitions, each checked: a name the call parser reads, a description, and
    parameters that are a valid JSON schema of an object, not larger than the prompt takes (core/tools/spec.py)."""
    if raw is None or raw == []:
        return []
    if not isinstance(raw, list):
        raise RequestError("'tools' must be a list of {type: 'function', function: {...}} objects.", param="tools")
    if len(raw) > MAX_TOOLS:
        raise RequestError(f"LlamaDesk takes at most {MAX_TOOLS} tools in one request.", param="tools")
    try:
        size = len(json.dumps(raw, ensure_ascii=False))
    except (TypeError, ValueError, RecursionError):
        size = MAX_TOOLS_CHARS + 1
    if size > MAX_TOOLS_CHARS:
        raise RequestError(f"The tools' definitions are larger than {MAX_TOOLS_CHARS:,} characters; send fewer or "
                           "shorter ones.", param="tools")  # fmt: skip
    import jsonschema

    tools: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        function = item.get("function") if isinstance(item, dict) and item.get("type") == "function" else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(function, dict) or not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise RequestError(
                f"tools[{i}] must be {{type: 'function', function: {{name, description, parameters}}}} with a name "
                "of letters, digits, '_', '.' or '-' (at most 64).",
                param="tools",
            )
        if any(t["function"]["name"] == name for t in tools):
            raise RequestError(f"Two tools are named {name!r}; give each tool its own name.", param="tools")
        description = function.get("description") or ""
        parameters = function.get("parameters")
        parameters = {"type": "object", "properties": {}} if parameters is None else parameters
        if not isinstance(description, str) or not isinstance(parameters, dict):
            raise RequestError(f"tools[{i}] ({name}) needs a string description and an object of parameters.",
                               param="tools")  # fmt: skip
        if parameters.get("type", "object") != "object":
            raise RequestError(f"The parameters of tool {name!r} must be a JSON schema of type object.", param="tools")
        if len(json.dumps(parameters, ensure_ascii=False)) > MAX_SCHEMA_CHARS:
            raise RequestError(f"The parameters of tool {name!r} are larger than {MAX_SCHEMA_CHARS:,} characters of "
                               "JSON; simplify them.", param="tools")  # fmt: skip
        try:
            jsonschema.validators.validator_for(parameters, default=jsonschema.Draft202012Validator).check_schema(
                parameters
            )
        except jsonschema.exceptions.SchemaError as exc:
            raise RequestError(f"The parameters of tool {name!r} are not a valid JSON schema: "
                               f"{str(exc.message)[:160]}.", param="tools") from None  # fmt: skip
        except RecursionError:
            raise RequestError(f"The parameters of tool {name!r} nest too deep.", param="tools") from None
        tools.append({"type": "function",
                      "function": {"name": name, "description": description, "parameters": parameters}})  # fmt: skip
    return tools


def parse_tool_choice(raw: Any, tools: list[dict[str, Any]]) -> str:
    """OpenAI's `tool_choice` → "none", "auto", "required" or "function:NAME" (a tool of `tools`)."""
    names = [t["function"]["name"] for t in tools]
    if raw is None:
        return "auto" if tools else "none"
    if raw in ("none", "auto", "required"):
        choice = str(raw)
    elif isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        name = raw["function"].get("name")
        if name not in names:
            known = ", ".join(names) or "none"
            raise RequestError(f"tool_choice names the function {str(name)[:64]!r}, which is not one of the "
                               f"request's tools ({known[:200]}).", param="tool_choice")  # fmt: skip
        choice = f"function:{name}"
    else:
        raise RequestError("'tool_choice' must be 'none', 'auto', 'required' or {type: 'function', function: "
                           "{name}}.", param="tool_choice")  # fmt: skip
    if choice != "none" and not tools:
        raise RequestError(f"tool_choice {raw if isinstance(raw, str) else 'function'!r} needs 'tools'.",
                           param="tool_choice")  # fmt: skip
    return choice


class ToolCallFormat(ResponseFormat):
    """A reply that must be one tool call (tool_choice "required" or a named function), held to it by a grammar.

    The choice made: the call is written the Hermes/Qwen way, `<tool_call>\n{"name": …, "arguments": {…}}\n
    </tool_call>`, whatever the template — the format core/tools/prompt.py describes to a template that knows no
    tools, Qwen's and Hermes fine-tunes' own, and one tool_calls.py parses. Mistral's `[TOOL_CALLS]` and harmony's
    headers are control tokens, which a llama.cpp grammar of text does not match. The call object's grammar is the
    JSON schema {name: const NAME, arguments: that tool's parameters} (anyOf over the tools for "required") made by
    core/structured.py, so its bounds and checks apply and the arguments validate against the tool's schema; this
    class only wraps that grammar's root in the Hermes tags."""

    @classmethod
    def for_tools(cls, tools: list[dict[str, Any]]) -> ToolCallFormat:
        """StructuredOutputError (one sentence) when a tool's parameters cannot be held by a grammar."""
        calls = []
        for t in tools:
            function = t["function"]
            if "$ref" in json.dumps(function["parameters"]):  # a $ref points from the schema's root: nested here
                raise StructuredOutputError(
                    f"The parameters of tool {function['name']!r} use $ref, which a forced call cannot hold yet; "
                    "inline the definitions or use tool_choice auto."
                )
            calls.append({
                "type": "object",
                "properties": {"name": {"const": function["name"]}, "arguments": function["parameters"]},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            })  # fmt: skip
        schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
        fmt = cls(FormatKind.SCHEMA, json.dumps(schema, ensure_ascii=False), name="tool_call", strict=True)
        fmt.grammar_text()  # checks it now: a hostile schema is a 400, not a failed job
        return fmt

    def grammar_text(self) -> str | None:
        inner = super().grammar_text() or ""
        lines = [
            "tool-call-object ::= " + line.removeprefix("root ::= ") if line.startswith("root ::= ") else line
            for line in inner.split("\n")
        ]
        return "\n".join([f'root ::= "{HERMES_OPEN}\\n" tool-call-object "\\n{HERMES_CLOSE}"', *lines])

    def check_reply(self, text: str) -> str | None:
        calls = parse_tool_calls(text)
        return None if len(calls) == 1 and calls[0].ok else "The reply is not one tool call."


def parse_chat_request(body: Any, defaults: SamplingParams) -> ChatRequest:
    """The request body (parsed JSON) → ChatRequest; RequestError with a sentence for anything it cannot serve.
    Sampling fields left out keep `defaults` (the app's settings), not OpenAI's defaults."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    messages = parse_messages(body.get("messages"))
    n = body.get("n", 1)
    if n not in (1, None):
        raise RequestError("LlamaDesk returns one choice per request; leave 'n' out or set it to 1.", param="n")
    if body.get("functions") or body.get("function_call"):
        raise RequestError("'functions' is OpenAI's old form; send 'tools' and 'tool_choice' instead.",
                           param="functions")  # fmt: skip
    tools = parse_tools(body.get("tools"))
    tool_choice = parse_tool_choice(body.get("tool_choice"), tools)
    changes: dict[str, Any] = {}
    for name, target in _SAMPLING_FIELDS.items():
        if body.get(name) is not None:
            changes[target] = body[name]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        changes["max_tokens"] = max_tokens
    try:
        params = defaults.replace(**changes) if changes else defaults
    except (InvalidSetting, TypeError) as exc:
        raise RequestError(str(exc)) from exc
    stop = body.get("stop")
    stops: tuple[str, ...] = ()
    if isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= MAX_STOPS:
        stops = tuple(stop)
    elif stop is not None:
        raise RequestError(f"'stop' must be a string or a list of up to {MAX_STOPS} strings.", param="stop")
    stream_options = body.get("stream_options") or {}
    try:  # a schema is checked (and its grammar made) here, so a hostile one is a 400 before any job is queued
        response_format = ResponseFormat.from_openai(body.get("response_format"))
    except StructuredOutputError as exc:
        raise RequestError(str(exc), param="response_format") from exc
    if tool_choice in ("required",) or tool_choice.startswith("function:"):
        if not response_format.is_text:
            raise RequestError("A reply cannot be both a forced tool call and held to a response format; leave "
                               "one of tool_choice and response_format out.", param="tool_choice")  # fmt: skip
        forced = [t for t in tools if tool_choice in ("required", f"function:{t['function']['name']}")]
        try:
            response_format = ToolCallFormat.for_tools(forced)
        except StructuredOutputError as exc:
            raise RequestError(str(exc), param="tools") from exc
    return ChatRequest(
        messages=messages,
        params=params,
        stream=bool(body.get("stream", False)),
        include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
        stops=tuple(s for s in stops if s),
        model=str(body.get("model") or ""),
        response_format=None if response_format.is_text else response_format,
        tools=tuple(tools) if tool_choice != "none" else (),  # "none": the model is not offered them
        tool_choice=tool_choice,
    )


def response_call_id(request_id: str, n: int) -> str:
    """The id of the n-th call of a reply, as the client gets it (and the history's receipt keeps it)."""
    return f"call_{request_id.removeprefix('chatcmpl-')[:16]}_{n}"


def openai_tool_calls(request_id: str, calls: list[ToolCall], *, streamed: bool = False) -> list[dict[str, Any]]:
    out = []
    for n, c in enumerate(calls):
        arguments = json.dumps(c.arguments, ensure_ascii=False)
        item: dict[str, Any] = {"id": response_call_id(request_id, n), "type": "function",
                                "function": {"name": c.name, "arguments": arguments}}  # fmt: skip
        out.append({"index": n, **item} if streamed else item)
    return out


class CallSplitter:
    """A reply's text → its content and its tool calls, as it streams. Text is passed on as content until something
    that may begin a call (CALL_MARKERS) appears; from there it is held and read at the end (tool_calls.py): the
    calls that parse become `tool_calls`, and their text is taken out of the content — it never goes out as both.
    A call that does not parse (cut off by max_tokens, not JSON) stays in the content, so the client sees it.
    Hand-written: it is the server's view of core's parser, holding back a marker's prefix as StopText does."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.text = ""
        self.sent = 0  # characters passed on as content
        self.held_from: int | None = None  # where a possible call begins

    def feed(self, text: str) -> str:
        """The content that may go out now."""
        self.text += text
        if not self.active:
            self.sent = len(self.text)
            return text
        if self.held_from is None:
            found = [at for m in CALL_MARKERS if (at := self.text.find(m, self.sent)) >= 0]
            if found:
                self.held_from = min(found)
        end = self.held_from if self.held_from is not None else len(self.text) - self._partial_marker()
        out = self.text[self.sent : end]
        self.sent = max(self.sent, end)
        return out

    def _partial_marker(self) -> int:
        """How many characters at the end may be the beginning of a marker."""
        tail = self.text[self.sent :]
        for size in range(min(len(tail), max(len(m) for m in CALL_MARKERS) - 1), 0, -1):
            if any(m.startswith(tail[-size:]) for m in CALL_MARKERS):
                return size
        return 0

    def finish(self) -> tuple[str, list[ToolCall]]:
        """The content not yet passed on (without the calls' text), and the calls."""
        rest = self.text[self.sent :]
        self.sent = len(self.text)
        if not self.active or not rest:
            return rest, []
        calls = [c for c in parse_tool_calls(self.text) if c.ok and c.start >= self.sent - len(rest)]
        if not calls:
            return rest, []
        base, parts, end = self.sent - len(rest), [], 0
        for c in calls:
            parts.append(rest[end : c.start - base])
            end = c.end - base
        parts.append(rest[end:])
        content = "".join(parts)
        return (content if content.strip() else ""), calls


def finish_reason(reason: FinishReason) -> str:
    """OpenAI knows "stop" and "length"; a reply stopped by the client ends as "stop"."""
    return "length" if reason is FinishReason.LENGTH else "stop"


def usage(stats: GenerationStats | None) -> dict[str, int]:
    prompt = stats.prompt_tokens if stats else 0
    completion = stats.generated_tokens if stats else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_body(
    req: ChatRequest, model: str, text: str, reason: str, stats: GenerationStats | None,
    calls: list[ToolCall] | None = None,
) -> dict[str, Any]:  # fmt: skip
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:  # OpenAI: content null when the reply is only calls
        message = {"role": "assistant", "content": text.strip() or None,
                   "tool_calls": openai_tool_calls(req.id, calls)}  # fmt: skip
    return {
        "id": req.id,
        "object": "chat.completion",
        "created": req.created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
        "usage": usage(stats),
    }


def chunk_body(req: ChatRequest, model: str, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    return {
        "id": req.id,
        "object": "chat.completion.chunk",
        "created": req.created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
    }


def usage_chunk(req: ChatRequest, model: str, stats: GenerationStats | None) -> dict[str, Any]:
    return {
        "id": req.id,
        "object": "chat.completion.chunk",
        "created": req.created,
        "model": model,
        "choices": [],
        "usage": usage(stats),
    }


def models_body(model_ids: list[str], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": created, "owned_by": "llamadesk"} for m in model_ids],
    }

"""The OpenAI chat-completions wire format: a request body → messages and SamplingParams; replies and errors → JSON."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from llamadesk.core.engines.api import FinishReason, GenerationStats, Message
from llamadesk.core.errors import InvalidSetting, StructuredOutputError
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.structured import ResponseFormat

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
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOPS = 4  # as OpenAI


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
    response_format: ResponseFormat | None = None  # JSON or a JSON schema; None for text
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
    if not isinstance(raw, list) or not raw:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects.", param="messages")
    messages: list[Message] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RequestError(f"messages[{i}] must be an object with 'role' and 'content'.", param=f"messages[{i}]")
        role = _ROLES.get(str(item.get("role")))
        if role is None:
            raise RequestError(
                f"messages[{i}] has role {item.get('role')!r}; LlamaDesk serves system, developer, user and "
                "assistant messages (no tools).",
                param=f"messages[{i}].role",
            )
        messages.append({"role": role, "content": _text_of(item.get("content"), i)})
    return messages


def parse_chat_request(body: Any, defaults: SamplingParams) -> ChatRequest:
    """The request body (parsed JSON) → ChatRequest; RequestError with a sentence for anything it cannot serve.
    Sampling fields left out keep `defaults` (the app's settings), not OpenAI's defaults."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    messages = parse_messages(body.get("messages"))
    n = body.get("n", 1)
    if n not in (1, None):
        raise RequestError("LlamaDesk returns one choice per request; leave 'n' out or set it to 1.", param="n")
    if body.get("tools") or body.get("functions"):
        raise RequestError("LlamaDesk's server does not run tools or functions.", param="tools")
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
    return ChatRequest(
        messages=messages,
        params=params,
        stream=bool(body.get("stream", False)),
        include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
        stops=tuple(s for s in stops if s),
        model=str(body.get("model") or ""),
        response_format=None if response_format.is_text else response_format,
    )


def finish_reason(reason: FinishReason) -> str:
    """OpenAI knows "stop" and "length"; a reply stopped by the client ends as "stop"."""
    return "length" if reason is FinishReason.LENGTH else "stop"


def usage(stats: GenerationStats | None) -> dict[str, int]:
    prompt = stats.prompt_tokens if stats else 0
    completion = stats.generated_tokens if stats else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_body(
    req: ChatRequest, model: str, text: str, reason: str, stats: GenerationStats | None
) -> dict[str, Any]:
    return {
        "id": req.id,
        "object": "chat.completion",
        "created": req.created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason, "logprobs": None}
        ],
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

"""The OpenAI-compatible HTTP app: GET /v1/models, POST /v1/chat/completions (streamed as server-sent events or not).

Starlette (with uvicorn, server/runner.py) because it is small, typed, well kept and async: a streamed reply is an
async generator fed from the engine's thread through loop.call_soon_threadsafe, and a client that closes the stream
cancels that generator, which sets the job's cancel Event — the engine stops between tokens. No CORS headers are
sent (browsers may not read answers from other origins), POSTs must be application/json (so a web page cannot send
one without a CORS preflight, which fails), and on loopback the Host header must name loopback (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llamadesk.core.engines.api import Done, FinishReason, Token
from llamadesk.core.engines.local_stream import StopText
from llamadesk.server.backend import Backend, Failed, Job, JobEvent
from llamadesk.server.protocol import (
    CallSplitter,
    ChatRequest,
    RequestError,
    chunk_body,
    completion_body,
    error_body,
    finish_reason,
    models_body,
    openai_tool_calls,
    parse_chat_request,
    usage_chunk,
)

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
MAX_BODY_BYTES = 8 * 1024 * 1024


def _host_name(header: str) -> str:
    """The host of a Host header, without the port: "[::1]:8765" → "::1", "localhost:8765" → "localhost"."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _error(status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind=kind, code=code), status_code=status)


def build_app(backend: Backend, *, api_key: str | None = None, loopback_only: bool = True) -> Starlette:
    """The app for one backend. `api_key`: required as "Authorization: Bearer KEY" on every request when set.
    `loopback_only`: the server is bound to loopback, so requests must name a loopback host."""
    started = int(time.time())

    def check(request: Request) -> None:
        if loopback_only and _host_name(request.headers.get("host", "")).lower() not in LOOPBACK_NAMES:
            raise RequestError("This server answers only requests addressed to localhost.", status=400,
                               code="invalid_host")  # fmt: skip
        if api_key:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
                raise RequestError("Incorrect or missing API key; send it as 'Authorization: Bearer KEY'.",
                                   status=401, code="invalid_api_key")  # fmt: skip

    async def models(request: Request) -> Response:
        check(request)
        model = backend.model_id()
        return JSONResponse(models_body([model] if model else [], started))

    async def chat_completions(request: Request) -> Response:
        check(request)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise RequestError("Send the request body as JSON (Content-Type: application/json).", status=415)
        raw = await _read_body(request)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RequestError(f"The request body is not valid JSON ({exc}).") from exc
        except RecursionError:
            raise RequestError("The request body nests too deep.") from None
        req = parse_chat_request(body, backend.default_params())
        model = backend.model_id()
        if model is None:
            raise RequestError("No model is loaded in LlamaDesk; load one, then try again.", status=503,
                               kind="server_error", code="model_not_loaded")  # fmt: skip
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[JobEvent] = asyncio.Queue()

        def emit(event: JobEvent) -> None:  # called from the engine's thread
            with contextlib.suppress(RuntimeError):  # RuntimeError: the event loop is closed, the server stopped
                loop.call_soon_threadsafe(events.put_nowait, event)

        job = Job(req.messages, req.params, emit, response_format=req.response_format, tools=list(req.tools),
                  request_id=req.id)  # fmt: skip
        backend.submit(job)
        if req.stream:
            return StreamingResponse(_stream(req, model, job, events), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip
        return await _complete(req, model, job, events)

    async def on_request_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestError)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, str(exc.detail), kind=kind)

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={RequestError: on_request_error, HTTPException: on_http_error})


async def _read_body(request: Request) -> bytes:
    """The body, refused as soon as it passes MAX_BODY_BYTES (by its Content-Length or while it arrives)."""
    too_large = RequestError(f"The request is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB.", status=413)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


async def _complete(req: ChatRequest, model: str, job: Job, events: asyncio.Queue[JobEvent]) -> Response:
    """Waits for the whole reply. A client that goes away cancels this coroutine: the job is cancelled too."""
    stops = StopText(req.stops)
    calls = CallSplitter(bool(req.tools))
    parts: list[str] = []
    by_stop = False
    try:
        while True:
            event = await events.get()
            if isinstance(event, Token):
                if not by_stop:
                    text, by_stop = stops.feed(event.text)
                    parts.append(calls.feed(text))
                    if by_stop:
                        job.cancel.set()
            elif isinstance(event, Done):
                if event.stats.finish_reason is FinishReason.ERROR:
                    return _error(500, event.stats.error or "Generation failed.", kind="server_error")
                if not by_stop:
                    parts.append(calls.feed(stops.flush()))
                rest, found = calls.finish()
                parts.append(rest)
                reason = "stop" if by_stop else finish_reason(event.stats.finish_reason)
                if found:
                    reason = "tool_calls"
                return JSONResponse(completion_body(req, model, "".join(parts), reason, event.stats, found))
            elif isinstance(event, Failed):
                return _error(500, event.message, kind="server_error")
    except asyncio.CancelledError:
        job.cancel.set()
        raise


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(req: ChatRequest, model: str, job: Job, events: asyncio.Queue[JobEvent]) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them; an error after the start is sent as {"error": ...}."""
    stops = StopText(req.stops)
    calls = CallSplitter(bool(req.tools))
    by_stop = False
    done = False
    try:
        yield _sse(chunk_body(req, model, {"role": "assistant", "content": ""}))
        while True:
            event = await events.get()
            if isinstance(event, Token):
                if by_stop:
                    continue
                text, by_stop = stops.feed(event.text)
                if by_stop:
                    job.cancel.set()
                text = calls.feed(text)
                if text:
                    yield _sse(chunk_body(req, model, {"content": text}))
            elif isinstance(event, Done):
                done = True
                stats = event.stats
                if stats.finish_reason is FinishReason.ERROR:
                    yield _sse(error_body(stats.error or "Generation failed.", kind="server_error"))
                    return
                tail = "" if by_stop else calls.feed(stops.flush())
                rest, found = calls.finish()
                tail += rest
                if tail:
                    yield _sse(chunk_body(req, model, {"content": tail}))
                reason = "stop" if by_stop else finish_reason(stats.finish_reason)
                if found:  # each call in one chunk: its index, id, name and whole arguments
                    reason = "tool_calls"
                    for call in openai_tool_calls(req.id, found, streamed=True):
                        yield _sse(chunk_body(req, model, {"tool_calls": [call]}))
                yield _sse(chunk_body(req, model, {}, reason))
                if req.include_usage:
                    yield _sse(usage_chunk(req, model, stats))
                yield _sse("[DONE]")
                return
            elif isinstance(event, Failed):
                done = True
                yield _sse(error_body(event.message, kind="server_error"))
                return
    finally:
        if not done:  # the client closed the stream: stop generating
            job.cancel.set()

"""The remote engine: a model served by an OpenAI-compatible server (llama.cpp's or llama-cpp-python's server,
vLLM, Ollama, LM Studio), listed with GET /v1/models and streamed with POST /v1/chat/completions over SSE."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2

from llamadesk import __version__
from llamadesk.core.endpoints import Endpoint, RemoteOptions
from llamadesk.core.engines.api import (
    Capabilities,
    Done,
    FinishReason,
    GenerationStats,
    LoadOptions,
    LoadProgress,
    Message,
    ModelInfo,
    StreamEvent,
    Token,
)
from llamadesk.core.engines.remote_api import (
    ACCEPTED,
    LIST_TIMEOUT_S,
    OPENAI_KEYS,
    READ_TIMEOUT_S,
    USAGE_IN_STREAM,
    RemoteError,
    RemoteGenerationError,
    RemoteLoadError,
    auth_headers,
    garbage,
    http_error,
    list_models,
    resolve_key,
    response_format_body,
    sampling_body,
    transport_error,
)
from llamadesk.core.remote import make_client
from llamadesk.core.sampling import MAX_SEED, SamplingParams
from llamadesk.core.socket_stop import StopWatcher
from llamadesk.core.structured import ResponseFormat

__all__ = ["RemoteEngine", "RemoteError", "RemoteGenerationError", "RemoteLoadError"]

log = logging.getLogger(__name__)


class RemoteEngine:
    """The Engine protocol over HTTP. One thread calls every method; Stop is the `cancel` Event of `stream`."""

    def __init__(self) -> None:
        self._info: ModelInfo | None = None
        self._endpoint: Endpoint | None = None
        self._model = ""
        self._kind = "openai"
        self._api_key: str | None = None
        self._client: httpx2.Client | None = None

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    def capabilities(self) -> Capabilities:
        return {
            "kind": "remote",
            "server_kind": self._kind,
            "endpoint": self._endpoint.url if self._endpoint else "",
            "streaming": True,
            "stop_during_prompt": True,  # the connection is shut down
            "sampling": [*sorted(ACCEPTED.get(self._kind, OPENAI_KEYS)), "seed"],
            "response_format": True,  # passed on as OpenAI's response_format; the server applies it
        }

    def load(self, options: LoadOptions, progress: LoadProgress | None = None) -> ModelInfo:
        if not isinstance(options, RemoteOptions):
            raise RemoteLoadError("The remote engine loads models of an endpoint, not files.")
        started = time.perf_counter()
        endpoint = options.endpoint
        self.unload()
        api_key = resolve_key(endpoint, options.api_key)
        client = make_client(read_timeout=READ_TIMEOUT_S, connect_timeout=LIST_TIMEOUT_S)
        try:
            listing = list_models(endpoint, api_key if api_key is not None else "", client=client)
            if not listing.models:
                raise RemoteLoadError(f"{endpoint.name} offers no models.")
            model = options.model or listing.models[0]
            if model not in listing.models:
                shown = ", ".join(listing.models[:5]) + (" …" if len(listing.models) > 5 else "")
                raise RemoteLoadError(f"{endpoint.name} has no model {model!r}; it offers {shown}.")
            if progress is not None and not progress(1.0):
                raise RemoteLoadError("Loading was cancelled.")
        except BaseException:
            client.close()
            raise
        self._client, self._endpoint, self._model, self._kind, self._api_key = (
            client,
            endpoint,
            model,
            listing.kind,
            api_key,
        )
        n_ctx = listing.n_ctx or options.n_ctx
        self._info = ModelInfo(
            path=Path(model),
            file_name=model,
            size_bytes=0,
            sha256="",
            architecture=listing.kind,
            quantization="",
            n_ctx=n_ctx,
            n_ctx_train=n_ctx,
            n_layers=0,
            n_gpu_layers=0,
            n_threads=0,
            template_name="server",
            template_source="server",
            has_chat_template=True,
            load_seconds=time.perf_counter() - started,
            offload_note=f"Runs on {endpoint.name} ({endpoint.url}).",
            endpoint=endpoint.url,
            server_kind=listing.kind,
        )
        log.info("Connected to %s (%s, %s) for model %s", endpoint.name, endpoint.url, listing.kind, model)
        return self._info

    def unload(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._info = None
        self._endpoint = None
        self._api_key = None

    def close(self) -> None:
        self.unload()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """An estimate (about four characters a token, plus each message's framing): servers differ in whether
        and how they tokenize a chat, and the context meter needs no more."""
        return sum(len(m.get("content", "")) // 4 + 4 for m in messages) + 2

    def stream(
        self, messages: Sequence[Message], params: SamplingParams, cancel: threading.Event | None = None,
        *, response_format: ResponseFormat | None = None,
    ) -> Iterator[StreamEvent]:  # fmt: skip
        """Streams the server's reply; `response_format` (JSON, a JSON schema) goes to the server as OpenAI's
        `response_format`, which the server enforces (llama.cpp's server with a grammar of its own)."""
        client, endpoint, info = self._client, self._endpoint, self._info
        if client is None or endpoint is None or info is None:
            raise RemoteGenerationError("No model is loaded; choose a model first.")
        cancel = cancel or threading.Event()
        seed = params.seed if params.seed is not None else random.SystemRandom().randint(0, MAX_SEED)
        sampling, ignored = sampling_body(self._kind, params, seed)
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [dict(m) for m in messages],
            "stream": True,
            **sampling,
        }
        if self._kind in USAGE_IN_STREAM:
            body["stream_options"] = {"include_usage": True}
        if response_format is not None and not response_format.is_text:
            response_format.check()  # a schema that cannot be used is one sentence here, before anything is sent
            body["response_format"] = response_format_body(self._kind, response_format)
        started = time.perf_counter()
        first_at = ttft = 0.0
        chunks = 0
        usage: dict[str, Any] = {}
        reason = FinishReason.LENGTH
        error: str | None = None
        if cancel.is_set():
            reason = FinishReason.CANCELLED
        else:
            try:
                # Stop shuts the socket down, also while the server is silent before its headers (a long prompt).
                with StopWatcher(cancel.is_set, name="llamadesk-remote-stop", poll=0.05) as watch, client.stream(
                    "POST", endpoint.api_url("chat/completions"), json=body, headers=auth_headers(self._api_key),
                    extensions={"trace": watch.trace},
                ) as response:
                    if response.status_code != 200:
                        raise RemoteGenerationError(http_error(endpoint, response, self._model))
                    try:
                        for data in self._events(endpoint, response):
                            if "usage" in data and isinstance(data["usage"], dict):
                                usage = data["usage"]
                            for choice in data.get("choices") or []:
                                text = (choice.get("delta") or {}).get("content") or ""
                                if text:
                                    if not chunks:
                                        first_at = time.perf_counter()
                                        ttft = first_at - started
                                    chunks += 1
                                    yield Token(text)
                                if choice.get("finish_reason"):
                                    reason = (
                                        FinishReason.LENGTH
                                        if choice["finish_reason"] == "length"
                                        else FinishReason.STOP
                                    )
                            if cancel.is_set():
                                break
                        if cancel.is_set():  # also when the shut-down socket read as a clean end of the stream
                            reason = FinishReason.CANCELLED
                    except (httpx2.HTTPError, RemoteError) as exc:
                        if cancel.is_set():
                            reason = FinishReason.CANCELLED
                        elif not chunks:
                            raise
                        else:
                            reason = FinishReason.ERROR
                            error = (
                                str(exc)
                                if isinstance(exc, RemoteError)
                                else f"The connection to {endpoint.name} was lost mid-reply ({type(exc).__name__})."
                            )
            except httpx2.HTTPError as exc:
                if not cancel.is_set():
                    raise RemoteGenerationError(transport_error(endpoint, exc)) from exc
                reason = FinishReason.CANCELLED  # stopped before the server answered: its socket was shut down
        ended = time.perf_counter()
        generated = int(usage.get("completion_tokens") or chunks)
        prompt_tokens = int(usage.get("prompt_tokens") or self.count_tokens(messages))
        stats = GenerationStats(
            prompt_tokens=prompt_tokens,
            cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
            generated_tokens=generated,
            ttft_s=ttft,
            tokens_per_s=(generated - 1) / (ended - first_at) if generated > 1 and ended > first_at else 0.0,
            total_s=ended - started,
            finish_reason=reason,
            seed=seed,
            error=error,
        )
        receipt = self._receipt(params, stats, sampling, ignored, bool(usage))
        if "response_format" in body and response_format is not None:
            receipt["response_format"] = response_format.receipt()
        yield Done(stats, receipt)
        if error is not None:
            raise RemoteGenerationError(error)

    def _events(self, endpoint: Endpoint, response: httpx2.Response) -> Iterator[dict[str, Any]]:
        """The JSON objects of the SSE stream until [DONE]; an error event or non-JSON data is a RemoteError."""
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "text/event-stream":
            raise RemoteGenerationError(garbage(endpoint, "stream (not server-sent events)"))
        for event in httpx2.EventSource(response, max_event_size=4 * 1024 * 1024):
            if event.data.strip() == "[DONE]":
                return
            if not event.data.strip():
                continue
            try:
                data = json.loads(event.data)
            except ValueError as exc:
                raise RemoteGenerationError(garbage(endpoint, "stream (not JSON)")) from exc
            if not isinstance(data, dict):
                raise RemoteGenerationError(garbage(endpoint, "stream"))
            if "error" in data:
                err = data["error"]
                message = err.get("message") if isinstance(err, dict) else err
                raise RemoteGenerationError(
                    f"{endpoint.name} reported an error: {' '.join(str(message).split())[:200]}"
                )
            yield data

    def _receipt(
        self, params: SamplingParams, stats: GenerationStats, sent: dict[str, Any], ignored: list[str], counted: bool
    ) -> dict[str, Any]:
        endpoint = self._endpoint
        assert endpoint is not None
        return {
            "engine": "remote",
            "endpoint": endpoint.url,
            "endpoint_name": endpoint.name,
            "server_kind": self._kind,
            "model": self._model,
            "model_file": self._model,
            "template": "server",
            "template_source": "server",
            "sampling": params.to_dict(),  # seed: the one asked for (None: random); the top-level seed was sent
            "sent_sampling": sent,
            "ignored_sampling": ignored,
            "token_counts": "server" if counted else "estimated",
            "seed": stats.seed,
            **{k: v for k, v in stats.to_dict().items() if k not in ("seed", "error")},
            **({"error": stats.error} if stats.error else {}),
            "app_version": __version__,
        }

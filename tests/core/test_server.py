"""LlamaDesk's OpenAI-compatible server, driven by the official `openai` client over loopback: a real uvicorn server,
the real llama.cpp engine on the tiny model in its own thread, real SQLite for the "server" history label."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llamadesk.core.engines.api import LoadOptions
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.errors import ModelLoadError
from llamadesk.core.history import History
from llamadesk.core.sampling import SamplingParams
from llamadesk.paths import get_paths
from llamadesk.server.backend import EngineThreadBackend, Job
from llamadesk.server.runner import ServerConfig, ServerError, ServerRunner

KEY = "test-key-123"
HI = [{"role": "user", "content": "hello"}]


def start(model: Path, *, api_key: str | None = KEY, record: bool = False) -> tuple[EngineThreadBackend, ServerRunner]:
    backend = EngineThreadBackend(LlamaCppEngine, params=SamplingParams(max_tokens=16), record_history=record)
    backend.start(LoadOptions(model, n_ctx=512, n_threads=1))
    runner = ServerRunner(backend, ServerConfig(port=0, api_key=api_key))
    runner.start()
    return backend, runner


@pytest.fixture
def server(endless_model: Path) -> Iterator[tuple[EngineThreadBackend, ServerRunner]]:
    backend, runner = start(endless_model, record=True)
    yield backend, runner
    runner.stop()
    backend.close()


@pytest.fixture
def client(server: tuple[EngineThreadBackend, ServerRunner]) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[1].url, api_key=KEY, max_retries=0, timeout=60)


def raw(runner: ServerRunner, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
        ) -> tuple[int, dict[str, Any]]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", runner.port, timeout=30)
    payload = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    conn.request(
        method,
        path,
        body=payload,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **(headers or {})},
    )
    response = conn.getresponse()
    data = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, data


def server_rows() -> list[tuple[str, str, str | None]]:
    """(source, status of the last message, its finish_reason) per conversation, oldest first."""
    with History(get_paths().history_db) as h:
        rows = []
        for conv in sorted(h.list_conversations(), key=lambda c: c.id):
            last = h.messages(conv.id)[-1]
            rows.append((conv.source, last.status, last.finish_reason))
        return rows


def test_models_lists_the_loaded_model(client: openai.OpenAI, endless_model: Path) -> None:
    assert [m.id for m in client.models.list()] == [endless_model.name]


def test_non_streaming_completion(client: openai.OpenAI, endless_model: Path) -> None:
    reply = client.chat.completions.create(model="anything", messages=HI, max_tokens=8, seed=4)
    assert reply.model == endless_model.name and reply.object == "chat.completion"
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content and choice.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 8 and reply.usage.prompt_tokens > 0
    again = client.chat.completions.create(model="x", messages=HI, max_tokens=8, seed=4)
    assert again.choices[0].message.content == choice.message.content  # the seed is honoured


def test_streaming_completion_matches_the_non_streamed_text(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="x", messages=HI, max_tokens=10, seed=7)
    stream = client.chat.completions.create(
        model="x",
        messages=HI,
        max_tokens=10,
        seed=7,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10


def test_stop_strings_cut_the_reply(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="x", messages=HI, max_tokens=12, seed=3)
    text = whole.choices[0].message.content or ""
    stop = text[3:5]
    assert stop.strip()
    cut = client.chat.completions.create(model="x", messages=HI, max_tokens=12, seed=3, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_closing_the_stream_stops_generation(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="x", messages=HI, max_tokens=4000, stream=True)
    for i, _chunk in enumerate(stream):
        if i == 3:
            break
    stream.close()
    # The engine took the next request: the cut one was stopped, not run to its 4000 tokens.
    reply = client.chat.completions.create(model="x", messages=HI, max_tokens=4)
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    rows = server_rows()
    assert rows[0] == ("server", "cancelled", "cancelled") and rows[1] == ("server", "complete", "length")


def test_bad_or_missing_key_is_401(server: tuple[EngineThreadBackend, ServerRunner]) -> None:
    bad = openai.OpenAI(base_url=server[1].url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as failure:
        bad.models.list()
    assert failure.value.status_code == 401 and "API key" in str(failure.value)
    status, body = raw(server[1], "GET", "/v1/models", headers={"Authorization": ""})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_requests_become_history_with_the_server_label(client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="x",
        messages=[{"role": "system", "content": "be brief"}, *HI],
        max_tokens=5,
    )
    with History(get_paths().history_db) as h:
        (conv,) = h.list_conversations()
        assert conv.source == "server" and conv.system_prompt == "be brief" and conv.title == "Hello"
        user, reply = h.messages(conv.id)
        assert (user.role, user.content) == ("user", "hello")
        assert reply.status == "complete" and reply.receipt is not None and reply.receipt["source"] == "server"


def test_bad_requests_get_openai_errors(server: tuple[EngineThreadBackend, ServerRunner]) -> None:
    runner = server[1]
    cases = [
        ({"messages": []}, 400, "non-empty list"),
        ({"messages": HI, "n": 2}, 400, "one choice"),
        ({"messages": HI, "temperature": 99}, 400, "emperature"),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400, "answers no tool call"),
        ({"messages": HI, "stop": [1]}, 400, "'stop'"),
    ]
    for body, status, phrase in cases:
        got, answer = raw(runner, "POST", "/v1/chat/completions", body)
        assert got == status and phrase in answer["error"]["message"], (body, answer)
        assert answer["error"]["type"] == "invalid_request_error"
    got, answer = raw(runner, "POST", "/v1/chat/completions", b"{oops")
    assert got == 400 and "not valid JSON" in answer["error"]["message"]
    got, answer = raw(runner, "POST", "/v1/chat/completions", HI, headers={"Content-Type": "text/plain"})
    assert got == 415  # a web page cannot POST JSON cross-origin without a preflight, which gets no CORS answer
    got, answer = raw(runner, "GET", "/v1/nothing")
    assert got == 404 and answer["error"]["type"] == "not_found_error"
    got, answer = raw(runner, "GET", "/v1/models", headers={"Host": "evil.example:80"})
    assert got == 400 and answer["error"]["code"] == "invalid_host"  # DNS rebinding onto loopback


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: tuple[EngineThreadBackend, ServerRunner]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server[1].port, timeout=30)
    conn.putrequest("POST", "/v1/chat/completions")
    for name, value in (("Authorization", f"Bearer {KEY}"), ("Content-Type", "application/json"),
                        ("Content-Length", str(10 * 1024**3))):  # fmt: skip
        conn.putheader(name, value)
    conn.endheaders()  # ten GB announced, none sent: the answer comes from the header alone
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    assert response.status == 413 and "larger than 8 MB" in answer["error"]["message"]


def test_no_cors_headers(server: tuple[EngineThreadBackend, ServerRunner]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server[1].port, timeout=30)
    conn.request("OPTIONS", "/v1/chat/completions", headers={"Origin": "https://evil.example",
                                                             "Access-Control-Request-Method": "POST"})  # fmt: skip
    response = conn.getresponse()
    response.read()
    assert response.getheader("Access-Control-Allow-Origin") is None
    conn.close()


def test_exposed_without_key_and_port_in_use_are_sentences(tiny_model: Path) -> None:
    with pytest.raises(ServerError, match="set an API key first"):
        ServerConfig(host="0.0.0.0").check()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        runner = ServerRunner(EngineThreadBackend(), ServerConfig(port=port))
        with pytest.raises(ServerError, match=f"Port {port} on 127.0.0.1 is in use"):
            runner.start()


def test_a_model_that_cannot_load_is_a_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(ModelLoadError):
        EngineThreadBackend(LlamaCppEngine).start(LoadOptions(bad, n_ctx=512, n_threads=1))


def test_jobs_wait_their_turn(tiny_model: Path) -> None:
    """Two jobs on the one engine: the second starts only after the first has ended."""
    backend = EngineThreadBackend(LlamaCppEngine)
    backend.start(LoadOptions(tiny_model, n_ctx=512, n_threads=1))
    order: list[str] = []
    done = [threading.Event(), threading.Event()]
    try:
        for i in range(2):

            def emit(event: object, i: int = i) -> None:
                kind = type(event).__name__
                if not order or order[-1] != f"{i}:{kind}":
                    order.append(f"{i}:{kind}")
                if kind in ("Done", "Failed"):
                    done[i].set()

            backend.submit(Job(list(HI), SamplingParams(max_tokens=6, seed=i), emit))
        assert done[0].wait(60) and done[1].wait(60)
    finally:
        backend.close()
    assert order == ["0:Token", "0:Done", "1:Token", "1:Done"]

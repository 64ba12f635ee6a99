"""`response_format` on LlamaDesk's server, driven by the official `openai` client over loopback: a real uvicorn
server and the real llama.cpp engine on the tiny model (random weights: without the grammar its replies are noise)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from llamadesk.core.engines.api import LoadOptions
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.history import History
from llamadesk.core.sampling import SamplingParams
from llamadesk.paths import get_paths
from llamadesk.server.backend import EngineThreadBackend
from llamadesk.server.runner import ServerConfig, ServerRunner

KEY = "test-key-structured"
ASK = [{"role": "user", "content": "Answer in JSON."}]
# Bounded strings (ASCII patterns) and enums: the grammar leaves a random model nothing to write but a valid reply.
SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"enum": ["yes", "no", "maybe"]},
        "reason": {"type": "string", "pattern": "^[a-z ]{1,20}$"},
        "score": {"type": "integer"},
        "flags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 4},
    },
    "required": ["answer", "reason", "score", "flags"],
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": SCHEMA, "strict": True}}


@pytest.fixture
def server(tiny_model: Path) -> Iterator[ServerRunner]:
    """Per test: the history it records goes to the test's own LLAMADESK_HOME."""
    backend = EngineThreadBackend(LlamaCppEngine, params=SamplingParams(max_tokens=300), record_history=True)
    backend.start(LoadOptions(tiny_model, n_ctx=1024, n_threads=1))
    runner = ServerRunner(backend, ServerConfig(port=0, api_key=KEY))
    runner.start()
    yield runner
    runner.stop()
    backend.close()


@pytest.fixture
def client(server: ServerRunner) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=120)


def test_json_schema_replies_validate_streamed_and_not(client: openai.OpenAI) -> None:
    for seed in range(3):
        reply = client.chat.completions.create(model="m", messages=ASK, seed=seed, temperature=1.0,
                                               response_format=JSON_SCHEMA)  # type: ignore[arg-type]  # fmt: skip
        assert reply.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(reply.choices[0].message.content or ""), SCHEMA)
        chunks = client.chat.completions.create(model="m", messages=ASK, seed=seed, temperature=1.0, stream=True,
                                                response_format=JSON_SCHEMA)  # type: ignore[arg-type]  # fmt: skip
        text, reasons = "", []
        for chunk in chunks:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                reasons.append(choice.finish_reason)
        assert reasons[-1] == "stop"
        jsonschema.validate(json.loads(text), SCHEMA)
        assert text == reply.choices[0].message.content  # same seed, same grammar: the same reply either way


def test_json_object_replies_parse(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="m", messages=ASK, seed=5, max_tokens=400,
                                           response_format={"type": "json_object"})  # fmt: skip
    content = reply.choices[0].message.content or ""
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)
    else:  # any object may go on: then it ends as "length", cut off
        assert reply.choices[0].finish_reason == "length" and content.startswith("{")


def test_a_reply_cut_off_ends_with_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="m", messages=ASK, seed=1, max_tokens=4,
                                           response_format=JSON_SCHEMA)  # type: ignore[arg-type]  # fmt: skip
    assert reply.choices[0].finish_reason == "length"


HOSTILE: list[Any] = [
    {
        "type": "json_schema",
        "json_schema": {
            "name": "r",
            "schema": {
                "$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}}},
                "$ref": "#/$defs/n",
            },
        },
    },
    {"type": "json_schema", "json_schema": {"name": "e", "schema": {"enum": list(range(10_000))}}},
    {"type": "json_schema", "json_schema": {"name": "m", "schema": {"type": "string", "maxLength": 10**9}}},
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nothing"}}},
    {"type": "json_schema"},
    {"type": "yaml"},
]


@pytest.mark.parametrize("response_format", HOSTILE)
def test_hostile_formats_are_a_400_with_one_sentence(client: openai.OpenAI, response_format: Any) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="m", messages=ASK, stream=stream,
                                           response_format=response_format)  # fmt: skip
        error = info.value.body
        assert isinstance(error, dict) and error["param"] == "response_format"
        message = error["message"]
        assert message.endswith(".") and "\n" not in message and len(message) < 300


def test_the_history_records_the_format(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="m", messages=ASK, seed=2,
                                   response_format=JSON_SCHEMA)  # type: ignore[arg-type]  # fmt: skip
    with History(get_paths().history_db) as history:
        newest = max(history.list_conversations(), key=lambda c: c.id)
        receipt = history.messages(newest.id)[-1].receipt or {}
    assert receipt["response_format"]["type"] == "json_schema"
    assert receipt["response_format"]["name"] == "verdict"

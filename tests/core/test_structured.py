"""Structured output (core/structured.py): a response format → a llama.cpp grammar. Hostile schemas are one sentence,
quickly; real llama.cpp on the tiny model under a grammar gives replies that parse and validate with jsonschema."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from llamadesk.core.engines.api import FinishReason, LoadOptions
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.errors import StructuredOutputError
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.structured import (
    FORMAT_KEY,
    MAX_DEPTH,
    FormatKind,
    ResponseFormat,
    cut_off_sentence,
    schema_grammar,
    stored_format,
)
from tests.core.conftest import collect

HI = [{"role": "user", "content": "Describe a person as JSON."}]
# Bounded everywhere (strings by an ASCII pattern or an enum, arrays by maxItems, integers by the grammar's 16
# digits), so that even a model of random weights ends its reply: the grammar leaves it nothing else to write.
# ASCII patterns, not maxLength: llama.cpp's grammar reads a broken UTF-8 byte run as one character, so a random
# model's string can hold more characters (to Python) than the grammar counted.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z ]{1,12}$"},
        "age": {"type": "integer"},
        "mood": {"enum": ["calm", "busy", "happy"]},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{0,6}$"}, "maxItems": 3},
        "pet": {"type": ["boolean", "null"]},
        "home": {
            "type": "object",
            "properties": {"city": {"$ref": "#/$defs/word"}, "since": {"type": "string", "format": "date"}},
            "required": ["city", "since"],
        },
    },
    "required": ["name", "age", "mood", "tags", "pet", "home"],
    "$defs": {"word": {"type": "string", "pattern": "^[A-Z][a-z]{0,8}$"}},
}


def one_sentence(text: str) -> bool:
    return text.endswith(".") and "\n" not in text and len(re.findall(r"[.!?](\s|$)", text)) == 1


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


HOSTILE: dict[str, Any] = {
    "recursive $ref": {
        "$defs": {"n": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/n"}}}}},
        "$ref": "#/$defs/n",
    },
    "mutually recursive $ref": {
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}},
        "$ref": "#/$defs/a",
    },
    "the whole schema as $ref": {"type": "object", "properties": {"me": {"$ref": "#"}}},
    "10k enum values": {"enum": [f"value {i}" for i in range(10_000)]},
    "huge maxLength": {"type": "string", "maxLength": 10**9},
    "huge minItems": {"type": "array", "items": {"type": "integer"}, "minItems": 10**8},
    "huge pattern repeat": {"type": "string", "pattern": "^a{1000000}$"},
    "deep nesting": nested(5_000),
    "invalid schema": {"type": "banana"},
    "invalid keyword value": {"type": "string", "maxLength": -3},
    "unenforceable keyword": {"type": "integer", "minimum": 0},
    "dangling $ref": {"$ref": "#/$defs/missing"},
    "remote $ref": {"$ref": "https://example.com/schema.json"},
    "unanchored pattern": {"type": "string", "pattern": "abc"},
    "minLength above maxLength": {"type": "string", "minLength": 5, "maxLength": 2},
    "required but not a property": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["b"]},
    "false": False,
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_schemas_are_one_sentence_quickly(name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(StructuredOutputError) as info:
        ResponseFormat.from_schema(HOSTILE[name])
    assert one_sentence(str(info.value)), str(info.value)
    assert len(str(info.value)) < 300
    assert time.perf_counter() - started < 5  # the converter never ran on them; a generous bound for a loaded box


def test_hostile_schema_texts_are_one_sentence() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, "{not json", '"a string"', "x" * 300_000):
        with pytest.raises(StructuredOutputError) as info:
            ResponseFormat.from_schema_text(text)
        assert one_sentence(str(info.value)), str(info.value)
    with pytest.raises(StructuredOutputError, match=f"deeper than {MAX_DEPTH}"):
        ResponseFormat.from_schema_text("[" * 100_000 + "]" * 100_000)


def test_the_converter_keeps_property_order_and_json_safe_strings() -> None:
    grammar = schema_grammar(json.dumps(PERSON))
    root = next(line for line in grammar.splitlines() if line.startswith("root ::="))
    order = [root.index(f"{p}-kv") for p in ("name", "age", "mood", "tags", "pet", "home")]
    assert order == sorted(order)  # the model writes the properties in the schema's order
    # no raw control character or quote can enter a string (the library's own `char`/`dot` let them)
    for line in grammar.splitlines():
        if line.startswith(("char ::=", "dot ::=")):
            assert r"\x00-\x1F" in line and '"' in line.split("::=")[1]


def test_formats_round_trip_through_openai_and_storage() -> None:
    fmt = ResponseFormat.from_openai({"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON,
                                                                              "strict": True}})  # fmt: skip
    assert fmt.kind is FormatKind.SCHEMA and fmt.name == "person" and fmt.strict
    assert fmt.to_openai() == {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON,
                                                                      "strict": True}}  # fmt: skip
    assert ResponseFormat.from_dict(fmt.to_dict()) == fmt
    assert stored_format({FORMAT_KEY: fmt.to_dict()}) == fmt
    assert stored_format({}) is None and stored_format({FORMAT_KEY: {"type": "text"}}) is None
    assert ResponseFormat.from_openai({"type": "json_object"}).to_openai() == {"type": "json_object"}
    assert ResponseFormat.from_openai(None).is_text and ResponseFormat.from_openai({"type": "text"}).is_text
    for bad in ({"type": "xml"}, {"type": "json_schema"}, "json", {"type": "json_schema", "json_schema": {}}):
        with pytest.raises(StructuredOutputError) as info:
            ResponseFormat.from_openai(bad)
        assert one_sentence(str(info.value))
    # a schema kept as typed (the window) is checked when used, and says what is wrong
    typed = ResponseFormat.from_dict({"type": "json_schema", "schema_text": '{"type": "string", "maxLength": 1e9'})
    assert typed.kind is FormatKind.SCHEMA
    with pytest.raises(StructuredOutputError, match="not valid JSON"):
        typed.check()
    receipt = fmt.receipt()
    assert receipt["type"] == "json_schema" and receipt["schema"] == PERSON and len(receipt["schema_sha256"]) == 64


def test_check_reply_says_how_a_reply_misses() -> None:
    fmt = ResponseFormat.from_schema({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    assert fmt.check_reply('{"a": 3}') is None
    assert "not complete JSON" in (fmt.check_reply('{"a": ') or "")
    assert "does not match" in (fmt.check_reply('{"a": "x"}') or "")
    assert ResponseFormat.json_object().check_reply("[1]") == "The reply is JSON but not an object."
    assert one_sentence(cut_off_sentence(64)) and "64" in cut_off_sentence(64)


@pytest.fixture(scope="module")
def loaded(tiny_model: Path) -> Any:
    eng = LlamaCppEngine()
    eng.load(LoadOptions(tiny_model, n_ctx=1024, n_threads=1))
    yield eng
    eng.close()


def test_replies_under_a_schema_parse_and_validate(loaded: LlamaCppEngine) -> None:
    """The tiny model has random weights: without the grammar its replies are noise. With it, every reply is a
    complete JSON document valid under the schema, at any temperature."""
    fmt = ResponseFormat.from_schema(PERSON, name="person")
    assert loaded.capabilities().get("response_format") is True
    validator = jsonschema.Draft202012Validator(PERSON)
    for seed in range(12):
        params = SamplingParams(seed=seed, temperature=1.5 if seed % 2 else 0.7, max_tokens=600)
        text, done = collect(loaded.stream(HI, params, response_format=fmt))
        assert done.stats.finish_reason is FinishReason.STOP, text
        validator.validate(json.loads(text))
        assert done.receipt["response_format"]["type"] == "json_schema"
        assert done.receipt["response_format"]["name"] == "person"
    _free, done = collect(loaded.stream(HI, SamplingParams(seed=1, max_tokens=40)))
    assert "response_format" not in done.receipt


def test_json_object_replies_parse(loaded: LlamaCppEngine) -> None:
    fmt = ResponseFormat.json_object()
    for seed in range(4):
        text, done = collect(loaded.stream(HI, SamplingParams(seed=seed, max_tokens=800), response_format=fmt))
        if done.stats.finish_reason is FinishReason.STOP:
            assert isinstance(json.loads(text), dict)
        else:  # any JSON object can go on for ever: then it is cut off, and says so
            assert done.stats.finish_reason is FinishReason.LENGTH and text.startswith("{")


def test_a_reply_cut_off_by_max_tokens_ends_with_length(loaded: LlamaCppEngine) -> None:
    fmt = ResponseFormat.from_schema(PERSON)
    text, done = collect(loaded.stream(HI, SamplingParams(seed=2, max_tokens=5), response_format=fmt))
    assert done.stats.finish_reason is FinishReason.LENGTH
    assert text.startswith("{") and fmt.check_reply(text) is not None
    assert done.receipt["response_format"]["type"] == "json_schema"


def test_a_schema_kept_as_typed_fails_the_reply_with_its_sentence(loaded: LlamaCppEngine) -> None:
    bad = ResponseFormat(FormatKind.SCHEMA, json.dumps({"enum": list(range(5000))}))
    with pytest.raises(StructuredOutputError) as info:
        collect(loaded.stream(HI, SamplingParams(max_tokens=8), response_format=bad))
    assert one_sentence(str(info.value)) and "5,000" in str(info.value)
    _text, done = collect(loaded.stream(HI, SamplingParams(seed=1, max_tokens=8)))  # the engine is fine after
    assert done.stats.generated_tokens > 0


def test_stop_ends_a_constrained_reply(loaded: LlamaCppEngine) -> None:
    cancel = threading.Event()
    fmt = ResponseFormat.json_object()
    events = loaded.stream(HI, SamplingParams(seed=3, max_tokens=500), cancel, response_format=fmt)
    first = next(events)
    cancel.set()
    _text, done = collect(events)
    assert first is not None and done.stats.finish_reason in (FinishReason.CANCELLED, FinishReason.STOP)


def test_the_remote_engine_passes_the_format_to_the_server(llama_server: Any) -> None:
    """llama-cpp-python's own server (a real OpenAI-compatible server on loopback) gets `response_format` and holds
    its reply to the schema: enums only, so its grammar (the library's, without this module's fixes) ends it."""
    from llamadesk.core.endpoints import Endpoint, remote_options
    from llamadesk.core.engines.remote import RemoteEngine

    schema = {"type": "object", "properties": {"k": {"enum": ["yes", "no"]}, "b": {"type": "boolean"}},
              "required": ["k", "b"]}  # fmt: skip
    fmt = ResponseFormat.from_schema(schema, name="answer")
    engine = RemoteEngine()
    try:
        engine.load(remote_options(Endpoint("box", llama_server.url, allow_http=True), n_ctx=512))
        assert engine.capabilities().get("response_format") is True
        text, done = collect(engine.stream(HI, SamplingParams(seed=4, max_tokens=64), response_format=fmt))
        jsonschema.validate(json.loads(text), schema)
        assert done.receipt["response_format"]["name"] == "answer"
        with pytest.raises(StructuredOutputError):  # checked before anything is sent
            collect(engine.stream(HI, SamplingParams(max_tokens=8),
                                  response_format=ResponseFormat(FormatKind.SCHEMA, '{"enum": 3}')))  # fmt: skip
    finally:
        engine.close()


def test_rejection_first_sampling_holds_with_token_probs_and_leaves_the_library_alone(loaded: LlamaCppEngine) -> None:
    """grammar_sampler.py draws without the grammar first; the grammar still holds, token probabilities still come,
    and llama-cpp-python's own sampler builder is back in place after the stream (free replies are untouched)."""
    fmt = ResponseFormat.from_schema(PERSON)
    llama = loaded._llama
    for seed in (21, 22):
        params = SamplingParams(seed=seed, temperature=1.2, max_tokens=600)
        text, done = collect(loaded.stream(HI, params, token_probs=True, response_format=fmt))
        jsonschema.validate(json.loads(text), PERSON)
        assert done.receipt["token_probs"]
        assert "_init_sampler" not in vars(llama)
    first, _ = collect(loaded.stream(HI, SamplingParams(seed=5, max_tokens=12)))
    again, _ = collect(loaded.stream(HI, SamplingParams(seed=5, max_tokens=12)))
    assert first == again


def test_a_message_with_images_under_a_format_is_one_sentence(loaded: LlamaCppEngine) -> None:
    """The image path (engines/vision.py) has no grammar yet: said, not ignored."""
    from llamadesk.core.engines import vision

    message = vision.with_images(HI[0], ["0" * 64])
    with pytest.raises(StructuredOutputError) as info:
        collect(loaded.stream([message], SamplingParams(max_tokens=4), response_format=ResponseFormat.json_object()))
    assert one_sentence(str(info.value)) and "images" in str(info.value)

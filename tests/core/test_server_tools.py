"""`tools` and `tool_choice` on LlamaDesk's server, driven by the official `openai` client over loopback: a real
uvicorn server and the real llama.cpp engine on the starter model (SmolLM2-135M-Instruct, whose template knows no
tools: they are described the Hermes way, core/tools/prompt.py).

A forced call (a named function, or "required") is held by a grammar, so it parses and its arguments validate
whatever the model would have written; with "auto" the model decides, and a 135M model calls a tool when asked to
copy a call (as tests/core/tools/test_tool_loop.py does). Every reply is greedy or seeded: nothing depends on speed."""

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
from llamadesk.core.tools.builtin import calculator_tool
from llamadesk.core.tools.prompt import call_id
from llamadesk.paths import get_paths
from llamadesk.server.backend import EngineThreadBackend
from llamadesk.server.protocol import CallSplitter, parse_messages
from llamadesk.server.runner import ServerConfig, ServerRunner
from tests.core.tools.test_tools_prompt import NATIVE, renderer

KEY = "test-key-tools"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "pattern": "^[A-Za-z ]{1,20}$"},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The current weather in a city.", "parameters": WEATHER_SCHEMA},
}
CALCULATOR = calculator_tool().definition()
NAMED = {"type": "function", "function": {"name": "get_weather"}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
COPY = 'Copy this text exactly: <tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'


@pytest.fixture
def server(starter_model: Path) -> Iterator[ServerRunner]:
    """Per test: the history it records goes to the test's own LLAMADESK_HOME."""
    backend = EngineThreadBackend(LlamaCppEngine, params=SamplingParams(max_tokens=120), record_history=True)
    backend.start(LoadOptions(starter_model, n_ctx=2048, n_threads=2))
    runner = ServerRunner(backend, ServerConfig(port=0, api_key=KEY))
    runner.start()
    yield runner
    runner.stop()
    backend.close()


@pytest.fixture
def client(server: ServerRunner) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=300)


def create(client: openai.OpenAI, **kw: Any) -> Any:
    """chat.completions.create with the test's defaults (untyped: the tests send hostile values too)."""
    kw.setdefault("model", "m")
    kw.setdefault("messages", ASK)
    return client.chat.completions.create(**kw)


def function(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def streamed(chunks: Any) -> tuple[str, dict[int, dict[str, str]], list[Any]]:
    """The content, the calls (by index, their parts joined as a client joins them) and the finish reasons."""
    content, calls, reasons = "", {}, []  # type: ignore[var-annotated]
    for chunk in chunks:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for part in choice.delta.tool_calls or []:
                call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += part.id or ""
                call["name"] += (part.function and part.function.name) or ""
                call["arguments"] += (part.function and part.function.arguments) or ""
            reasons.append(choice.finish_reason)
    return content, calls, [r for r in reasons if r]


def test_a_named_function_is_a_call_whose_arguments_validate_streamed_and_not(client: openai.OpenAI) -> None:
    for seed in range(3):
        reply = create(client, tools=[WEATHER, CALCULATOR], tool_choice=NAMED, seed=seed, temperature=1.0)
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None  # the call's text is not also the content
        [call] = choice.message.tool_calls or []
        assert call.type == "function" and call.function.name == "get_weather" and call.id
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, WEATHER_SCHEMA)

        content, calls, reasons = streamed(
            create(client, tools=[WEATHER, CALCULATOR], tool_choice=NAMED, seed=seed, temperature=1.0, stream=True)
        )
        assert reasons == ["tool_calls"] and "<tool_call>" not in content and not content.strip()
        assert list(calls) == [0] and calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
        jsonschema.validate(json.loads(calls[0]["arguments"]), WEATHER_SCHEMA)


def test_required_calls_one_of_the_tools(client: openai.OpenAI) -> None:
    tools = {"get_weather": WEATHER_SCHEMA, "calculator": CALCULATOR["function"]["parameters"]}
    for seed in range(3):
        reply = create(client, tools=[WEATHER, CALCULATOR], tool_choice="required", seed=seed, temperature=1.0)
        [call] = reply.choices[0].message.tool_calls or []
        assert reply.choices[0].finish_reason == "tool_calls"
        jsonschema.validate(json.loads(call.function.arguments), tools[call.function.name])


def test_auto_parses_the_call_the_model_writes_and_none_offers_no_tools(client: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": COPY}]
    reply = create(client, messages=ask, tools=[CALCULATOR], temperature=0, max_tokens=60)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "calculator"
    assert json.loads(call.function.arguments) == {"expression": "6*7"}
    assert "<tool_call>" not in (choice.message.content or "") and "6*7" not in (choice.message.content or "")

    content, calls, reasons = streamed(
        create(client, messages=ask, tools=[CALCULATOR], temperature=0, max_tokens=60, stream=True)
    )
    assert reasons == ["tool_calls"] and "<tool_call>" not in content and "6*7" not in content
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [("calculator", {"expression": "6*7"})]

    off = create(client, messages=ask, tools=[CALCULATOR], tool_choice="none", temperature=0, max_tokens=60)
    assert off.choices[0].message.tool_calls is None and off.choices[0].finish_reason != "tool_calls"
    assert reply.usage and off.usage and off.usage.prompt_tokens < reply.usage.prompt_tokens  # not offered


def test_an_agent_loop_sends_the_result_back_and_gets_an_answer(client: openai.OpenAI) -> None:
    """call → the client runs it → role tool → the model answers from the result; the history records it all."""
    ask = [{"role": "user", "content": "What is 6*7? Use the calculator, then tell me the result."}]
    named = {"type": "function", "function": {"name": "calculator"}}
    first = create(client, messages=ask, tools=[CALCULATOR], temperature=0, tool_choice=named)
    [call] = first.choices[0].message.tool_calls or []
    assert "expression" in json.loads(call.function.arguments)
    messages: list[Any] = [*ask, first.choices[0].message.model_dump(exclude_none=True),
                           {"role": "tool", "tool_call_id": call.id, "content": "6*7 = 1234567"}]  # fmt: skip
    final = create(client, messages=messages, tools=[CALCULATOR], temperature=0)
    assert final.choices[0].finish_reason == "stop" and not final.choices[0].message.tool_calls
    assert "1234567" in (final.choices[0].message.content or "")  # it read the result
    assert final.usage and first.usage and final.usage.prompt_tokens > first.usage.prompt_tokens

    with History(get_paths().history_db) as history:
        first_conv, final_conv = sorted(history.list_conversations(), key=lambda c: c.id)[-2:]
        [record] = (history.messages(first_conv.id)[-1].receipt or {})["tool_calls"]
        sent = history.messages(final_conv.id)
    assert record["id"] == call.id and record["name"] == "calculator"
    assert record["arguments"] == json.loads(call.function.arguments)
    assert "<tool_call>" in sent[-3].content and "1234567" in sent[-2].content  # the call and the result, as sent


BIG = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(900)}}  # 20k characters
ENUM = {"type": "object", "properties": {"v": {"enum": list(range(1500))}}}
LONG = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 10**9}}}
RECURSIVE = {
    "type": "object",
    "$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}}},
    "properties": {"n": {"$ref": "#/$defs/n"}},
}
HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"tools": "calculator"}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "no spaces allowed"}}]}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "x", "parameters": {"type": 12}}}]}, "tools"),
    ({"tools": [WEATHER, WEATHER]}, "tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "launch_rockets"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [function("big", BIG)]}, "tools"),
    ({"tools": [function("e", ENUM)], "tool_choice": "required"}, "tools"),
    ({"tools": [function("m", LONG)], "tool_choice": {"type": "function", "function": {"name": "m"}}}, "tools"),
    ({"tools": [function("r", RECURSIVE)], "tool_choice": "required"}, "tools"),
    ({"tools": [WEATHER] * 200}, "tools"),
]


@pytest.mark.parametrize(("extra", "param"), HOSTILE)
def test_hostile_tools_are_a_400_with_one_sentence(client: openai.OpenAI, extra: dict[str, Any], param: str) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            create(client, stream=stream, **extra)
        error = info.value.body
        assert isinstance(error, dict) and error["param"] == param
        message = error["message"]
        assert message.endswith(".") and "\n" not in message and len(message) < 300


def test_a_tool_result_must_answer_a_call(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        create(client, messages=[*ASK, {"role": "tool", "tool_call_id": "nope", "content": "sunny"}])
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "messages[1].tool_call_id"


SPLITS = [
    # (the reply, the content a client gets, the calls)
    ('Sure. <tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', "Sure. ", [("f", {"a": 1})]),
    (
        '[TOOL_CALLS][{"name": "f", "arguments": {}}, {"name": "g", "arguments": {"b": "x"}}]',
        "",
        [("f", {}), ("g", {"b": "x"})],
    ),
    ('<|channel|>commentary to=functions.f <|constrain|>json<|message|>{"q": 2}<|call|>', "", [("f", {"q": 2})]),
    ("a < b and [TOOL not a call", "a < b and [TOOL not a call", []),
    ('<tool_call>\n{"name": "f", "argu', '<tool_call>\n{"name": "f", "argu', []),  # cut off: kept as text
]


@pytest.mark.parametrize(("reply", "content", "calls"), SPLITS)
def test_call_text_never_reaches_the_content(reply: str, content: str, calls: list[Any]) -> None:
    """Fed a character at a time (the worst split of a marker): the content that goes out before the end and at
    the end holds no call's text; the calls are parsed in every format core's parser reads."""
    splitter = CallSplitter(True)
    sent = "".join(splitter.feed(ch) for ch in reply)
    rest, found = splitter.finish()
    assert sent + rest == content
    assert [(c.name, c.arguments) for c in found] == calls
    off = CallSplitter(False)  # tools not offered: the text is the content, as written
    assert "".join(off.feed(ch) for ch in reply) + off.finish()[0] == reply


def test_a_requests_calls_and_results_reach_a_template_that_knows_tools_as_its_own() -> None:
    """The client's assistant tool_calls and tool result, through parse_messages and core/tools/prompt.py, come to a
    template that knows tools (Qwen's way) as `tool_calls` with the id the result answers, and the result as role
    tool; the call's text is not left in the assistant's content."""
    messages = parse_messages([
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_client_1", "type": "function",
         "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'}}]},
        {"role": "tool", "tool_call_id": "call_client_1", "content": "42"},
    ])  # fmt: skip
    assert messages[-1] == {"role": "tool", "content": "42", "tool_call_id": call_id(0), "name": "calculator"}
    prompt = renderer(NATIVE).render(messages, tools=[CALCULATOR])
    assert (
        "<|im_start|>assistant\n<tool_call>\n"
        f'{{"name": "calculator", "arguments": {{"expression": "6*7"}}, "id": "{call_id(0)}"}}\n</tool_call><|im_end|>'
    ) in prompt
    assert "<tool_response>\n42\n</tool_response>" in prompt

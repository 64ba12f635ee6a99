"""A reply's tool calls, parsed once in core, in the three ways model families write them; malformed ones keep their
text and get a sentence, and a reply without any costs nothing."""

from __future__ import annotations

from pathlib import Path

from llamadesk.core.conversation.tool_calls import may_have_tool_calls, tool_calls


def test_hermes_and_qwen_blocks() -> None:
    reply = (
        "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n"
        '<tool_call>{"name": "clock", "arguments": "{\\"zone\\": \\"CET\\"}"}</tool_call>'
    )
    first, second = tool_calls(reply)
    assert (first.name, first.arguments, first.ok) == ("get_weather", {"city": "Oslo"}, True)
    assert reply[first.start : first.end].startswith("<tool_call>") and first.end <= second.start
    assert (second.name, second.arguments) == ("clock", {"zone": "CET"})  # arguments written as a JSON string


def test_gpt_oss_commentary_to_a_function() -> None:
    reply = (
        "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.get_weather <|constrain|>json<|message|>{"location": "San Francisco"}<|call|>'
    )
    (call,) = tool_calls(reply)
    assert (call.name, call.arguments, call.ok) == ("get_weather", {"location": "San Francisco"}, True)


def test_mistral_list() -> None:
    reply = '[TOOL_CALLS][{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "neg", "arguments": {"x": 3}}]'
    assert [(c.name, c.arguments) for c in tool_calls(reply)] == [("add", {"a": 1, "b": 2}), ("neg", {"x": 3})]


def test_malformed_calls_keep_their_text_and_say_why() -> None:
    broken, unnamed, unfinished = tool_calls(
        '<tool_call>{"name": "x", "arguments": {oops}}</tool_call>'
        '<tool_call>{"arguments": {}}</tool_call>'
        '<tool_call>{"name": "y"'
    )
    assert not broken.ok and "not valid JSON" in broken.error and "{oops}" in broken.raw
    assert unnamed.error == "The tool call names no tool."
    assert unfinished.error == "The tool call is not finished."
    (bad,) = tool_calls("[TOOL_CALLS] not json")
    assert "not valid JSON" in bad.error
    (odd,) = tool_calls('<tool_call>{"name": "rm -rf /", "arguments": {}}</tool_call>')
    assert odd.error == "The tool call names no tool."  # a name is a plain identifier, never a command


def test_a_reply_without_calls() -> None:
    assert not may_have_tool_calls("Just an answer about <tool> use.")
    assert tool_calls("Just an answer about <tool> use.") == []


def test_the_receipt_records_the_calls(tmp_path: Path) -> None:
    from llamadesk.core.conversation.lifecycle import ReplyWriter
    from llamadesk.core.conversation.turn import Turn
    from llamadesk.core.history import History

    history = History(tmp_path / "h.sqlite3")
    try:
        cid = history.create_conversation("c").id
        turn = Turn(cid, ReplyWriter.begin(history, cid))
        turn.append('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>')
        assert turn.receipt({})["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
        assert "tool_calls" not in Turn(cid, ReplyWriter.begin(history, cid)).receipt({})
    finally:
        history.close()

"""The turn's tool loop (Turn.run with tools) on the real starter model (SmolLM2-135M-Instruct, greedy): asked to
copy a call, the model writes `<tool_call>…</tool_call>` itself; the loop runs the tool (when allowed), sends the
result back and the model generates again; the history's reply and its receipt record the call and its result.

A 135M model does not decide to call tools on its own, so the prompt asks it to write the call: the call, its
parsing, the approval, the run, the result in the next prompt and the next generation are all real."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llamadesk.core.conversation.turn import Planner, Turn, begin_turn
from llamadesk.core.engines.api import LoadOptions, StreamEvent
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.history import History
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.tools.approval import Approval, deny_all
from llamadesk.core.tools.builtin import calculator_tool
from llamadesk.core.tools.spec import Tool, ToolBox
from llamadesk.core.tools.use import DENIED, STEP_LIMIT, ToolEvent, ToolUse

COPY = 'Copy this text exactly: <tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'
PARAMS = SamplingParams(temperature=0.0, seed=1, max_tokens=60)


@pytest.fixture(scope="module")
def starter(starter_model: Path) -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine()
    engine.load(LoadOptions(starter_model, n_ctx=2048, n_threads=2))
    yield engine
    engine.close()


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "history.sqlite3")
    yield h
    h.close()


class Prompts:
    """The engine's stream, recording the messages each generation was asked with."""

    def __init__(self, engine: LlamaCppEngine) -> None:
        self.engine, self.sent = engine, []  # type: ignore[var-annotated]

    def __call__(self, messages: list[dict[str, str]], *args: Any, **kw: Any) -> Iterable[StreamEvent]:
        self.sent.append([dict(m) for m in messages])
        return self.engine.stream(messages, *args, **kw)


def turn_for(history: History, prompt: str = COPY) -> Turn:
    cid = history.create_conversation("tools", model="starter").id
    return begin_turn(history, Planner(n_ctx=2048), cid, prompt, PARAMS, "")


def test_the_model_calls_the_calculator_and_answers_after_the_result(starter: LlamaCppEngine, history: History) -> None:
    events: list[ToolEvent] = []
    turn = turn_for(history)
    stream = Prompts(starter)
    done = turn.run(
        stream, PARAMS, threading.Event(), tools=ToolUse(ToolBox([calculator_tool()]), on_event=events.append)
    )

    assert [(e.kind, e.call.name) for e in events] == [("asked", "calculator"), ("result", "calculator")]
    assert events[1].result is not None and events[1].result.text == "42"
    assert len(stream.sent) == 2  # call → run → result back → generate again
    second = stream.sent[1]
    assert second[-2]["role"] == "assistant" and '"expression": "6*7"' in second[-2]["content"]
    assert second[-1] == {"role": "tool", "content": "42", "name": "calculator", "tool_call_id": "call00000"}
    # The tools were offered through the prompt: the first step's prompt is longer than the same without tools.
    assert done.stats.prompt_tokens > starter.count_tokens(second[:-2])

    reply = history.get_message(turn.reply.message_id)
    assert reply.content.startswith("<tool_call>") and "</tool_call>" in reply.content
    assert len(reply.content) > reply.content.index("</tool_call>") + len("</tool_call>")  # the second step's text
    receipt = reply.receipt or {}
    assert receipt["tool_steps"] == 2
    [record] = receipt["tool_calls"]
    assert record["name"] == "calculator" and record["arguments"] == {"expression": "6*7"}
    assert record["result"] == "42" and record["status"] == "ok"


def test_a_denied_call_does_not_run_and_the_model_is_told(starter: LlamaCppEngine, history: History) -> None:
    ran: list[dict[str, Any]] = []
    spy = calculator_tool()
    recording = Tool(spy.name, spy.description, spy.parameters, lambda args: ran.append(args) or "42")
    turn = turn_for(history)
    stream = Prompts(starter)
    turn.run(stream, PARAMS, threading.Event(), tools=ToolUse(ToolBox([recording]), Approval(deny_all)))
    assert ran == []
    assert stream.sent[1][-1]["content"] == DENIED  # the model reads why, and the turn goes on
    [record] = (history.get_message(turn.reply.message_id).receipt or {})["tool_calls"]
    assert record["status"] == "denied"


def test_the_step_limit_stops_the_loop(starter: LlamaCppEngine, history: History) -> None:
    turn = turn_for(history)
    stream = Prompts(starter)
    turn.run(stream, PARAMS, threading.Event(), tools=ToolUse(ToolBox([calculator_tool()]), max_steps=0))
    assert len(stream.sent) == 1
    [record] = (history.get_message(turn.reply.message_id).receipt or {})["tool_calls"]
    assert record["status"] == "skipped" and record["result"] == STEP_LIMIT


def test_the_model_calls_a_tool_of_a_real_mcp_server(starter: LlamaCppEngine, history: History) -> None:
    from llamadesk.core.tools.mcp_config import ServerConfig
    from llamadesk.core.tools.mcp_host import READY, McpHost

    script = str(Path(__file__).resolve().parents[2] / "mcp_test_server.py")
    with McpHost([ServerConfig("test", command=sys.executable, args=(script, "stdio"))], start_timeout=180,
                 call_timeout=180) as host:  # fmt: skip
        host.start()
        assert host.wait("test").status == READY
        add = [t for t in host.tools("test") if t.name == "add"]
        turn = turn_for(
            history, 'Copy this text exactly: <tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
        )
        stream = Prompts(starter)
        turn.run(stream, PARAMS, threading.Event(), tools=ToolUse(ToolBox(add)))
    [record] = (history.get_message(turn.reply.message_id).receipt or {})["tool_calls"]
    assert (record["name"], record["arguments"], record["result"]) == ("add", {"a": 2, "b": 3}, "5")
    assert stream.sent[1][-1]["content"] == "5"

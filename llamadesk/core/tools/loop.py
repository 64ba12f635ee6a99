"""The tool loop, written once: one reply's generations with the calls it asks for run between them.

It is a stream like an engine's: each step's text goes out as Token events (a paragraph break before the next step),
the calls a step asks for are run (each approved first: core/tools/approval.py; the window asks on its GUI thread,
ui/chat/tool_approval.py, the CLI on the terminal), and the one Done at the end carries the receipt's `tool_calls`
(each call with its result) and `tool_steps`. Turn.run (core/conversation/turn.py) consumes it and writes the
history as it streams (the CLI, the server); the window's engine thread (ui/workers/engine_host.py) sends it to the
GUI thread, which writes the history from its signals.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from llamadesk.core.conversation.tool_calls import tool_calls
from llamadesk.core.engines.api import Done, FinishReason, Message, StreamEvent, Token
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.tools.approval import Approval
from llamadesk.core.tools.prompt import tool_message
from llamadesk.core.tools.use import STEP_LIMIT, ToolUse


def for_request(tools: ToolUse, cancel: threading.Event) -> ToolUse:
    """`tools` for one request: an ask that takes the request's cancel event (the window's: Stop answers deny) gets
    it; the user's "always" answers stay shared with the conversation's ToolUse."""
    ask = tools.approval.ask
    if getattr(ask, "takes_cancel", False):
        approval = Approval(lambda call, tool: ask(call, tool, cancel), always=tools.approval.always)  # type: ignore[call-arg]
        return dataclasses.replace(tools, approval=approval)
    return tools


def stream_with_tools(
    stream: Callable[..., Iterable[StreamEvent]], messages: Sequence[Message], params: SamplingParams,
    cancel: threading.Event, tools: ToolUse, **options: Any,
) -> Iterator[StreamEvent]:  # fmt: skip
    """Streams a reply whose steps may call `tools`: call → run → result back → generate again, at most
    `tools.max_steps` times (then a step's calls are recorded as not run). Ends with one Done (the last step's)."""
    use = for_request(tools, cancel)
    options = {**options, "tools": use.box.definitions()}
    tool_messages: list[Message] = []
    records: list[dict[str, Any]] = []
    steps = 0
    while True:
        done: Done | None = None
        parts: list[str] = []
        events = stream([*messages, *tool_messages], params, cancel, **options)
        try:
            for event in events:
                if isinstance(event, Token):
                    parts.append(event.text)
                    yield event
                else:
                    done = event
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
        if done is None:
            return  # the caller reports a stream without its end
        step_text = "".join(parts)
        calls = tool_calls(step_text) if done.stats.finish_reason is FinishReason.STOP else []
        if not calls:
            break
        skip = STEP_LIMIT if steps >= use.max_steps else ""
        results = use.run_calls(calls, len(records), cancel, skip=skip)
        first = len(records)
        records += [r.record() for r in results]
        if skip or cancel.is_set():
            break
        steps += 1
        tool_messages.append({"role": "assistant", "content": step_text})
        tool_messages += [tool_message(r.name, r.text, first + k) for k, r in enumerate(results)]
        if not step_text.endswith("\n"):
            yield Token("\n\n")  # the next step's text starts a paragraph (as Turn.run writes it)
        options.pop("mode", None)  # a continued reply's later steps are new replies to the results
    receipt = dict(done.receipt)
    if records:
        receipt["tool_calls"], receipt["tool_steps"] = records, steps + 1
    yield Done(done.stats, receipt)

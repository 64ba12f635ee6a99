"""The tools of one turn (or one conversation) and how its calls are run: the ToolBox, the user's approval, the
step limit, and an observer a front end gives to show each call as it is asked for, runs and ends.

The turn's loop (core/conversation/turn.py, Turn.run) calls `run_calls` after each step whose reply asks for tools,
in the thread that runs the turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llamadesk.core.conversation.tool_calls import ToolCall
from llamadesk.core.tools.approval import Approval, allow_all
from llamadesk.core.tools.spec import ToolBox, ToolResult

MAX_STEPS = 8  # generations after the first that a turn may make with results; then its calls are not run
DENIED = "The user did not allow this call."
STEP_LIMIT = "The call was not run: the turn reached its limit of tool steps."
CANCELLED = "The call was not run: the user stopped the reply."


@dataclass(frozen=True)
class ToolEvent:
    """A call's progress, for a front end: "asked" (shown before approval), "result" (with its result). `n` is the
    call's number in the turn (0, 1, …), the index of its record in the receipt's `tool_calls`."""

    kind: str
    n: int
    call: ToolCall
    result: ToolResult | None = None


@dataclass
class ToolUse:
    box: ToolBox
    approval: Approval = field(default_factory=lambda: Approval(allow_all))
    max_steps: int = MAX_STEPS
    on_event: Callable[[ToolEvent], None] | None = None

    def _emit(self, event: ToolEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def run_calls(
        self, calls: Sequence[ToolCall], first: int, cancel: threading.Event | None = None, *, skip: str = ""
    ) -> list[ToolResult]:
        """Runs a step's calls in order, each approved first (a call that cannot run is not asked about: it gives
        its sentence). `first`: the number of the first call in the turn. `skip`: why none may run."""
        results: list[ToolResult] = []
        for k, call in enumerate(calls):
            n = first + k
            self._emit(ToolEvent("asked", n, call))
            tool = self.box.get(call.name) if call.ok else None
            if skip or (cancel is not None and cancel.is_set()):
                result = ToolResult(call.name, call.arguments, skip or CANCELLED, "skipped")
            elif tool is not None and not self.approval.allows(call, tool):
                result = ToolResult(call.name, call.arguments, DENIED, "denied")
            else:
                result = self.box.run(call, cancel)
            results.append(result)
            self._emit(ToolEvent("result", n, call, result))
        return results

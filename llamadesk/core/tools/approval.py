"""Every call is shown before it runs: the front end's callback answers allow once, always for this tool, or deny.

The callback is called in the thread that runs the turn (the CLI's main thread; in the window, the engine's thread,
which must wait for the user's answer from the GUI thread). "Always" holds for the ToolUse's life: a conversation
in the window, one `llamadesk chat`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from llamadesk.core.conversation.tool_calls import ToolCall
from llamadesk.core.tools.spec import Tool


class Decision(str, Enum):
    ALLOW_ONCE = "once"
    ALLOW_ALWAYS = "always"
    DENY = "deny"


Ask = Callable[[ToolCall, Tool], Decision]  # shows the call (tool, arguments) and returns the user's answer


def allow_all(_call: ToolCall, _tool: Tool) -> Decision:
    """`llamadesk chat --yes`: every call runs without asking."""
    return Decision.ALLOW_ONCE


def deny_all(_call: ToolCall, _tool: Tool) -> Decision:
    """Where no one can be asked (no terminal): nothing runs."""
    return Decision.DENY


@dataclass
class Approval:
    """The user's answers so far, and how to ask for the next."""

    ask: Ask
    always: set[str] = field(default_factory=set)  # tools allowed for the rest of the conversation
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allows(self, call: ToolCall, tool: Tool) -> bool:
        with self._lock:
            if call.name in self.always:
                return True
        decision = self.ask(call, tool)
        if decision is Decision.ALLOW_ALWAYS:
            with self._lock:
                self.always.add(call.name)
        return decision in (Decision.ALLOW_ONCE, Decision.ALLOW_ALWAYS)

"""A reply's tool calls as shown: each call the model wrote becomes a block, folded to one line (the tool, how it
went) or unfolded (its arguments and its result), the way reasoning folds (model.py reasoning_view). The results
come from the reply's receipt (`tool_calls`, the n-th call in the reply's text is its n-th record).

Arguments and results are untrusted: they go into fenced code blocks (a fence longer than any run of backticks in
them), which the markdown renderer shows as literal text: inert, like a reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from llamadesk.core.conversation.tool_calls import tool_calls

SHOWN_CHARS = 4_000  # of a result or the arguments in the bubble (the receipt has it all)
STATUS_WORDS = {"ok": "done", "error": "failed", "denied": "denied", "skipped": "not run"}
_BACKTICKS = re.compile(r"`{3,}")


def fenced(text: str) -> str:
    if len(text) > SHOWN_CHARS:
        text = text[:SHOWN_CHARS] + "\n[…]"
    fence = "`" * max(3, max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    return f"{fence}\n{text}\n{fence}"


def block(name: str, record: dict[str, Any] | None, *, unfolded: bool) -> str:
    if record is None:
        return f"*🔧 {name}…*"  # streaming: the call is being asked about or run
    status = STATUS_WORDS.get(str(record.get("status")), str(record.get("status") or ""))
    head = f"*🔧 {name}: {status}*"
    if not unfolded:
        return head
    arguments = json.dumps(record.get("arguments", {}), ensure_ascii=False, indent=2)
    return f"{head}\n\nArguments:\n\n{fenced(arguments)}\n\nResult:\n\n{fenced(str(record.get('result', '')))}"


def with_tool_blocks(text: str, records: Sequence[dict[str, Any]], *, unfolded: bool) -> str:
    """`text` with each call written in it replaced by its block."""
    calls = tool_calls(text)
    if not calls:
        return text
    out: list[str] = []
    at = 0
    for n, call in enumerate(calls):
        record = records[n] if n < len(records) else None
        name = re.sub(r"[^\w.\-]", "", call.name) or "tool"  # a name in markdown emphasis: nothing that formats
        out.append(text[at : call.start])
        out.append(f"\n\n{block(name, record, unfolded=unfolded)}\n\n")
        at = call.end
    out.append(text[at:])
    return "".join(out)

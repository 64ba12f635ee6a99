"""The tool loop on the starter model (core/conversation/turn.py with core/tools): the time from a call's result to
the first token of the reply that reads it, against the raw library doing the same on the same Llama in the same
run (the prompt with the call and its result, its prefix already evaluated), A and B alternating; and an MCP tool
call's round trip over stdio (tests/mcp_test_server.py, the SDK's MCPServer)."""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import alternate, machine, model_path, note, ratio_summary, wanted

BENCHMARKS = ("tool_result_ttft", "mcp_call")
N_CTX = 2048
COPY = 'Copy this text exactly: <tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'
SERVER = Path(__file__).resolve().parents[1] / "tests" / "mcp_test_server.py"


def bench_result_ttft(model: Path, threads: int, rounds: int) -> dict[str, Any]:
    from llamadesk.core.conversation.turn import Planner, begin_turn
    from llamadesk.core.engines.api import GenerationMode, LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine
    from llamadesk.core.engines.local_stream import common_prefix
    from llamadesk.core.history import History
    from llamadesk.core.sampling import SamplingParams
    from llamadesk.core.tools.builtin import calculator_tool
    from llamadesk.core.tools.spec import Tool, ToolBox
    from llamadesk.core.tools.use import ToolEvent, ToolUse

    engine = LlamaCppEngine()
    engine.load(LoadOptions(model, n_ctx=N_CTX, n_threads=threads))
    history = History(Path(":memory:"))
    params = SamplingParams(temperature=0.0, seed=1, max_tokens=40)
    # A new result each round (the call is the same: the model copies it reliably): no saved prompt state can hold
    # this round's prompt with its result already evaluated.
    spec = calculator_tool()
    box = ToolBox([Tool(spec.name, spec.description, spec.parameters, lambda _args: str(1000 + len(sent)))])
    sent: list[list[dict[str, str]]] = []
    new_tokens: dict[str, list[int]] = {"ours": [], "raw": []}  # prompt tokens evaluated for the reply to the result

    def ours() -> float:
        """LlamaDesk: from the result event to the first token of the next step."""
        marks: dict[str, float] = {}

        def on_event(event: ToolEvent) -> None:
            if event.kind == "result":
                marks["result"] = time.perf_counter()

        def on_text(text: str) -> None:
            if "result" in marks and "first" not in marks and text.strip():
                marks["first"] = time.perf_counter()

        def stream(messages: Any, *a: Any, **kw: Any) -> Any:
            sent.append(list(messages))
            return engine.stream(messages, *a, **kw)

        cid = history.create_conversation("bench", model="starter").id
        turn = begin_turn(history, Planner(n_ctx=N_CTX), cid, COPY, params, "")
        done = turn.run(stream, params, threading.Event(), on_text=on_text, tools=ToolUse(box, on_event=on_event))
        new_tokens["ours"].append(done.stats.prompt_tokens - done.stats.cached_tokens)
        if "first" not in marks:
            raise RuntimeError("the starter model did not call the calculator")
        return marks["first"] - marks["result"]

    def raw() -> float:
        """The library: the first step's prompt and reply evaluated, then the prompt with the result, to its first
        sampled token (llama.generate reuses the evaluated prefix, as LlamaDesk's stream does)."""
        llama = engine._llama
        step1, step2 = sent[-2], sent[-1]
        tools = box.definitions()
        first = engine._prompt_tokens(step1, GenerationMode.CHAT, tools)
        reply = llama.tokenize(step2[-2]["content"].encode(), add_bos=False, special=True)
        llama.reset()
        llama.eval(first + reply)
        second = engine._prompt_tokens(step2, GenerationMode.CHAT, tools)
        new_tokens["raw"].append(len(second) - common_prefix(list(llama.input_ids[: llama.n_tokens]), second))
        started = time.perf_counter()
        for _token in llama.generate(second, temp=0.0):
            break
        return time.perf_counter() - started

    ours()  # warm: the first round loads the caches and gives raw() its prompts
    mine, theirs = [], []
    try:
        for i in range(rounds):
            a, b = alternate(i, ours, raw)
            mine.append(a)
            theirs.append(b)
    finally:
        engine.close()
        history.close()
    return {
        "benchmark": "tool_result_ttft",
        "value": round(statistics.median(mine) * 1000, 1),
        "unit": "ms from a tool's result to the first token of the reply that reads it (median)",
        "raw_library_ms": round(statistics.median(theirs) * 1000, 1),
        **ratio_summary([b / a for a, b in zip(mine, theirs, strict=True)]),
        "ratio_means": "raw library time / LlamaDesk time (1.0: as fast as the library)",
        "new_prompt_tokens": {k: statistics.median(v) for k, v in new_tokens.items() if v},
        "rounds": rounds,
        "threads": threads,
    }


def bench_mcp_call(rounds: int) -> dict[str, Any]:
    from llamadesk.core.tools.mcp_config import ServerConfig
    from llamadesk.core.tools.mcp_host import READY, McpHost

    with McpHost([ServerConfig("b", command=sys.executable, args=(str(SERVER), "stdio"))]) as host:
        started = time.perf_counter()
        host.start()
        if host.wait("b").status != READY:
            raise RuntimeError(host.state("b").error)
        start_s = time.perf_counter() - started
        times = []
        for k in range(rounds):
            t0 = time.perf_counter()
            host.call("b", "add", {"a": k, "b": 1})
            times.append(time.perf_counter() - t0)
    return {"benchmark": "mcp_call", "value": round(statistics.median(times) * 1000, 2),
            "unit": "ms per MCP tool call over stdio (median)", "max_ms": round(max(times) * 1000, 2),
            "start_s": round(start_s, 2), "rounds": rounds}  # fmt: skip


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from llamadesk.core.engines.local import default_threads

    quick = getattr(args, "quick", False)
    records: list[dict[str, Any]] = []
    if wanted(args, "tool_result_ttft"):
        note("tool_result_ttft: the calculator loop on the starter model")
        records.append({**bench_result_ttft(model_path(args), default_threads(), 3 if quick else 9), **machine()})
    if wanted(args, "mcp_call"):
        records.append({**bench_mcp_call(20 if quick else 200), **machine()})
    return records

"""Engine figures against bare llama-cpp-python: stream speed, multi-turn TTFT, cold start and load, memory."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import alternate, machine, model_path, note, ratio_summary, wanted

BENCHMARKS = ("stream", "ttft_multiturn", "ttft_overflow", "ttft_prefill", "cold_start", "memory", "token_probs")
N_CTX = 2048
SEED = 1234
PROMPT = [{"role": "user", "content": "Write a long story about a llama who learns to write computer programs."}]
# ~150 tokens of user text per turn: ten turns make about 2k tokens of history.
PARAGRAPH = (
    "Here are my notes for today. The garden needs water in the morning, before the sun is high, and the tomatoes "
    "want a stake each because the wind bends them. The shed door sticks when it rains; a little oil on the hinge "
    "and a new latch would fix it. My neighbour lends me her ladder on weekends, so the gutters can wait until "
    "Saturday. The bees came back to the lavender, which means the hive by the fence survived the cold nights. "
    "I still have to write the letter to the council about the path behind the school, where the lamps are out."
)


def _params(max_tokens: int) -> Any:
    from llamadesk.core.sampling import SamplingParams

    return SamplingParams(max_tokens=max_tokens, seed=SEED)


def _timed(events: Any, text_of: Callable[[Any], str | None]) -> dict[str, float]:
    """Consumes a stream; times every piece of text as the consumer receives it."""
    started = time.perf_counter()
    stamps = [time.perf_counter() for event in events if text_of(event)]
    n = len(stamps)
    if n < 3:
        return {"tokens_per_s": 0.0, "tokens_per_s_median_gap": 0.0, "pieces": n, "ttft_s": 0.0}
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return {
        "tokens_per_s": (n - 1) / (stamps[-1] - stamps[0]),
        # 1 / the median gap between tokens: a stall while another process holds the cores moves it little
        "tokens_per_s_median_gap": 1 / statistics.median(gaps),
        "pieces": n,
        "ttft_s": stamps[0] - started,
    }


def _engine_piece(event: Any) -> str | None:
    from llamadesk.core.engines.api import Token

    return event.text if isinstance(event, Token) else None


def _chunk_piece(chunk: Any) -> str | None:
    content: str | None = chunk["choices"][0]["delta"].get("content")
    return content


def _load_pair(model: Path, threads: int, n_ctx: int) -> tuple[Any, Any, bool]:
    """LlamaDesk's engine with its defaults, and a bare Llama() with the same settings (flash attention as the
    engine's "auto" resolved)."""
    import llama_cpp

    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    engine = LlamaCppEngine()
    info = engine.load(LoadOptions(model, n_ctx=n_ctx, n_threads=threads))
    flash = info.flash_attn == "on"
    bare = llama_cpp.Llama(
        model_path=str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, flash_attn=flash, verbose=False
    )
    return engine, bare, flash


def bench_stream(model: Path, threads: int, rounds: int, max_tokens: int) -> dict[str, Any]:
    engine, bare, flash = _load_pair(model, threads, N_CTX)
    params = _params(max_tokens)
    sampling = {k: v for k, v in params.to_dict().items() if k not in ("repeat_last_n", "seed", "max_tokens")}

    def run_engine() -> dict[str, float]:
        return _timed(engine.stream(PROMPT, params), _engine_piece)

    def run_bare() -> dict[str, float]:
        chunks = bare.create_chat_completion(PROMPT, stream=True, seed=SEED, max_tokens=max_tokens, **sampling)
        return _timed(chunks, _chunk_piece)

    run_engine(), run_bare()  # warm both: first-touch page faults of the weights, caches
    ours, theirs, ratios, gap_ratios = [], [], [], []
    for i in range(rounds):
        a, b = alternate(i, run_engine, run_bare)
        ours.append(a)
        theirs.append(b)
        ratios.append(a["tokens_per_s"] / b["tokens_per_s"])
        gap_ratios.append(a["tokens_per_s_median_gap"] / b["tokens_per_s_median_gap"])
        note(f"stream round {i + 1}: {a['tokens_per_s']:.1f} vs {b['tokens_per_s']:.1f} tokens/s")
    engine.close()
    bare.close()
    summary = ratio_summary(ratios)
    return {
        "benchmark": "stream",
        "value": statistics.median(r["tokens_per_s"] for r in ours),
        "reference": statistics.median(r["tokens_per_s"] for r in theirs),
        "unit": "tokens/s",
        "reference_is": "llama-cpp-python create_chat_completion(stream=True), same model/threads/context/seed",
        **summary,
        "goal": "ratio >= 0.97",
        "ok": summary["ratio"] >= 0.97,
        "median_gap": {
            "value": statistics.median(r["tokens_per_s_median_gap"] for r in ours),
            "reference": statistics.median(r["tokens_per_s_median_gap"] for r in theirs),
            **ratio_summary(gap_ratios),
        },
        "pieces": [r["pieces"] for r in ours],
        "reference_pieces": [r["pieces"] for r in theirs],
        "threads": threads,
        "n_ctx": N_CTX,
        "flash_attn": flash,
    }


def _ttft(engine: Any, messages: list[dict[str, str]], params: Any) -> tuple[float, str, Any]:
    """(time to the first text, the reply, Done) for one turn, timed as the consumer receives it."""
    from llamadesk.core.engines.api import Done

    started = time.perf_counter()
    ttft, pieces, done = 0.0, [], None
    for event in engine.stream(messages, params):
        if isinstance(event, Done):
            done = event
        elif event.text:
            ttft = ttft or time.perf_counter() - started
            pieces.append(event.text)
    return ttft, "".join(pieces), done


def bench_ttft_multiturn(model: Path, threads: int, runs: int, repeats: int, reply_tokens: int) -> dict[str, Any]:
    """A 10-turn conversation (about 2k tokens by turn 10), replies generated by the model. Turn 10 is then
    asked `repeats` times with a different user message of the same length: each time the engine reuses the
    9-turn prefix and evaluates only the new message, as the real turn 10 does. Turn 1 likewise, in a new
    chat. Each turn-10 time is paired with a turn-1 time for the ratio."""
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    engine = LlamaCppEngine()
    engine.load(LoadOptions(model, n_ctx=4096, n_threads=threads))
    params, first_token = _params(reply_tokens), _params(1)
    system = {"role": "system", "content": "You are a helpful assistant. Answer in one short paragraph."}
    _ttft(engine, [{"role": "user", "content": PARAGRAPH}], params)  # warm-up: first decode, weights paged in

    def user(tag: str) -> dict[str, str]:
        return {"role": "user", "content": f"{tag}. {PARAGRAPH} What should I do first?"}

    firsts, tenths, ratios, turn1, turn10 = [], [], [], {}, {}
    for run in range(runs):
        history = [system]
        for turn in range(1, 10):
            history.append(user(f"Run {run}, day {turn}"))
            history.append({"role": "assistant", "content": _ttft(engine, history, params)[1]})
        tens = []
        for k in range(repeats):
            ttft, _, done = _ttft(engine, [*history, user(f"Run {run}, day 10, take {k}")], first_token)
            tens.append(ttft)
            turn10 = {"prompt_tokens": done.stats.prompt_tokens, "cached_tokens": done.stats.cached_tokens}
        ones = []
        for k in range(repeats):
            ttft, _, done = _ttft(engine, [system, user(f"Run {run}, day 1, take {k}")], first_token)
            ones.append(ttft)
            turn1 = {"prompt_tokens": done.stats.prompt_tokens, "cached_tokens": done.stats.cached_tokens}
        firsts += ones
        tenths += tens
        ratios += [t / o for t, o in zip(tens, ones, strict=True)]
        note(f"ttft run {run + 1}: turn 1 {statistics.median(ones) * 1000:.0f} ms, turn 10 "
             f"{statistics.median(tens) * 1000:.0f} ms, {turn10}")  # fmt: skip
    flash = engine.info is not None and engine.info.flash_attn == "on"
    engine.close()
    summary = ratio_summary(ratios)
    floor = _library_floor(model, threads, flash, turn1, turn10, repeats * runs)
    return {
        "benchmark": "ttft_multiturn",
        "value": statistics.median(tenths),
        "reference": statistics.median(firsts),
        "unit": "s",
        "reference_is": "TTFT of turn 1 (a new chat: system prompt + one ~130-token user message)",
        **summary,
        "ratio_of_medians": statistics.median(tenths) / statistics.median(firsts),
        "goal": "ratio <= 1.2",
        "ok": summary["ratio"] <= 1.2,
        "turn1_tokens": turn1,
        "turn10_tokens": turn10,
        "library_floor": floor,
        "threads": threads,
    }


def _library_floor(
    model: Path, threads: int, flash: bool, turn1: dict[str, int], turn10: dict[str, int], repeats: int
) -> dict[str, Any]:
    """The same evaluation work on a bare Llama(): the new tokens of turn 10 after its cached prefix, and those of
    turn 1 after its own. The ratio of the two is what llama.cpp itself costs; the engine cannot do better."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model), n_ctx=4096, n_threads=threads, n_threads_batch=threads,
                          flash_attn=flash, verbose=False)  # fmt: skip
    tokens = [llm.token_bos()] + [1000 + i % 20000 for i in range(turn10["prompt_tokens"])]

    def timed(cached: int, new: int) -> float:
        llm.n_tokens = cached  # eval() drops the KV cells from here on: the prefix stays, the rest is redone
        started = time.perf_counter()
        llm.eval(tokens[cached : cached + new])
        return time.perf_counter() - started

    llm.eval(tokens[: turn10["cached_tokens"]])
    new10 = turn10["prompt_tokens"] - turn10["cached_tokens"]
    new1 = turn1["prompt_tokens"] - turn1["cached_tokens"]
    tens = [timed(turn10["cached_tokens"], new10) for _ in range(repeats)]
    ones = [timed(turn1["cached_tokens"], new1) for _ in range(repeats)]
    llm.close()
    return {
        "turn10_s": statistics.median(tens),
        "turn1_s": statistics.median(ones),
        **ratio_summary([t / o for t, o in zip(tens, ones, strict=True)]),
    }


def bench_ttft_overflow(model: Path, threads: int, turns: int) -> dict[str, Any]:
    """A conversation that outgrows a 2048-token context under "drop the oldest turns", planned by the window's
    own planner. Sticky: what the last prompt left out stays out while the rest fits, and turns go with slack, so
    the start of the prompt (and the engine's cache of it) lasts several turns. Greedy (the planner before): just
    enough is left out each turn, so the prompt's start moves and every reply reads the whole context again.
    The same texts in both: user messages of ~150 tokens, a fixed ~40-token reply, TTFT timed to the first token."""
    from llamadesk.core.conversation.plan import Entry, OverflowPolicy, plan_prompt, reply_reserve
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    reply = "Noted. Water the garden early, stake the tomatoes, oil the shed hinge, and write to the council today."
    n_ctx, max_tokens = N_CTX, 40
    system = "You are a helpful assistant. Answer in one short paragraph."

    def conversation(sticky: bool) -> tuple[list[float], list[float]]:
        engine = LlamaCppEngine()
        engine.load(LoadOptions(model, n_ctx=n_ctx, n_threads=threads))
        _ttft(engine, [{"role": "user", "content": PARAGRAPH}], _params(1))  # warm-up
        entries: list[Entry] = []
        previous: set[int] = set()
        tokens_per_char = 0.35
        times, cached = [], []
        for turn in range(turns):
            entries.append(Entry(2 * turn, "user", f"Day {turn}. {PARAGRAPH} What first?", 2 * turn))
            plan = plan_prompt(system, entries, policy=OverflowPolicy.DROP_OLDEST, n_ctx=n_ctx,
                               reserve=reply_reserve(n_ctx, max_tokens), tokens_per_char=tokens_per_char,
                               previous=previous if sticky else None)  # fmt: skip
            ttft, _, done = _ttft(engine, plan.messages, _params(1))
            if plan.excluded:  # the figures are those of the turns that overflow
                times.append(ttft)
                cached.append(done.stats.cached_tokens / max(done.stats.prompt_tokens, 1))
            tokens_per_char = done.stats.prompt_tokens / sum(len(m["content"]) for m in plan.messages)
            previous = plan.excluded
            entries.append(Entry(2 * turn + 1, "assistant", reply, 2 * turn + 1))
        engine.close()
        return times, cached

    sticky, sticky_cached = conversation(True)
    greedy, greedy_cached = conversation(False)
    note(f"ttft_overflow: sticky mean {statistics.mean(sticky) * 1000:.0f} ms over {len(sticky)} turns, "
         f"greedy mean {statistics.mean(greedy) * 1000:.0f} ms")  # fmt: skip
    return {
        "benchmark": "ttft_overflow",
        "value": statistics.mean(sticky),
        "reference": statistics.mean(greedy),
        "unit": "s",
        "reference_is": "mean TTFT of the overflowing turns when just enough is left out each turn (the old planner)",
        "ratio": statistics.mean(sticky) / statistics.mean(greedy),
        "sticky_median_s": statistics.median(sticky),
        "sticky_max_s": max(sticky),
        "greedy_median_s": statistics.median(greedy),
        "sticky_cached_share": statistics.mean(sticky_cached),
        "greedy_cached_share": statistics.mean(greedy_cached),
        "overflowing_turns": len(sticky),
        "n_ctx": n_ctx,
        "threads": threads,
    }


def bench_ttft_prefill(model: Path, threads: int, repeats: int) -> dict[str, Any]:
    """A ~1,000-token text pasted into the composer, then a question typed after it and Enter. With "Prepare
    Replies While Typing" the pasted text was read during the pause before the question (its time is not waited
    for); without, Enter reads it all. TTFT of each, alternating, in a new chat each time (the same engine)."""
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    engine = LlamaCppEngine()
    engine.load(LoadOptions(model, n_ctx=4096, n_threads=threads))
    system = {"role": "system", "content": "You are a helpful assistant. Answer in one short paragraph."}
    _ttft(engine, [system, {"role": "user", "content": PARAGRAPH}], _params(1))  # warm-up
    pasted = " ".join([PARAGRAPH] * 8)
    question = " Which of these should I do first, and why?"
    prepared_s, plain_s, read_ahead = [], [], []

    def prepared(k: int) -> float:
        text = f"Take {k}, prepared. {pasted}"
        read_ahead.append(engine.prefill([system, {"role": "user", "content": text}]))
        return _ttft(engine, [system, {"role": "user", "content": text + question}], _params(1))[0]

    def plain(k: int) -> float:
        text = f"Take {k}, plain. {pasted}{question}"
        return _ttft(engine, [system, {"role": "user", "content": text}], _params(1))[0]

    for k in range(repeats):
        a, b = alternate(k, lambda k=k: prepared(k), lambda k=k: plain(k))  # type: ignore[misc]
        prepared_s.append(a)
        plain_s.append(b)
    prompt_tokens = engine.count_tokens([system, {"role": "user", "content": f"Take 0, plain. {pasted}{question}"}])
    engine.close()
    return {
        "benchmark": "ttft_prefill",
        "value": statistics.median(prepared_s),
        "reference": statistics.median(plain_s),
        "unit": "s",
        "reference_is": "TTFT when Enter reads the whole pasted text (Prepare Replies While Typing off)",
        **ratio_summary([a / b for a, b in zip(prepared_s, plain_s, strict=True)]),
        "prompt_tokens": prompt_tokens,
        "read_ahead_tokens": statistics.median(read_ahead),
        "threads": threads,
    }


# -- cold start: a fresh process until the main window is shown ----------------------------------------------

_WATCH = """
import json, sys, time
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([sys.argv[0]])
marks = {}
class Watch(QObject):
    def eventFilter(self, obj, event):
        kind = event.type()
        if kind in (QEvent.Type.Show, QEvent.Type.Paint) and isinstance(obj, QMainWindow):
            marks.setdefault("show" if kind == QEvent.Type.Show else "paint", time.time())
        return False
watch = Watch()
app.installEventFilter(watch)
"""
APP_STARTER = _WATCH + "from llamadesk import cli\ncode = cli.main(['--smoke-test'])\nprint(json.dumps(marks))\n"
QT_STARTER = _WATCH + (
    "from PySide6.QtCore import QTimer\nw = QMainWindow()\nw.resize(1000, 700)\nw.show()\n"
    "QTimer.singleShot(500, app.quit)\napp.exec()\nprint(json.dumps(marks))\n"
)


def _child_env(home: Path) -> dict[str, str]:
    """A child's environment. Its bytecode goes to a folder of its own (written by the warm-up start, read by the
    timed ones): an installed LlamaDesk has its .pyc files (pip and the installers compile them), while a checkout
    run with PYTHONDONTWRITEBYTECODE=1, as here, would otherwise compile every module at every start."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LLAMADESK_HOME": str(home)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(home.parent / "pycache")
    return env


def _start_to_window(script: str, home: Path) -> float | None:
    env = _child_env(home)
    started = time.time()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        note(f"cold start failed: {result.stderr.strip()[-500:]}")
        return None
    marks = json.loads(result.stdout.strip().splitlines()[-1])
    shown = marks.get("paint") or marks.get("show")
    return shown - started if shown else None


def _import_time(home: Path) -> float:
    env = _child_env(home)
    started = time.time()
    subprocess.run([sys.executable, "-c", "import llamadesk.ui.app"], env=env, check=True, timeout=120)
    return time.time() - started


def bench_cold_start(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        _start_to_window(APP_STARTER, home)  # warm the file cache and write the bytecode: figures are warm starts
        app, qt, ratios = [], [], []
        for i in range(runs):
            a, b = alternate(i, lambda: _start_to_window(APP_STARTER, home), lambda: _start_to_window(QT_STARTER, home))
            if a is None or b is None:
                break
            app.append(a)
            qt.append(b)
            ratios.append(a / b)
        if not app:  # the GUI does not start yet: time the import of the GUI module instead, and say so
            value = statistics.median(_import_time(home) for _ in range(runs))
            measured = "python -c 'import llamadesk.ui.app' (--smoke-test did not show a window)"
            return {"benchmark": "cold_start", "value": value, "unit": "s", "measured": measured, "ok": value <= 1.0}
    value = statistics.median(app)
    return {
        "benchmark": "cold_start",
        "value": value,
        "reference": statistics.median(qt),
        "unit": "s",
        "measured": "process start → first paint of the main window (python -c, llamadesk.cli.main(['--smoke-test']), "
        "QT_QPA_PLATFORM=offscreen, empty LLAMADESK_HOME, warm file cache, compiled bytecode as installed)",
        "reference_is": "an empty PySide6 QMainWindow in a fresh process, same measurement",
        **ratio_summary(ratios),
        "min": min(app),
        "max": max(app),
        "goal": "value <= 1.0 s",
        "ok": value <= 1.0,
    }


def bench_model_load(model: Path, threads: int, rounds: int) -> dict[str, Any]:
    import llama_cpp

    from llamadesk.core import fileinfo
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    fileinfo.sha256_cached(model)  # the app hashes a file once; later loads read the cached digest
    engine = LlamaCppEngine()
    flash = engine.load(LoadOptions(model, n_ctx=N_CTX, n_threads=threads)).flash_attn == "on"
    engine.unload()

    def ours() -> float:
        started = time.perf_counter()
        engine.load(LoadOptions(model, n_ctx=N_CTX, n_threads=threads))
        took = time.perf_counter() - started
        engine.unload()
        return took

    def theirs() -> float:
        started = time.perf_counter()
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, n_threads=threads, flash_attn=flash, verbose=False)
        took = time.perf_counter() - started
        llm.close()
        return took

    a_all, b_all, ratios = [], [], []
    for i in range(rounds):
        a, b = alternate(i, ours, theirs)
        a_all.append(a)
        b_all.append(b)
        ratios.append(a / b)
    summary = ratio_summary(ratios)
    return {
        "benchmark": "cold_start_model_load",
        "value": statistics.median(a_all),
        "reference": statistics.median(b_all),
        "unit": "s",
        "measured": "LlamaCppEngine.load() (header check, template, cached sha256) vs bare Llama(), same settings",
        **summary,
        "goal": "none set (lower ratio is better)",
    }


# -- memory: RSS beyond the model ---------------------------------------------------------------------------

_RSS = """
import json, os
def rss(model):
    total = mapped = 0
    current = None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:
                current = head[5] if len(head) > 5 else ""
            elif head and head[0] == "Rss:":
                kb = int(head[1]) * 1024
                total += kb
                if current == os.path.realpath(model):
                    mapped += kb
    return {"rss": total, "model_rss": mapped}
"""
APP_PROCESS = (
    _RSS
    + """
import sys
model, n_ctx, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from PySide6.QtWidgets import QApplication
app = QApplication([sys.argv[0]])
window = None
try:
    from llamadesk.core.history import History
    from llamadesk.paths import get_paths
    from llamadesk.ui.main_window import MainWindow
    paths = get_paths().ensure()
    window = MainWindow(paths, History(paths.history_db))
    window.show()
    ui = "main window shown"
except Exception as exc:
    ui = f"no window ({type(exc).__name__}: {exc})"
for _ in range(50):
    app.processEvents()
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.engines.api import LoadOptions
from llamadesk.core.sampling import SamplingParams
engine = LlamaCppEngine()
info = engine.load(LoadOptions(model, n_ctx=n_ctx, n_threads=threads))
list(engine.stream([{"role": "user", "content": "hello"}], SamplingParams(max_tokens=16, seed=1)))
for _ in range(50):
    app.processEvents()
print(json.dumps({**rss(model), "ui": ui, "flash_attn": info.flash_attn}))
if window is not None:
    window.shutdown()
"""
)
BARE_PROCESS = (
    _RSS
    + """
import sys
model, n_ctx, threads, flash = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "on"
import llama_cpp
llm = llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_threads=threads, flash_attn=flash, verbose=False)
llm.create_completion("hello", max_tokens=16, seed=1)
print(json.dumps(rss(model)))
"""
)


def _measure(script: str, *argv: str, home: Path) -> dict[str, Any]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LLAMADESK_HOME": str(home)}
    result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe failed: {result.stderr.strip()[-800:]}")
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def bench_memory(model: Path, threads: int, rounds: int) -> dict[str, Any]:
    if not Path("/proc/self/smaps").exists():
        raise RuntimeError("the memory benchmark reads /proc/self/smaps (Linux)")
    mib = 1024 * 1024
    app, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            a = _measure(APP_PROCESS, str(model), str(N_CTX), str(threads), home=Path(tmp) / "home")
            b = _measure(BARE_PROCESS, str(model), str(N_CTX), str(threads), a["flash_attn"], home=Path(tmp) / "home")
            app.append(a)
            bare.append(b)
            note(f"memory: app {a['rss'] / mib:.0f} MiB ({a['model_rss'] / mib:.0f} model), bare {b['rss'] / mib:.0f}")
    beyond = statistics.median((a["rss"] - a["model_rss"]) / mib for a in app)
    bare_beyond = statistics.median((b["rss"] - b["model_rss"]) / mib for b in bare)
    return {
        "benchmark": "memory",
        "value": beyond,
        "reference": bare_beyond,
        "unit": "MiB RSS beyond the model's mapped pages",
        "measured": f"LlamaDesk process ({app[-1]['ui']}, history open, model loaded, 16 tokens generated)",
        "reference_is": "a bare Llama() process with the same model and settings, 16 tokens generated",
        "app_rss_mib": statistics.median(a["rss"] / mib for a in app),
        "bare_rss_mib": statistics.median(b["rss"] / mib for b in bare),
        "model_mapped_mib": statistics.median(a["model_rss"] / mib for a in app),
        "model_file_mib": model.stat().st_size / mib,
        "app_minus_bare_mib": beyond - bare_beyond,
        "ratio": beyond / bare_beyond if bare_beyond else None,
        "goal": "value <= 250 MiB",
        "ok": beyond <= 250,
    }


def _recorder_cost_us(engine: Any, params: Any, steps: int = 32) -> float:
    """Times TopKRecorder alone on logits captured from the model (llama.cpp's strided candidate layout)."""
    import numpy as np

    from llamadesk.core import token_probs

    captured: list[Any] = []
    original = token_probs.TopKRecorder.__call__

    def capture(self: Any, ids: Any, scores: Any) -> Any:
        captured.append(np.array(scores))
        return original(self, ids, scores)

    token_probs.TopKRecorder.__call__ = capture  # type: ignore[method-assign,assignment]
    try:
        for _event in engine.stream(PROMPT, params.replace(max_tokens=steps), token_probs=True):
            pass
    finally:
        token_probs.TopKRecorder.__call__ = original  # type: ignore[method-assign]
    layout = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
    packed = np.zeros(len(captured[0]), dtype=layout)
    view = packed["logit"]
    recorder = token_probs.TopKRecorder(lambda t: str(t))
    spent, n = 0.0, 0
    for _round in range(10):
        for logits in captured:
            view[:] = logits
            started = time.perf_counter()
            view[:] = recorder(None, view)
            recorder.take(int(np.argmax(logits)), 0, "")
            spent += time.perf_counter() - started
            n += 1
    return spent / n * 1e6


def bench_token_probs(model: Path, threads: int, rounds: int, max_tokens: int) -> dict[str, Any]:
    """Tokens/s with the top-k probability recorder installed vs without, same engine, alternating."""
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    engine = LlamaCppEngine()
    engine.load(LoadOptions(model, n_ctx=N_CTX, n_threads=threads))
    params = _params(max_tokens)

    def with_probs() -> dict[str, float]:
        return _timed(engine.stream(PROMPT, params, token_probs=True), _engine_piece)

    def without() -> dict[str, float]:
        return _timed(engine.stream(PROMPT, params), _engine_piece)

    with_probs(), without()  # warm
    ours, theirs, ratios = [], [], []
    for i in range(rounds):
        a, b = alternate(i, with_probs, without)
        ours.append(a["tokens_per_s"])
        theirs.append(b["tokens_per_s"])
        ratios.append(a["tokens_per_s"] / b["tokens_per_s"])
        note(f"token_probs round {i + 1}: {a['tokens_per_s']:.1f} vs {b['tokens_per_s']:.1f} tokens/s")
    cost_us = _recorder_cost_us(engine, params)
    engine.close()
    summary = ratio_summary(ratios)
    return {
        "benchmark": "token_probs",
        # the recorder's own time per token on this model's real logits, and that as a share of a token's time:
        # steadier than the end-to-end ratio on a busy machine
        "recorder_us_per_token": cost_us,
        "estimated_cost": cost_us * 1e-6 * statistics.median(theirs),
        "value": statistics.median(ours),
        "reference": statistics.median(theirs),
        "unit": "tokens/s",
        "reference_is": "the same engine and prompt without recording token probabilities",
        **summary,
        "goal": "ratio >= 0.97 to record by default (else off by default)",
        "ok": summary["ratio"] >= 0.97,
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from llamadesk.core.engines.local import default_threads

    model = model_path(args)
    threads = default_threads()
    quick = bool(getattr(args, "quick", False))
    context = {"model": model.name, "machine": machine()}
    jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("stream", lambda: bench_stream(model, threads, 2 if quick else 10, 64 if quick else 128)),
        ("ttft_multiturn", lambda: bench_ttft_multiturn(model, threads, 1 if quick else 3, 2 if quick else 5, 40)),
        ("ttft_overflow", lambda: bench_ttft_overflow(model, threads, 16 if quick else 30)),
        ("ttft_prefill", lambda: bench_ttft_prefill(model, threads, 2 if quick else 6)),
        ("cold_start", lambda: bench_cold_start(2 if quick else 5)),
        ("cold_start", lambda: bench_model_load(model, threads, 2 if quick else 6)),
        ("memory", lambda: bench_memory(model, threads, 1 if quick else 3)),
        ("token_probs", lambda: bench_token_probs(model, threads, 2 if quick else 8, 64 if quick else 128)),
    ]
    records = []
    for name, job in jobs:
        if not wanted(args, name):
            continue
        try:
            records.append({**job(), **context})
        except Exception as exc:  # one figure failing must not lose the others
            records.append({"benchmark": name, "error": f"{type(exc).__name__}: {exc}", **context})
        records[-1]["machine_after"] = machine()["load_avg_1m"]
    return records

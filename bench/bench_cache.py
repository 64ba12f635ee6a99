"""Prompt states and prompt lookup (issue 21): the first reply of a reopened ~3,000-token conversation restored from
disk against reading it again (starter and a generated 2048-wide model), disk bytes per 1k tokens, two clients
alternating ~600-token conversations through `llamadesk serve` with the openai client (prompt states on and off),
which llama.cpp state API to use, and prompt-lookup speculation on a code rewrite."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import TEST_CACHE, alternate, machine, model_path, note, ratio_summary, wanted

BENCHMARKS = ("cache_reopen", "cache_reopen_wide", "cache_serve", "cache_state_api", "prompt_lookup")
N_CTX = 4096
SEED = 1234
SENTENCES = (
    "The garden needs water in the morning, before the sun is high, and the tomatoes want a stake each. ",
    "The shed door sticks when it rains; a little oil on the hinge and a new latch would fix it. ",
    "My neighbour lends me her ladder on weekends, so the gutters can wait until Saturday. ",
    "The bees came back to the lavender, which means the hive by the fence survived the cold nights. ",
    "I still have to write the letter to the council about the path behind the school. ",
)
CODE = '''def load_settings(path):
    """Read the settings file and return a dictionary of the known keys."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        return {}
    result = {}
    for key, value in data.items():
        if key in KNOWN_KEYS:
            result[key] = value
    return result


def save_settings(path, settings):
    """Write the settings file through a temporary file."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=2)
    os.replace(tmp, path)
'''
WARM = [{"role": "user", "content": "Hi"}]  # shorter than prompt_cache.MIN_TOKENS: never saved
REWRITE = [
    {
        "role": "user",
        "content": "Rewrite this Python code with one change: rename the variable `result` to `found`. "
        "Reply with the whole code and nothing else.\n\n" + CODE,
    }
]


def _conversation(engine: Any, target: int, salt: str = "") -> list[dict[str, str]]:
    """User and assistant turns of plain prose until the prompt has about `target` tokens."""
    messages: list[dict[str, str]] = []
    i = 0
    while not messages or engine.count_tokens(messages) < target:
        text = "".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(3))
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"{salt}{i}. {text}"})
        i += 1
    if messages[-1]["role"] == "assistant":
        messages.append({"role": "user", "content": "Summarize what I still have to do."})
    return messages


def _first_token_s(engine: Any, messages: list[dict[str, str]], max_tokens: int = 4) -> tuple[float, Any, str]:
    """Seconds from the call to the first piece of text (restoring or reading the prompt included), Done, the text."""
    from llamadesk.core.engines.api import Done, Token
    from llamadesk.core.sampling import SamplingParams

    started = time.perf_counter()
    first, done, text = 0.0, None, []
    for event in engine.stream(messages, SamplingParams(max_tokens=max_tokens, seed=SEED, temperature=0.0)):
        if isinstance(event, Token):
            text.append(event.text)
            if event.text and not first:
                first = time.perf_counter() - started
        elif isinstance(event, Done):
            done = event
    return first or time.perf_counter() - started, done, "".join(text)


@contextmanager
def _home() -> Iterator[Path]:
    """A folder of its own for the prompt states (LLAMADESK_HOME), so each measurement starts from an empty cache."""
    before = os.environ.get("LLAMADESK_HOME")
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as home:
        os.environ["LLAMADESK_HOME"] = home
        try:
            yield Path(home)
        finally:
            if before is None:
                os.environ.pop("LLAMADESK_HOME", None)
            else:
                os.environ["LLAMADESK_HOME"] = before


def bench_reopen(model: Path, name: str, rounds: int, tokens: int) -> dict[str, Any]:
    """Reply once (its state goes to disk at close), load again, continue: TTFT restored vs the same prompt read by
    an engine without prompt states. Alternated; the ratio of each pair."""
    from llamadesk.core.engines import prompt_cache
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    ratios, warm, cold, per_1k = [], [], [], []
    with _home():
        probe = LlamaCppEngine()
        probe.load(LoadOptions(model, n_ctx=N_CTX, prompt_cache_mb=0))
        convo = _conversation(probe, tokens)
        probe.close()
        for i in range(rounds):
            prompt_cache.clear()
            engine = LlamaCppEngine()
            engine.load(LoadOptions(model, n_ctx=N_CTX))
            _, first, reply = _first_token_s(engine, convo, max_tokens=16)
            engine.close()  # the state is written by now
            state = prompt_cache.describe()
            n_state = first.stats.prompt_tokens + first.stats.generated_tokens
            per_1k.append(state["bytes"] / n_state * 1000)
            reopened = [
                *convo,
                {"role": "assistant", "content": reply or "I will do it."},
                {"role": "user", "content": "And then?"},
            ]

            def restored(reopened: list[dict[str, str]] = reopened) -> float:
                eng = LlamaCppEngine()
                eng.load(LoadOptions(model, n_ctx=N_CTX))
                eng.prefill(WARM)  # the weights touched (mmap) in both paths: what is timed is the prompt
                try:
                    seconds, done, _ = _first_token_s(eng, reopened)
                    assert done is not None and "prompt_state" in done.receipt, done and done.receipt
                    return seconds
                finally:
                    eng.close()

            def read_again(reopened: list[dict[str, str]] = reopened) -> float:
                eng = LlamaCppEngine()
                eng.load(LoadOptions(model, n_ctx=N_CTX, prompt_cache_mb=0))
                eng.prefill(WARM)
                try:
                    return _first_token_s(eng, reopened)[0]
                finally:
                    eng.close()

            a, b = alternate(i, restored, read_again)
            warm.append(a)
            cold.append(b)
            ratios.append(a / b)
            note(
                f"{name} round {i + 1}: restored {a:.3f} s vs read again {b:.2f} s ({n_state} tokens, "
                f"{per_1k[-1]:.0f} bytes per 1k tokens)"
            )
    summary = ratio_summary(ratios)
    return {
        "benchmark": name,
        "value": statistics.median(warm),
        "reference": statistics.median(cold),
        "unit": "s to the first token",
        "reference_is": "the same reopened conversation read again by the engine without prompt states",
        "prompt_tokens": n_state,
        "disk_bytes_per_1k_tokens": round(statistics.median(per_1k)),
        **summary,
        "goal": "ratio <= 0.1",
        "ok": summary["ratio"] <= 0.1,
        "machine": machine(),
    }


def wide_model() -> Path:
    """A generated llama 2048 wide (16 heads of 128; two layers, F32), as wide as a 1B model's hidden state."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from gguf_factory import write_tiny_llama

    path = TEST_CACHE / "bench" / "wide-2048x2.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tiny_llama(path, n_embd=2048, n_head=16, n_layers=2, n_ctx_train=N_CTX, name="wide-2048")
    return path


def bench_state_api(model: Path, tokens: int) -> dict[str, Any]:
    """Llama.save_state()/load_state() (whole context + logits + Python arrays) against llama_state_seq_get/set_data
    (sequence 0's KV cells) on the same context: bytes and seconds."""
    import ctypes

    import llama_cpp

    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    out: dict[str, Any] = {"benchmark": "cache_state_api", "unit": "bytes, s"}
    for label, lookup in (("plain", False), ("prompt_lookup", True)):
        engine = LlamaCppEngine()
        engine.load(LoadOptions(model, n_ctx=N_CTX, prompt_cache_mb=0, prompt_lookup=lookup))
        convo = _conversation(engine, tokens)
        _first_token_s(engine, convo, max_tokens=2)
        llama = engine._llama
        started = time.perf_counter()
        state = llama.save_state()
        save_s = time.perf_counter() - started
        started = time.perf_counter()
        llama.load_state(state)
        load_s = time.perf_counter() - started
        whole = state.llama_state_size + state.scores.nbytes + state.input_ids.nbytes
        started = time.perf_counter()
        size = llama_cpp.llama_state_seq_get_size(llama.ctx, 0)
        data = bytearray(size)
        buf = (ctypes.c_uint8 * size).from_buffer(data)
        got = llama_cpp.llama_state_seq_get_data(llama.ctx, buf, size, 0)
        seq_save_s = time.perf_counter() - started
        started = time.perf_counter()
        llama_cpp.llama_state_seq_set_data(llama.ctx, buf, got, 0)
        seq_load_s = time.perf_counter() - started
        del buf
        out[label] = {
            "tokens": int(llama.n_tokens),
            "save_state_bytes": int(whole),
            "save_state_s": round(save_s, 4),
            "load_state_s": round(load_s, 4),
            "seq_bytes": int(got),
            "seq_get_s": round(seq_save_s, 4),
            "seq_set_s": round(seq_load_s, 4),
        }
        engine.close()
    return out


@contextmanager
def _serve(model: Path, cache_mb: float, home: Path) -> Iterator[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    cmd = [sys.executable, "-m", "llamadesk", "serve", "--model", str(model), "--port", "0", "--ctx", str(N_CTX),
           "--prompt-cache", str(cache_mb)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"at (http://\S+)", line)
        if not found:
            raise RuntimeError(f"llamadesk serve did not start: {line!r}")
        yield found.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_serve(model: Path, rounds: int, tokens: int) -> dict[str, Any]:
    """Two clients alternating two ~600-token conversations (each request the same messages, streamed) through
    `llamadesk serve` with prompt states, then without: TTFT per request after the first pair."""
    import openai

    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    probe = LlamaCppEngine()
    probe.load(LoadOptions(model, n_ctx=N_CTX, prompt_cache_mb=0))
    convos = [_conversation(probe, tokens, salt="A"), _conversation(probe, tokens, salt="B")]
    n_tokens = [probe.count_tokens(c) for c in convos]
    probe.close()
    results: dict[str, list[float]] = {}
    for label, cache_mb in (("on", 4096.0), ("off", 0.0)):
        with tempfile.TemporaryDirectory(prefix="bench-serve-") as home, _serve(model, cache_mb, Path(home)) as url:
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)  # url ends in /v1
            model_id = client.models.list().data[0].id
            ttfts = []
            for i in range(2 * (rounds + 1)):
                started = time.perf_counter()
                first = 0.0
                for chunk in client.chat.completions.create(
                    model=model_id, messages=convos[i % 2], stream=True, max_tokens=4, temperature=0, seed=SEED
                ):  # type: ignore[call-overload]
                    if not first and chunk.choices and chunk.choices[0].delta.content:
                        first = time.perf_counter() - started
                if i >= 2:  # the first pair reads both conversations in either case
                    ttfts.append(first or time.perf_counter() - started)
            results[label] = ttfts
            note(f"serve prompt states {label}: TTFT {[round(t, 3) for t in ttfts]}")
    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    return {
        "benchmark": "cache_serve",
        "value": on,
        "reference": off,
        "unit": "s to the first token",
        "reference_is": "the same alternating requests to `llamadesk serve --prompt-cache 0` (before issue 21)",
        "prompt_tokens": n_tokens,
        "ratio": on / off,
        "requests": len(results["on"]),
        "llama_server": "not measured: llama-server was not built in this run",
        "machine": machine(),
    }


def bench_prompt_lookup(model: Path, rounds: int, max_tokens: int) -> dict[str, Any]:
    """A code rewrite at temperature 0 with and without prompt-lookup drafts: generated tokens per second (after
    the first), alternated; the same output is checked."""
    from llamadesk.core.engines.api import Done, LoadOptions, Token
    from llamadesk.core.engines.local import LlamaCppEngine
    from llamadesk.core.sampling import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, seed=SEED, temperature=0.0)
    engines = {}
    for label, lookup in (("plain", False), ("lookup", True)):
        engines[label] = LlamaCppEngine()
        engines[label].load(LoadOptions(model, n_ctx=N_CTX, prompt_cache_mb=0, prompt_lookup=lookup))

    def run(label: str) -> tuple[float, str, Any]:
        text = []
        done = None
        for event in engines[label].stream(REWRITE, params):
            if isinstance(event, Token):
                text.append(event.text)
            elif isinstance(event, Done):
                done = event
        assert done is not None
        gen_s = done.stats.total_s - done.stats.ttft_s
        return done.stats.generated_tokens / gen_s if gen_s > 0 else 0.0, "".join(text), done

    run("plain"), run("lookup")  # warm; the prompt is cached from here on in both
    ratios, same, speeds, refs, drafted, accepted = [], [], [], [], 0, 0
    for i in range(rounds):
        (sp, tp, _), (sl, tl, dl) = alternate(i, lambda: run("plain"), lambda: run("lookup"))
        ratios.append(sl / sp)
        speeds.append(sl)
        refs.append(sp)
        same.append(tp == tl)
        drafted += dl.receipt["speculation"]["drafted"]
        accepted += dl.receipt["speculation"]["accepted"]
        note(f"prompt lookup round {i + 1}: {sl:.1f} vs {sp:.1f} tokens/s, same output: {tp == tl}")
    for engine in engines.values():
        engine.close()
    summary = ratio_summary(ratios)
    return {
        "benchmark": "prompt_lookup",
        "value": statistics.median(speeds),
        "reference": statistics.median(refs),
        "unit": "generated tokens/s",
        "reference_is": "the same engine and prompt without prompt lookup (temperature 0)",
        **summary,
        "same_output_rounds": sum(same),
        "drafted": drafted,
        "accepted": accepted,
        "acceptance": round(accepted / drafted, 3) if drafted else None,
        "goal": "ratio >= 1.5",
        "ok": summary["ratio"] >= 1.5,
        "machine": machine(),
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    model = model_path(args)
    quick = getattr(args, "quick", False)
    rounds = 1 if quick else 3
    figures: dict[str, Any] = {
        "cache_state_api": lambda: bench_state_api(model, 3000),
        "cache_reopen": lambda: bench_reopen(model, "cache_reopen", rounds, 3000),
        "cache_reopen_wide": lambda: bench_reopen(wide_model(), "cache_reopen_wide", 1 if quick else 2, 3000),
        "cache_serve": lambda: bench_serve(model, 2 if quick else 4, 600),
        "prompt_lookup": lambda: bench_prompt_lookup(model, rounds, 256),
    }
    out = []
    for name, figure in figures.items():
        if wanted(args, name):
            try:  # one failed figure does not cost the others (each takes minutes)
                record = figure()
            except Exception as exc:
                record = {"benchmark": name, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps({"module": "cache", **record}, default=str), file=sys.stderr, flush=True)
            out.append(record)
    return out

"""LlamaDesk's perplexity (core/quality.py, the Compare tab and `llamadesk models compare`) against llama.cpp's own
`llama-perplexity`, built from the wheel's vendored sources by packaging/build_llama_tool.sh: the same file, the same
text, the same context and threads. Goals: the perplexities agree within 1%, and the app's run time is at most 1.1×
the tool's (each timed whole, load included; alternated, the median of the pairwise ratios reported). The app runs
without its generation timing (compare(speed=False)), which the tool does not do; the Compare tab's full run, with it,
is timed once besides."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import alternate, machine, model_path, note, ratio_summary

BENCHMARKS = ("quality_ppl",)
ROOT = Path(__file__).resolve().parent.parent
N_CTX = 512  # llama-perplexity's default
TEXT = "en-gpl-3"  # the longest shipped text (~8k tokens for a 49k vocabulary)
CHARS_PER_CHUNK = 2000  # about 512 tokens of English prose: the text is cut to the chunks asked for
_FINAL = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")
_CHUNKS = re.compile(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+), batch_size=(\d+), n_seq=(\d+)")


def tool_binary() -> Path:
    """Builds llama-perplexity once (minutes) and reuses it."""
    out = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build_llama_tool.sh"), "llama-perplexity"], capture_output=True, text=True,
        check=True, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def run_tool(binary: Path, model: Path, text_file: Path, threads: int, batch: int) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(binary), "-m", str(model), "-f", str(text_file), "-c", str(N_CTX), "-b", str(batch), "-t", str(threads),
         "-tb", str(threads), "-ngl", "0"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    log = done.stdout + done.stderr
    final, chunks = _FINAL.search(log), _CHUNKS.search(log)
    if done.returncode != 0 or final is None or chunks is None:
        raise RuntimeError(f"llama-perplexity failed ({done.returncode}): {log[-2000:]}")
    return {"ppl": float(final[1]), "ppl_err": float(final[2]), "chunks": int(chunks[1]), "n_seq": int(chunks[4]),
            "seconds": seconds}  # fmt: skip


def run_app(model: Path, text: str, threads: int, *, speed: bool = False) -> dict[str, Any]:
    from llamadesk.core import quality

    started = time.perf_counter()
    result = quality.compare([model], text, n_ctx=N_CTX, threads=threads, keep=False, speed=speed)
    seconds = time.perf_counter() - started
    return {"ppl": result.files[0].perplexity, "chunks": result.n_chunks, "seconds": seconds}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from llamadesk.core import quality
    from llamadesk.core.engines.local import default_threads

    model = model_path(args)
    binary = tool_binary()
    threads = default_threads()
    chunks = 4 if args.quick else 8
    rounds = 2 if args.quick else 3
    text = quality.eval_texts()[TEXT].read_text(encoding="utf-8")[: chunks * CHARS_PER_CHUNK + CHARS_PER_CHUNK // 2]
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        text_file = Path(tmp) / f"{TEXT}.txt"
        text_file.write_text(text, encoding="utf-8")
        # batch N_CTX: one window per llama_decode, as the app evaluates; the tool's default (2048) packs 4 windows
        # into one batch of 4 sequences, measured once as well for the record.
        app = lambda: run_app(model, text, threads)  # noqa: E731
        tool = lambda: run_tool(binary, model, text_file, threads, N_CTX)  # noqa: E731
        note("warming up (the file into the page cache)")
        app(), tool()
        a_runs, b_runs, ratios = [], [], []
        for i in range(rounds):
            a, b = alternate(i, app, tool)
            a_runs.append(a)
            b_runs.append(b)
            ratios.append(a["seconds"] / b["seconds"])
            note(f"round {i + 1}: app {a['seconds']:.1f} s (PPL {a['ppl']:.4f}), tool {b['seconds']:.1f} s "
                 f"(PPL {b['ppl']:.4f})")  # fmt: skip
        tool_default = run_tool(binary, model, text_file, threads, 2048)
        with_speed = run_app(model, text, threads, speed=True)  # what the Compare tab runs: + generation timing
    ppl_app, ppl_tool = a_runs[0]["ppl"], b_runs[0]["ppl"]
    diff = abs(ppl_app / ppl_tool - 1)
    summary = ratio_summary(ratios)
    records.append({
        "figure": "quality_ppl", "model": model.name, "text": TEXT, "n_ctx": N_CTX, "threads": threads,
        "chunks_app": a_runs[0]["chunks"], "chunks_tool": b_runs[0]["chunks"],
        "ppl_app": round(ppl_app, 4), "ppl_tool": round(ppl_tool, 4), "ppl_tool_err": b_runs[0]["ppl_err"],
        "ppl_diff_pct": round(100 * diff, 3), "goal_ppl_diff_pct": 1.0, "ppl_ok": diff <= 0.01,
        "seconds_app": round(statistics.median(r["seconds"] for r in a_runs), 2),
        "seconds_tool": round(statistics.median(r["seconds"] for r in b_runs), 2),
        "time_ratio": round(summary["ratio"], 3), "time_ratio_min": round(summary["ratio_min"], 3),
        "time_ratio_max": round(summary["ratio_max"], 3), "pairs": summary["pairs"], "goal_time_ratio": 1.1,
        "time_ok": summary["ratio"] <= 1.1,
        "tool_default_batch_seconds": round(tool_default["seconds"], 2), "tool_default_n_seq": tool_default["n_seq"],
        "tool_default_batch_ppl": tool_default["ppl"], "seconds_app_with_gen_timing": round(with_speed["seconds"], 2),
        **machine(),
    })  # fmt: skip
    return records

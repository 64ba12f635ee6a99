"""Tokens/s through llama.cpp RPC (two rpc-server processes on loopback) and through LlamaDesk's OpenAI-compatible
server (the official openai client, streaming), each against the in-process engine measured in the same run."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import alternate, machine, model_path, note, ratio_summary, wanted
from bench.bench_engine import _engine_piece, _timed

BENCHMARKS = ("rpc_stream", "server_stream")
ROOT = Path(__file__).resolve().parent.parent
N_CTX = 2048
SEED = 1234
PROMPT = [{"role": "user", "content": "Write a long story about a llama who learns to write computer programs."}]


def _params(max_tokens: int) -> Any:
    from llamadesk.core.sampling import SamplingParams

    return SamplingParams(max_tokens=max_tokens, seed=SEED)


def _rpc_server_binary() -> Path:
    out = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build_rpc_server.sh")], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


@contextmanager
def _rpc_servers(n: int, threads: int) -> Iterator[list[str]]:
    from llamadesk.core import rpc

    binary = _rpc_server_binary()
    procs: list[subprocess.Popen[bytes]] = []
    hosts: list[str] = []
    try:
        for _ in range(n):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            procs.append(subprocess.Popen([str(binary), "-p", str(port), "-t", str(threads)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
            host = f"127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    rpc.query_host(host, timeout=1.0)
                    break
                except rpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # retry interval until it answers
            hosts.append(host)
        yield hosts
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _compare(name: str, rounds: int, ours: Callable[[], dict[str, float]], ref: Callable[[], dict[str, float]],
             extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    ours(), ref()  # warm both
    a_runs, b_runs, ratios = [], [], []
    for i in range(rounds):
        a, b = alternate(i, ours, ref)
        a_runs.append(a)
        b_runs.append(b)
        ratios.append(a["tokens_per_s"] / b["tokens_per_s"])
        note(f"{name} round {i + 1}: {a['tokens_per_s']:.1f} vs {b['tokens_per_s']:.1f} tokens/s")
    return {
        "benchmark": name,
        "value": statistics.median(r["tokens_per_s"] for r in a_runs),
        "reference": statistics.median(r["tokens_per_s"] for r in b_runs),
        "unit": "tokens/s",
        **ratio_summary(ratios),
        "ttft_s": statistics.median(r["ttft_s"] for r in a_runs),
        "reference_ttft_s": statistics.median(r["ttft_s"] for r in b_runs),
        **extra,
    }


def bench_rpc_stream(model: Path, threads: int, rounds: int, max_tokens: int) -> dict[str, Any]:
    """A chat reply with every layer on two loopback rpc-servers (each with `threads` CPU threads, run in a child
    process as the app does) vs the same reply in-process."""
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine
    from llamadesk.core.engines.rpc_child import ChildEngine

    params = _params(max_tokens)
    with _rpc_servers(2, threads) as hosts:
        remote, local = ChildEngine(), LlamaCppEngine()
        try:
            info = remote.load(LoadOptions(model, n_ctx=N_CTX, n_threads=threads, n_gpu_layers=-1,
                                           rpc_servers=tuple(hosts)))  # fmt: skip
            local.load(LoadOptions(model, n_ctx=N_CTX, n_threads=threads))
            return _compare(
                "rpc_stream", rounds,
                lambda: _timed(remote.stream(PROMPT, params), _engine_piece),
                lambda: _timed(local.stream(PROMPT, params), _engine_piece),
                {"reference_is": "the in-process engine, same model/threads/context/seed",
                 "layer_split": info.layer_split, "threads": threads, "max_tokens": max_tokens},
            )  # fmt: skip
        finally:
            remote.close()
            local.close()


def bench_server_stream(model: Path, threads: int, rounds: int, max_tokens: int) -> dict[str, Any]:
    """A streamed reply through LlamaDesk's server and the official openai client vs the in-process engine."""
    import openai

    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine
    from llamadesk.server.backend import EngineThreadBackend
    from llamadesk.server.runner import ServerConfig, ServerRunner

    params = _params(max_tokens)
    backend = EngineThreadBackend(LlamaCppEngine, params=params)
    backend.start(LoadOptions(model, n_ctx=N_CTX, n_threads=threads))
    runner = ServerRunner(backend, ServerConfig(port=0))
    local = LlamaCppEngine()
    try:
        client = openai.OpenAI(base_url=runner.start(), api_key="unused", max_retries=0)
        local.load(LoadOptions(model, n_ctx=N_CTX, n_threads=threads))

        def through_server() -> dict[str, float]:
            chunks = client.chat.completions.create(
                model="x",
                messages=PROMPT,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                seed=SEED,
                stream=True,
            )
            return _timed(chunks, lambda c: c.choices[0].delta.content if c.choices else None)

        return _compare(
            "server_stream", rounds, through_server,
            lambda: _timed(local.stream(PROMPT, params), _engine_piece),
            {"reference_is": "the in-process engine, same model/threads/context/seed",
             "threads": threads, "max_tokens": max_tokens},
        )  # fmt: skip
    finally:
        runner.stop()
        backend.close()
        local.close()


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from llamadesk.core.engines.local import default_threads

    model = model_path(args)
    threads = default_threads()
    quick = bool(getattr(args, "quick", False))
    rounds, tokens = (2, 64) if quick else (6, 128)
    context = {"model": model.name, "machine": machine()}
    jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("rpc_stream", lambda: bench_rpc_stream(model, threads, rounds, tokens)),
        ("server_stream", lambda: bench_server_stream(model, threads, rounds, tokens)),
    ]
    return [{**job(), **context} for name, job in jobs if wanted(args, name)]

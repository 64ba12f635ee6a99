"""Tokens/s through the remote engine (RemoteEngine → llama-cpp-python's server on loopback) vs the same server hit
directly with the official openai client, streaming the same reply (same sampling values and seed): the ratio is
what LlamaDesk's own HTTP/SSE path costs on top of the server."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import alternate, machine, model_path, note, ratio_summary, wanted
from bench.bench_engine import _engine_piece, _timed

BENCHMARKS = ("remote_stream",)
N_CTX = 2048
SEED = 1234
PROMPT = [{"role": "user", "content": "Write a long story about a llama who learns to write computer programs."}]


@contextmanager
def llama_cpp_server(model: Path, threads: int) -> Iterator[str]:
    """`python -m llama_cpp.server` on 127.0.0.1; yields its base URL once /v1/models answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--n_threads", str(threads), "--n_ctx", str(N_CTX), "--verbose", "False"]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})  # fmt: skip
        try:
            _wait_ready(proc, url, log)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Any) -> None:
    import httpx2

    deadline = time.monotonic() + 120
    with httpx2.Client(timeout=2.0, trust_env=False) as client:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited: {log.read()[-2000:].decode(errors='replace')}")
            try:
                if client.get(f"{url}/v1/models").status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not answer within 120 s")
            time.sleep(0.1)  # retry interval until the child answers


def bench_remote_stream(model: Path, threads: int, rounds: int, max_tokens: int) -> dict[str, Any]:
    import openai

    from llamadesk.core.endpoints import Endpoint, remote_options
    from llamadesk.core.engines.remote import RemoteEngine
    from llamadesk.core.engines.remote_api import sampling_body
    from llamadesk.core.sampling import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, seed=SEED)
    with llama_cpp_server(model, threads) as url:
        engine = RemoteEngine()
        try:
            info = engine.load(remote_options(Endpoint("bench", url, allow_http=True), n_ctx=N_CTX))
            body, _ignored = sampling_body(info.server_kind, params, SEED)  # the same values for the reference
            standard = {k: body.pop(k) for k in ("temperature", "top_p", "presence_penalty", "frequency_penalty",
                                                 "max_tokens", "seed")}  # fmt: skip
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)

            def direct() -> dict[str, float]:
                create: Any = client.chat.completions.create  # the same plain dicts as the engine sends
                chunks = create(model=info.file_name, messages=PROMPT, stream=True, extra_body=body, **standard)
                return _timed(chunks, lambda c: c.choices[0].delta.content if c.choices else None)

            def ours() -> dict[str, float]:
                return _timed(engine.stream(PROMPT, params), _engine_piece)

            ours(), direct()  # warm both (the server's prompt cache, both connections)
            a_runs, b_runs, ratios = [], [], []
            for i in range(rounds):
                a, b = alternate(i, ours, direct)
                a_runs.append(a)
                b_runs.append(b)
                ratios.append(a["tokens_per_s"] / b["tokens_per_s"])
                note(f"remote_stream round {i + 1}: {a['tokens_per_s']:.1f} vs {b['tokens_per_s']:.1f} tokens/s")
        finally:
            engine.close()
    return {
        "benchmark": "remote_stream",
        "value": statistics.median(r["tokens_per_s"] for r in a_runs),
        "reference": statistics.median(r["tokens_per_s"] for r in b_runs),
        "unit": "tokens/s",
        **ratio_summary(ratios),
        "ttft_s": statistics.median(r["ttft_s"] for r in a_runs),
        "reference_ttft_s": statistics.median(r["ttft_s"] for r in b_runs),
        "reference_is": "the official openai client streaming from the same llama_cpp.server, same values and seed",
        "server_kind": info.server_kind,
        "threads": threads,
        "max_tokens": max_tokens,
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from llamadesk.core.engines.local import default_threads

    model = model_path(args)
    quick = bool(getattr(args, "quick", False))
    rounds, tokens = (2, 64) if quick else (6, 128)
    if not wanted(args, "remote_stream"):
        return []
    record = bench_remote_stream(model, default_threads(), rounds, tokens)
    return [{**record, "model": model.name, "machine": machine()}]

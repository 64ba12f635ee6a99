"""`llamadesk serve`: an OpenAI-compatible server (/v1/models, /v1/chat/completions) for one model, until Ctrl+C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from llamadesk.commands import EXIT_FAIL, EXIT_LOAD, EXIT_OK, EXIT_USAGE
from llamadesk.commands.chat import default_gpu_layers, gpu_layers_arg

API_KEY_ENV = "LLAMADESK_API_KEY"


def add_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API (loopback by default)")
    serve.add_argument("--model", required=True, type=Path, help="path to a .gguf file")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    serve.add_argument(
        "--api-key-stdin", action="store_true",
        help=f"read the API key clients must send from the first line of stdin (or set ${API_KEY_ENV}); "
        "required to listen beyond this machine",
    )  # fmt: skip
    serve.add_argument("--record-history", action="store_true", help="keep requests in the history (label: server)")
    serve.add_argument("--ctx", type=int, default=4096, help="context length in tokens")
    serve.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    serve.add_argument("--gpu-layers", type=gpu_layers_arg, default=None, metavar="N|auto|all",
                       help="layers to offload to the GPU (default: auto, as many as fit; all with --rpc)")  # fmt: skip
    serve.add_argument(
        "--rpc", nargs="?", const="", default=None, metavar="HOST:PORT,...",
        help="split the model over llama.cpp rpc-server hosts: these, or the saved list (llamadesk rpc list)",
    )  # fmt: skip
    serve.add_argument("--prompt-cache", type=float, default=4096, metavar="MB",
                       help="disk for saved prompt states: alternating clients are not re-read (0: off)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from llamadesk.core import rpc
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.errors import ModelLoadError
    from llamadesk.server.backend import EngineThreadBackend
    from llamadesk.server.runner import ServerConfig, ServerError, ServerRunner

    api_key = os.environ.get(API_KEY_ENV) or None
    if args.api_key_stdin:
        api_key = sys.stdin.readline().strip() or None
        if api_key is None:
            print("llamadesk serve: --api-key-stdin read an empty line; give the key on stdin.", file=sys.stderr)
            return EXIT_USAGE
    config = ServerConfig(host=args.host, port=args.port, api_key=api_key)
    try:
        config.check()
        hosts = () if args.rpc is None else (rpc.parse_hosts(args.rpc) if args.rpc else rpc.load_hosts())
    except (ServerError, rpc.RpcError) as exc:
        print(f"llamadesk serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.rpc is not None and not hosts:
        print("llamadesk serve: no RPC hosts: name them (--rpc HOST:PORT,...) or add them (llamadesk rpc add).",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE

    backend = EngineThreadBackend(record_history=args.record_history)
    try:
        info = backend.start(
            LoadOptions(Path(args.model), n_ctx=args.ctx, n_threads=args.threads,
                        n_gpu_layers=default_gpu_layers(args.gpu_layers, hosts), rpc_servers=hosts,
                        prompt_cache_mb=max(args.prompt_cache, 0))
        )  # fmt: skip
    except ModelLoadError as exc:
        print(f"llamadesk serve: {exc}", file=sys.stderr)
        return EXIT_LOAD
    runner = ServerRunner(backend, config)
    try:
        url = runner.start()
    except ServerError as exc:
        backend.close()
        print(f"llamadesk serve: {exc}", file=sys.stderr)
        return EXIT_FAIL

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"Serving {info.file_name} at {url} (model id: {info.file_name}); Ctrl+C stops.", flush=True)
    if info.rpc_servers:
        print(f"Layers: {rpc.split_text(info.layer_split)}", flush=True)
    try:
        while not stop.wait(0.5):  # a timeout keeps Ctrl+C responsive on Windows
            if not runner.running:
                print("llamadesk serve: the server stopped unexpectedly; see the log.", file=sys.stderr)
                return EXIT_FAIL
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        runner.stop()
        backend.close()
    print("Stopped.", flush=True)
    return EXIT_OK

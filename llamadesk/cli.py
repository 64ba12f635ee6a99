"""The one entry point: no arguments opens the GUI; subcommands chat, models, history, doctor."""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Sequence

from llamadesk import __version__, logsetup
from llamadesk.commands import EXIT_FAIL, chat, doctor, endpoints, history, models, rpc, serve
from llamadesk.core import crashreport, probe
from llamadesk.core.errors import LlamaDeskError
from llamadesk.paths import get_paths

COMMANDS = {"chat": chat, "models": models, "history": history, "doctor": doctor, "rpc": rpc, "serve": serve,
            "endpoints": endpoints}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llamadesk", description="Chat with local language models.")
    parser.add_argument("--version", action="version", version=f"LlamaDesk {__version__}")
    parser.add_argument("--smoke-test", action="store_true", help="show the main window, quit after 0.5 s")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")
    sub = parser.add_subparsers(dest="command")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()  # a frozen build runs the RPC engine's child process (core/rpc_engine.py) here
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [probe.PROBE_FLAG] and len(argv) == 2:  # the child side of probe.probe_model()
        return probe.child_main(argv[1])
    if argv == ["--import-sweep"]:  # packaging's check that the frozen app has every module (import_sweep.py)
        from llamadesk import import_sweep

        return import_sweep.main()
    args = build_parser().parse_args(argv)
    paths = get_paths().ensure()
    logsetup.configure(paths.logs, verbose=args.verbose)
    crashreport.enable_native_crash_log(paths.logs)
    try:
        if args.command in COMMANDS:
            return int(COMMANDS[args.command].run(args))
        from llamadesk.ui.app import run_gui  # Qt is imported only when a window is wanted

        return run_gui(sys.argv[:1], smoke_test=args.smoke_test)
    except LlamaDeskError as exc:
        print(f"llamadesk: {exc}", file=sys.stderr)
        return EXIT_FAIL

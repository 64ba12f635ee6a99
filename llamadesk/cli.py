"""The one entry point: no arguments opens the GUI; subcommands chat, models, history, doctor."""

from __future__ import annotations

import argparse
import errno
import multiprocessing
import sys
from collections.abc import Sequence

from llamadesk import __version__, logsetup
from llamadesk.commands import EXIT_FAIL, EXIT_OK, chat, docs, doctor, endpoints, history, models, rpc, serve, tools
from llamadesk.core import crashreport, probe
from llamadesk.core.errors import LlamaDeskError
from llamadesk.paths import get_paths

COMMANDS = {"chat": chat, "models": models, "history": history, "doctor": doctor, "rpc": rpc, "serve": serve,
            "endpoints": endpoints, "docs": docs, "tools": tools, "mcp": tools}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llamadesk", description="Chat with local language models.")
    parser.add_argument("--version", action="version", version=f"LlamaDesk {__version__}")
    parser.add_argument("--smoke-test", action="store_true", help="show the main window, quit after 0.5 s")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")
    sub = parser.add_subparsers(dest="command")
    for module in dict.fromkeys(COMMANDS.values()):  # a module may add more than one command
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()  # a frozen build runs the RPC engine child (core/engines/rpc_child.py) here
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [probe.PROBE_FLAG] and len(argv) in (2, 3):  # the child side of probe.probe_model()
        return probe.child_main(*argv[1:])
    if argv == ["--import-sweep"]:  # packaging's check that the frozen app has every module (import_sweep.py)
        from llamadesk import import_sweep

        return import_sweep.main()
    args = build_parser().parse_args(argv)
    paths = get_paths()
    logsetup.configure(paths.logs, verbose=args.verbose)  # a log that cannot write falls silent: logsetup.failure()
    crashreport.enable_native_crash_log(paths.logs)
    try:
        if args.command in COMMANDS:
            paths.ensure()
            code = int(COMMANDS[args.command].run(args))
        else:
            from llamadesk.ui.app import run_gui  # Qt is imported only when a window is wanted

            code = run_gui(sys.argv[:1], smoke_test=args.smoke_test)  # it makes the folders and says why not
    except LlamaDeskError as exc:
        print(f"llamadesk: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except OSError as exc:  # the last resort for a full disk: one sentence, not a traceback
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"llamadesk: The disk is full ({exc.strerror}); free some space and try again.", file=sys.stderr)
        return EXIT_FAIL
    if code == EXIT_OK and (note := logsetup.failure()):
        print(f"llamadesk: {note}", file=sys.stderr)  # a full log folder alone: one line, once, after the work
    return code

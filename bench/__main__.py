"""`python -m bench [--model PATH] [--only NAME,...] [--quick] [--list]`: run the benchmarks, one JSON line each.

A benchmark module is bench/bench_<name>.py with `run(args) -> list[dict]`; it may declare
`BENCHMARKS = ("figure", ...)` so that --only can pick single figures. --only takes figure names or module
names (`--only engine` runs all of bench_engine). A module that fails prints {"module": ..., "error": ...}
and the others still run; the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import pkgutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import bench
from llamadesk.paths import HOME_ENV


def discover() -> list[str]:
    """Module names (without the bench_ prefix), sorted."""
    return sorted(m.name[len("bench_") :] for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))


def module_args(args: argparse.Namespace, name: str, module: ModuleType) -> argparse.Namespace | None:
    """The args one module runs with, or None when --only leaves it out."""
    if not args.only or name in args.only:
        picked = copy.copy(args)
        picked.only = None  # the whole module was asked for
        return picked
    declared = set(getattr(module, "BENCHMARKS", ()))
    return args if declared & args.only else None


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, default=str), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the starter model)")
    parser.add_argument("--only", help="comma-separated figure or module names")
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a quick look, not figures to report")
    parser.add_argument("--list", action="store_true", help="list the modules and their figures")
    args = parser.parse_args(argv)
    args.only = {n.strip() for n in args.only.split(",") if n.strip()} if args.only else None
    with tempfile.TemporaryDirectory(prefix="llamadesk-bench-") as home:
        # the benchmarks' own data, cache and history stay out of the user's folders (unless LLAMADESK_HOME says)
        os.environ.setdefault(HOME_ENV, home)
        return run_all(args)


def run_all(args: argparse.Namespace) -> int:
    failed = 0
    for name in discover():
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
        except Exception as exc:
            failed += 1
            emit({"module": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        if args.list:
            print(f"{name}: {', '.join(getattr(module, 'BENCHMARKS', ())) or '(all in one)'}")
            continue
        picked = module_args(args, name, module)
        if picked is None:
            continue
        bench.note(f"running {name}")
        try:
            records = module.run(picked)
        except Exception as exc:
            failed += 1
            traceback.print_exc(file=sys.stderr)
            emit({"module": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for record in records:
            emit({"module": name, **record})
        bench.note(f"{name} took {time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

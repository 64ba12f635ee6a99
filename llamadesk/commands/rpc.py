"""`llamadesk rpc`: the llama.cpp rpc-server hosts a model can be split over (add, list with memory, rm)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from llamadesk.commands import EXIT_FAIL, EXIT_OK, EXIT_USAGE


def add_parser(sub: Any) -> None:
    rpc = sub.add_parser("rpc", help="llama.cpp RPC hosts to split a model over (add, list, rm)")
    actions = rpc.add_subparsers(dest="rpc_command", required=True)
    add = actions.add_parser("add", help="add HOST:PORT (port 50052 when left out) to the list")
    add.add_argument("hosts", nargs="+", metavar="HOST:PORT")
    add.add_argument("--no-check", action="store_true", help="add it even if it does not answer now")
    ls = actions.add_parser("list", help="the hosts with their free and total memory")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    ls.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each host (default 3)")
    rm = actions.add_parser("rm", help="remove HOST:PORT from the list")
    rm.add_argument("hosts", nargs="+", metavar="HOST:PORT")


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def run(args: argparse.Namespace) -> int:
    from llamadesk.core import rpc

    try:
        if args.rpc_command == "add":
            hosts = rpc.parse_hosts(args.hosts)
            if not args.no_check:
                for status in rpc.check_hosts(hosts):
                    if not status.ok:
                        print(f"llamadesk rpc: {status.error} (add it anyway with --no-check)", file=sys.stderr)
                        return EXIT_FAIL
            for host in hosts:
                rpc.add_host(host)
                print(f"Added {host}")
            return EXIT_OK
        if args.rpc_command == "rm":
            for host in rpc.parse_hosts(args.hosts):
                rpc.remove_host(host)
                print(f"Removed {host}")
            return EXIT_OK
    except rpc.RpcError as exc:
        print(f"llamadesk rpc: {exc}", file=sys.stderr)
        return EXIT_USAGE

    hosts = rpc.load_hosts()
    statuses = rpc.check_hosts(hosts, timeout=args.timeout)
    if args.json:
        rows = [{"host": s.host, "free": s.free, "total": s.total, "devices": s.devices, "error": s.error or None}
                for s in statuses]  # fmt: skip
        print(json.dumps(rows, indent=2))
    elif not hosts:
        print("No RPC hosts yet; add one with: llamadesk rpc add HOST:PORT (start rpc-server there first).")
    else:
        width = max(len(h) for h in hosts)
        for s in statuses:
            detail = f"{_gib(s.free)} free of {_gib(s.total)}, {s.devices} device(s)" if s.ok else s.error
            print(f"{s.host:<{width}}  {detail}")
    return EXIT_OK if all(s.ok for s in statuses) else EXIT_FAIL

"""`llamadesk history`: list, show and delete conversations."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from llamadesk.commands import EXIT_OK
from llamadesk.paths import get_paths


def add_parser(sub: Any) -> None:
    history = sub.add_parser("history", help="conversation history")
    history_sub = history.add_subparsers(dest="history_command", required=True)
    hl = history_sub.add_parser("list", help="conversations, newest first")
    hl.add_argument("--limit", type=int, default=50)
    hs = history_sub.add_parser("show", help="one conversation")
    hs.add_argument("id", type=int)
    hs.add_argument("--json", action="store_true", help="print JSON with receipts")
    hr = history_sub.add_parser("rm", help="delete a conversation")
    hr.add_argument("id", type=int)


def run(args: argparse.Namespace) -> int:
    from llamadesk.core.history import History

    with History(get_paths().history_db) as history:
        if args.history_command == "list":
            for c in history.list_conversations(limit=args.limit):
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
                print(f"{c.id}\t{when}\t{c.title}")
        elif args.history_command == "show":
            conv = history.get_conversation(args.id)
            msgs = history.messages(conv.id)
            if args.json:
                doc = {"conversation": dataclasses.asdict(conv), "messages": [dataclasses.asdict(m) for m in msgs]}
                print(json.dumps(doc, indent=2, ensure_ascii=False))
            else:
                print(f"# {conv.title}")
                for m in msgs:
                    print(f"\n[{m.role}{'' if m.status == 'complete' else ', ' + m.status}]\n{m.content}")
        elif args.history_command == "rm":
            history.delete_conversation(args.id)
            print(f"Deleted conversation {args.id}.")
    return EXIT_OK

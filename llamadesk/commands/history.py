"""`llamadesk history`: list, show, search, export, import, delete and restore conversations."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from llamadesk.commands import EXIT_OK, EXIT_USAGE
from llamadesk.paths import get_paths


def add_parser(sub: Any) -> None:
    history = sub.add_parser("history", help="conversation history")
    history_sub = history.add_subparsers(dest="history_command", required=True)
    hl = history_sub.add_parser("list", help="conversations, pinned first, then the most recent")
    hl.add_argument("--limit", type=int, default=50, help="how many (default 50; 0: all)")
    hl.add_argument("--offset", type=int, default=0, help="skip this many first")
    hl.add_argument("--trash", action="store_true", help="list the conversations in the trash instead")
    hs = history_sub.add_parser("show", help="one conversation")
    hs.add_argument("id", type=int)
    hs.add_argument("--json", action="store_true", help="print JSON with receipts")
    hq = history_sub.add_parser("search", help="full-text search of titles and messages")
    hq.add_argument("query", help='words (all must match); "double quotes" for a phrase')
    hq.add_argument("--limit", type=int, default=20)
    hq.add_argument("--offset", type=int, default=0)
    hq.add_argument("--order", choices=("recent", "relevance"), default="recent")
    he = history_sub.add_parser("export", help="write conversations as Markdown, HTML or JSON")
    he.add_argument("ids", type=int, nargs="*", metavar="ID", help="the conversations to export")
    he.add_argument("--all", action="store_true", help="every conversation not in the trash")
    he.add_argument("--format", choices=("md", "html", "json"), required=True)
    he.add_argument("-o", "--output", type=Path, help="the file to write (default: standard output)")
    hi = history_sub.add_parser("import", help="add the conversations of a JSON export (all or nothing)")
    hi.add_argument("file", help="a JSON file written by `history export --format json` (-: standard input)")
    hr = history_sub.add_parser("rm", help="move a conversation to the trash (restore brings it back)")
    hr.add_argument("id", type=int)
    hr.add_argument("--purge", action="store_true", help="delete it for good instead")
    hb = history_sub.add_parser("restore", help="take a conversation out of the trash")
    hb.add_argument("id", type=int)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def _marked(snippet: str) -> str:
    """A search snippet with its matches in bold on a terminal, between [brackets] elsewhere."""
    from llamadesk.core.history import split_marked

    bold = sys.stdout.isatty()
    parts = []
    for text, matched in split_marked(" ".join(snippet.split())):
        if matched:
            parts.append(f"\033[1m{text}\033[0m" if bold else f"[{text}]")
        else:
            parts.append(text)
    return "".join(parts)


def run(args: argparse.Namespace) -> int:
    from llamadesk.core.history import History, export_conversations, export_to_path, parse_export, read_export_file

    command = args.history_command
    if command == "export" and bool(args.ids) == bool(args.all):
        print("llamadesk history export: give conversation ids or --all, not both and not neither.", file=sys.stderr)
        return EXIT_USAGE
    if command == "import":
        # Checked before the history is opened: a bad file leaves no trace, not even a new database.
        conversations = (
            parse_export(sys.stdin.read(), "standard input") if args.file == "-" else read_export_file(Path(args.file))
        )
    with History(get_paths().history_db) as history:
        if command == "list":
            limit = None if args.limit <= 0 else args.limit
            listed = (
                history.list_trash(limit=limit, offset=args.offset)
                if args.trash
                else history.list_conversations(limit=limit, offset=args.offset)
            )
            for c in listed:
                pin = "*" if c.pinned else ""
                print(f"{c.id}{pin}\t{_when(c.deleted_at or c.updated_at)}\t{c.title}")
        elif command == "show":
            conv = history.get_conversation(args.id)
            msgs = history.messages(conv.id)
            if args.json:
                doc = {"conversation": dataclasses.asdict(conv), "messages": [dataclasses.asdict(m) for m in msgs]}
                print(json.dumps(doc, indent=2, ensure_ascii=False))
            else:
                print(f"# {conv.title}")
                for m in msgs:
                    print(f"\n[{m.role}{'' if m.status == 'complete' else ', ' + m.status}]\n{m.content}")
                    for image in m.images:  # where the picture is kept (the data folder), or its hash when gone
                        where = history.images.path(image.sha256) or f"{image.sha256} (no longer stored)"
                        print(f"[image {image.width}×{image.height}: {where}]")
        elif command == "search":
            hits = history.search(args.query, limit=args.limit, offset=args.offset, order=args.order)
            for hit in hits:
                where = (
                    f"{hit.conversation_id}" if hit.message_id is None else f"{hit.conversation_id}#{hit.message_id}"
                )
                if hit.message_id is None:
                    print(f"{where}\t{_when(hit.created_at)}\ttitle\t{_marked(hit.snippet)}")
                else:
                    print(f"{where}\t{_when(hit.created_at)}\t{hit.title}\t{hit.role}: {_marked(hit.snippet)}")
            if not hits:
                print(f"No conversation matches {args.query!r}.", file=sys.stderr)
        elif command == "export":
            ids = None if args.all else args.ids
            if args.output is None:
                export_conversations(history, ids, args.format, sys.stdout)
            else:
                count = export_to_path(history, ids, args.format, args.output)
                print(f"Exported {count} conversation(s) to {args.output}.", file=sys.stderr)
        elif command == "import":
            new_ids = history.import_conversations(conversations)
            span = (
                f" (ids {new_ids[0]}–{new_ids[-1]})" if len(new_ids) > 1 else f" (id {new_ids[0]})" if new_ids else ""
            )
            print(f"Imported {len(new_ids)} conversation(s){span}.")
        elif command == "rm":
            if args.purge:
                history.delete_conversation(args.id)
                print(f"Deleted conversation {args.id} for good.")
            else:
                history.trash_conversation(args.id)
                print(
                    f"Moved conversation {args.id} to the trash; `llamadesk history restore {args.id}` brings it back."
                )
        elif command == "restore":
            history.restore_conversation(args.id)
            print(f"Restored conversation {args.id}.")
    return EXIT_OK

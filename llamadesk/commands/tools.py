"""`llamadesk tools list` (the built-in tools and the MCP servers' tools), `llamadesk mcp list | add | rm | import`
(the MCP servers in mcp.json), and what `llamadesk chat --tool … --mcp … [--yes]` needs: the turn's tools, asked
about on the terminal before each call runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from llamadesk.commands import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from llamadesk.core.errors import LlamaDeskError

SHOWN_ARGUMENTS = 400  # characters of a call's arguments shown on the terminal
SHOWN_RESULT = 200


def add_parser(sub: Any) -> None:
    tools = sub.add_parser("tools", help="the tools a model may call in llamadesk chat (--tool, --mcp)")
    tools_actions = tools.add_subparsers(dest="action", required=True)
    listing = tools_actions.add_parser("list", help="the built-in tools, and the tools of MCP servers")
    listing.add_argument("--mcp", action="append", default=[], metavar="NAME",
                         help="start this MCP server and list its tools (repeatable)")  # fmt: skip

    mcp = sub.add_parser("mcp", help="MCP servers whose tools a model may call (mcp.json)")
    actions = mcp.add_subparsers(dest="action", required=True)
    lst = actions.add_parser("list", help="the MCP servers, started to show their status and tools")
    lst.add_argument("--no-start", action="store_true", help="only list them, do not start them")
    add = actions.add_parser("add", help="add a server: a command (stdio) or a URL (streamable HTTP)")
    add.add_argument("name")
    add.add_argument("target", nargs=argparse.REMAINDER,
                     help="COMMAND [ARGS...] to run it over stdio, or http(s)://… to reach it over HTTP")  # fmt: skip
    add.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for a command (repeatable)")
    add.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="for a URL (repeatable)")
    add.add_argument("--replace", action="store_true", help="change the server of this name")
    rm = actions.add_parser("rm", help="remove a server")
    rm.add_argument("name")
    imp = actions.add_parser("import", help="add the servers of LM Studio's or Claude Desktop's configuration")
    imp.add_argument("source", help="lmstudio, claude, or the path of an mcp.json / claude_desktop_config.json")


def add_chat_arguments(chat: Any) -> None:
    """`llamadesk chat`'s tool options."""
    chat.add_argument("--tool", action="append", default=[], metavar="SPEC",
                      help="let the model call a built-in tool: calculator, time, files:DIR, history, "
                      "documents:NAME (repeatable; llamadesk tools list)")  # fmt: skip
    chat.add_argument("--mcp", action="append", default=[], metavar="NAME",
                      help="let the model call an MCP server's tools (llamadesk mcp list; repeatable)")  # fmt: skip
    chat.add_argument("--yes", action="store_true", help="run every tool call without asking")


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "tools":
            return _tools_list(args.mcp)
        if args.action == "list":
            return _mcp_list(start=not args.no_start)
        if args.action == "add":
            return _mcp_add(args)
        if args.action == "rm":
            from llamadesk.core.tools import mcp_config

            mcp_config.remove(args.name)
            print(f"Removed {args.name}.")
            return EXIT_OK
        return _mcp_import(args.source)
    except LlamaDeskError as exc:
        print(f"llamadesk {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAIL


def _tools_list(servers: list[str]) -> int:
    from llamadesk.core.tools.builtin import BUILTIN_HELP

    print("Built-in (llamadesk chat --tool SPEC):")
    for spec, what in BUILTIN_HELP:
        print(f"  {spec:24} {what}")
    if servers:
        host = start_servers(servers)
        try:
            for name in servers:
                _print_state(host.state(name))
        finally:
            host.close()
    return EXIT_OK


def _mcp_list(*, start: bool) -> int:
    from llamadesk.core.tools import mcp_config
    from llamadesk.core.tools.mcp_host import McpHost

    servers, problems = mcp_config.load()
    for problem in problems:
        print(f"llamadesk mcp: {problem}", file=sys.stderr)
    if not servers:
        print(
            f"No MCP servers in {mcp_config.config_path()}; add one (llamadesk mcp add) or import LM Studio's or "
            "Claude's (llamadesk mcp import lmstudio|claude)."
        )
        return EXIT_OK
    if not start:
        for s in servers:
            print(f"{s.name}\t{s.transport}\t{s.describe()}{'  (disabled)' if s.disabled else ''}")
        return EXIT_OK
    enabled = [s for s in servers if not s.disabled]
    with McpHost(enabled) as host:
        host.start()
        for s in servers:
            if s.disabled:
                print(f"{s.name}: disabled ({s.describe()})")
            else:
                _print_state(host.wait(s.name), s.describe())
    return EXIT_OK


def _print_state(state: Any, where: str = "") -> None:
    from llamadesk.core.markdown import inert_text

    print(f"{state.name}: {state.status}" + (f" ({where})" if where else ""))
    if state.error:
        print(f"  {inert_text(state.error)}")
    if state.stderr_tail:
        tail = inert_text(state.stderr_tail[-600:]).splitlines()[-5:]
        print("  stderr: " + "\n          ".join(tail))
    for tool in state.tools:
        description = inert_text(tool.description.strip().splitlines()[0] if tool.description.strip() else "")
        print(f"  {tool.name:24} {description[:100]}")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LlamaDeskError(f"{what} {item!r} is not KEY=VALUE.")
        out[key] = value
    return out


def _mcp_add(args: argparse.Namespace) -> int:
    from llamadesk.core.tools import mcp_config

    target = [t for t in args.target if t != "--"]
    if not target:
        print("llamadesk mcp add: give a command (with its arguments) or a URL.", file=sys.stderr)
        return EXIT_USAGE
    if target[0].startswith(("http://", "https://")):
        entry: dict[str, Any] = {"url": target[0], "headers": _pairs(args.header, "The header")}
    else:
        entry = {"command": target[0], "args": target[1:], "env": _pairs(args.env, "The variable")}
    server = mcp_config.ServerConfig.from_json(args.name, entry)
    mcp_config.add(server, replace=args.replace)
    print(f"Added {server.name} ({server.transport}: {server.describe()}).")
    return EXIT_OK


def _mcp_import(source: str) -> int:
    from llamadesk.core.tools import mcp_config

    known = mcp_config.other_apps_files()
    path = known.get(source.lower(), Path(source).expanduser())
    added, problems = mcp_config.import_file(path)
    for problem in problems:
        print(f"llamadesk mcp: {problem}", file=sys.stderr)
    print(f"Imported {len(added)} server{'s' if len(added) != 1 else ''} from {path}" +
          (f": {', '.join(added)}." if added else "."))  # fmt: skip
    return EXIT_OK


# -- llamadesk chat --tool/--mcp ----------------------------------------------------------------------------------


def start_servers(names: list[str]) -> Any:
    """An McpHost with the named servers of mcp.json started (waited for); LlamaDeskError for an unknown name."""
    from llamadesk.core.tools import mcp_config
    from llamadesk.core.tools.mcp_host import McpHost

    servers, _problems = mcp_config.load()
    by_name = {s.name: s for s in servers}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise LlamaDeskError(f"There is no MCP server named {unknown[0]!r} (llamadesk mcp list shows them).")
    host = McpHost([by_name[n] for n in dict.fromkeys(names)])
    host.start()
    for name in names:
        host.wait(name)
    return host


def chat_tools(args: argparse.Namespace, search_history: Any, host: Any) -> Any:
    """The ToolUse of `llamadesk chat` (None without --tool and --mcp): the built-ins named, the ready servers'
    tools, approval on the terminal (or --yes). A server that failed is said on stderr; the chat goes on."""
    from llamadesk.core.tools.approval import Approval, allow_all
    from llamadesk.core.tools.builtin import builtin_tools
    from llamadesk.core.tools.spec import ToolBox
    from llamadesk.core.tools.use import ToolUse

    if not args.tool and not args.mcp:
        return None
    box = ToolBox(builtin_tools(args.tool, search_history=search_history))
    for name in args.mcp:
        state = host.state(name)
        if state.status != "ready":
            print(f"llamadesk chat: {state.error or f'The MCP server {name} is not ready.'}", file=sys.stderr)
            continue
        for tool in host.tools(name):
            box.add(tool)
    approval = Approval(allow_all if args.yes else ask_on_terminal)
    return ToolUse(box, approval, on_event=show_event)


def _shown(value: Any, limit: int) -> str:
    from llamadesk.core.markdown import inert_text

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = inert_text(text)
    return text if len(text) <= limit else text[:limit] + "…"


def ask_on_terminal(call: Any, tool: Any) -> Any:
    """Asks on the terminal before a call runs; without a terminal to ask on, the call is denied."""
    from llamadesk.core.tools.approval import Decision

    if not sys.stdin.isatty():
        print(f"\n[{call.name} not run: no terminal to ask on; --yes allows every call]", file=sys.stderr)
        return Decision.DENY
    where = f" ({tool.source})" if tool.source != "builtin" else ""
    prompt = f"\nRun {call.name}{where} with {_shown(call.arguments, SHOWN_ARGUMENTS)}? [y]es, [a]lways, [N]o: "
    try:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
    except (OSError, KeyboardInterrupt):
        return Decision.DENY
    if answer in ("a", "always"):
        return Decision.ALLOW_ALWAYS
    return Decision.ALLOW_ONCE if answer in ("y", "yes") else Decision.DENY


def show_event(event: Any) -> None:
    """Each call's result on stderr (stdout is the reply)."""
    if event.kind == "result" and event.result is not None:
        r = event.result
        print(f"\n[{r.name or 'tool'} {_shown(r.arguments, SHOWN_ARGUMENTS)} → {r.status}: "
              f"{_shown(r.text, SHOWN_RESULT)}]", file=sys.stderr)  # fmt: skip


def check_chat_tools(args: argparse.Namespace) -> str:
    """One sentence when `llamadesk chat`'s --tool/--mcp cannot work ("" when they can), before a model loads."""
    from llamadesk.core.tools import mcp_config
    from llamadesk.core.tools.builtin import builtin_tools

    if not args.tool and not args.mcp:
        return ""
    if args.complete or args.endpoint:
        return "tools are for a chat with a local model; leave out --complete and --endpoint."
    try:
        builtin_tools(args.tool, search_history=lambda *_a, **_k: [])
        servers, _problems = mcp_config.load()
    except LlamaDeskError as exc:
        return str(exc)
    names = {s.name for s in servers}
    unknown = [n for n in args.mcp if n not in names]
    return f"There is no MCP server named {unknown[0]!r} (llamadesk mcp list shows them)." if unknown else ""

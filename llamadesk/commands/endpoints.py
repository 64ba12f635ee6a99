"""`llamadesk endpoints add NAME URL [--key-stdin] | list | rm NAME | models NAME`: remote OpenAI-compatible servers
that `llamadesk chat --endpoint NAME --model ID` and the GUI's model picker use. API keys go to the OS keyring."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llamadesk.commands import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from llamadesk.core.endpoints import SERVER_KINDS, EndpointError, EndpointStore, RemoteOptions, remote_options
from llamadesk.core.errors import LlamaDeskError


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("endpoints", help="remote OpenAI-compatible servers (llama.cpp, vLLM, Ollama, LM Studio)")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add (or with --replace, change) an endpoint")
    add.add_argument("name", help="a short name, e.g. office")
    add.add_argument("url", help="https://host:port (http only to this computer or a private network)")
    add.add_argument("--kind", choices=SERVER_KINDS, default="auto", help="the server's kind (default: ask it)")
    add.add_argument("--key-stdin", action="store_true", help="read the API key from stdin (kept in the keyring)")
    add.add_argument("--allow-http", action="store_true",
                     help="accept plain http to a private network (not needed for this computer)")  # fmt: skip
    add.add_argument("--replace", action="store_true", help="change the endpoint of this name")
    actions.add_parser("list", help="the saved endpoints")
    rm = actions.add_parser("rm", help="remove an endpoint and forget its API key")
    rm.add_argument("name")
    models = actions.add_parser("models", help="ask an endpoint for its models")
    models.add_argument("name")


def remote_chat_options(args: argparse.Namespace) -> RemoteOptions | None:
    """For `llamadesk chat --endpoint NAME --model ID`: the load options, or None without --endpoint."""
    name = getattr(args, "endpoint", None)
    if name is None:
        return None
    return remote_options(EndpointStore().get(name), str(args.model), n_ctx=args.ctx)


def run(args: argparse.Namespace) -> int:
    store = EndpointStore()
    try:
        if args.action == "add":
            return _add(store, args)
        if args.action == "list":
            return _list(store)
        if args.action == "rm":
            gone = store.remove(args.name)
            print(f"Removed {gone.name} ({gone.url}).")
            return EXIT_OK
        return _models(store, args.name)
    except EndpointError as exc:
        print(f"llamadesk endpoints: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LlamaDeskError as exc:
        print(f"llamadesk endpoints: {exc}", file=sys.stderr)
        return EXIT_FAIL


def _add(store: EndpointStore, args: argparse.Namespace) -> int:
    key = None
    if args.key_stdin:
        key = sys.stdin.readline().strip()
        if not key:
            print("llamadesk endpoints: --key-stdin read an empty key.", file=sys.stderr)
            return EXIT_USAGE
    endpoint = store.add(args.name, args.url, kind=args.kind, api_key=key, confirm_http=args.allow_http,
                         replace=args.name if args.replace else None)  # fmt: skip
    if endpoint.allow_http:
        print(f"Warning: {endpoint.url} is plain http; the conversation and the key cross the network unencrypted.",
              file=sys.stderr)  # fmt: skip
    print(f"Added {endpoint.name}: {endpoint.url}" + (" (API key in the system keyring)" if endpoint.has_key else ""))
    return EXIT_OK


def _list(store: EndpointStore) -> int:
    endpoints = store.endpoints()
    if not endpoints:
        print("No endpoints; add one with: llamadesk endpoints add NAME URL")
        return EXIT_OK
    for e in endpoints:
        key = "key in keyring" if e.has_key else "no key"
        models = f"{len(e.models)} model(s) last listed" if e.models else "models not listed yet"
        print(f"{e.name}\t{e.url}\t{e.kind}\t{key}\t{models}")
    return EXIT_OK


def _models(store: EndpointStore, name: str) -> int:
    from llamadesk.core.engines.remote_api import list_models

    endpoint = store.get(name)
    listing = list_models(endpoint)
    store.remember_models(endpoint.name, listing.models)
    print(f"# {endpoint.name} ({endpoint.url}): {listing.kind} server", file=sys.stderr)
    for model in listing.models:
        print(model)
    return EXIT_OK

"""`llamadesk chat`: stream one reply to stdout and record the exchange in history."""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from llamadesk.commands import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_LOAD, EXIT_OK, EXIT_USAGE
from llamadesk.commands.tools import add_chat_arguments, chat_tools, check_chat_tools, start_servers
from llamadesk.core.attachments import AttachmentError
from llamadesk.core.errors import InvalidSetting, LlamaDeskError, ModelLoadError, StructuredOutputError
from llamadesk.core.sampling import MAX_SEED, RANGES, SamplingParams
from llamadesk.paths import get_paths

CTX_RANGE = (256, 1_048_576)
OVERFLOW = {"stop": "stop", "drop-oldest": "drop_oldest", "drop-middle": "drop_middle"}  # → OverflowPolicy values


def add_parser(sub: Any) -> None:
    chat = sub.add_parser("chat", help="stream one reply to stdout and record it in history")
    chat.add_argument("--model", required=True, help="path to a .gguf file (with --endpoint: the server's model id)")
    chat.add_argument("--endpoint", default=None, metavar="NAME", help="use a model of a saved endpoint "
                      "(llamadesk endpoints models NAME lists them)")  # fmt: skip
    chat.add_argument("--system", default="", help="system prompt")
    for name in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens"):
        rng = RANGES[name]
        chat.add_argument(
            "--" + name.replace("_", "-"),
            type=int if rng.is_int else float,
            default=None,
            metavar="N" if rng.is_int else "X",
            help=f"{rng.help} ({rng.minimum:g}–{rng.maximum:g})",
        )
    chat.add_argument("--seed", type=int, default=None, help=f"fixed seed 0–{MAX_SEED} (default: random)")
    chat.add_argument("--ctx", type=int, default=4096, help=f"context length in tokens ({CTX_RANGE[0]}–{CTX_RANGE[1]})")
    chat.add_argument("--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    chat.add_argument("--gpu-layers", type=gpu_layers_arg, default=None, metavar="N|auto|all",
                      help="layers to offload to the GPU (default: auto, as many as fit; all with --rpc)")  # fmt: skip
    chat.add_argument("--template", default=None, help="chat template to use instead of the model's")
    chat.add_argument(
        "--rpc", nargs="?", const="", default=None, metavar="HOST:PORT,...",
        help="split the model over llama.cpp rpc-server hosts: these, or the saved list (llamadesk rpc list)",
    )  # fmt: skip
    chat.add_argument("--conversation", type=int, default=None, metavar="ID",
                      help="continue a saved conversation (llamadesk history list shows the ids): its branch is sent "
                      "before the prompt, within the context by the --overflow policy")  # fmt: skip
    chat.add_argument("--overflow", choices=sorted(OVERFLOW), default="stop",
                      help="when the conversation no longer fits the context: stop (say so, send nothing), "
                      "drop-oldest or drop-middle turns (default: stop)")  # fmt: skip
    chat.add_argument("--no-history", action="store_true", help="do not record the exchange")
    chat.add_argument("--stats", action="store_true", help="print token counts, TTFT and tokens/s to stderr")
    add_chat_arguments(chat)  # --tool, --mcp, --yes (commands/tools.py)
    chat.add_argument("--file", action="append", type=Path, default=[], metavar="PATH",
                      help="add a text file to the message, as a fenced block under its name (repeatable)")  # fmt: skip
    chat.add_argument("--docs", action="append", default=[], metavar="NAME",
                      help="answer from a document collection (llamadesk docs add): its passages that best match the "
                      "prompt join the prompt, numbered for citations [1], [2]; the sources are listed on stderr "
                      "(repeatable)")  # fmt: skip
    chat.add_argument("--complete", action="store_true",
                      help="notebook mode: the model continues PROMPT as raw text, without the chat template "
                      "(saved as a notebook the window opens as one)")  # fmt: skip
    fmt = chat.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help="the reply is a JSON object (held to it by a llama.cpp grammar)")  # fmt: skip
    fmt.add_argument("--json-schema", type=Path, default=None, metavar="FILE",
                     help="the reply is JSON valid under the JSON schema in FILE (held to it by a grammar)",
                     )  # fmt: skip
    from llamadesk.commands import chat_images

    chat_images.add_arguments(chat)  # --image, --mmproj
    chat.add_argument("prompt", help="the message (with --complete: the text to continue); - reads it from stdin")


def gpu_layers_arg(text: str) -> int:
    """--gpu-layers: a number of layers, "auto" (as many as fit in free VRAM) or "all"."""
    from llamadesk.core.engines.api import GPU_LAYERS_ALL, GPU_LAYERS_AUTO

    word = text.strip().lower()
    if word in ("auto", "all"):
        return GPU_LAYERS_AUTO if word == "auto" else GPU_LAYERS_ALL
    try:
        value = int(word)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of layers, auto or all") from None
    if value < GPU_LAYERS_AUTO:
        raise argparse.ArgumentTypeError(f"{value} layers: use 0 or more, auto or all")
    return value


def default_gpu_layers(asked: int | None, rpc_servers: object) -> int:
    """What --gpu-layers means when left out: every layer on the RPC hosts, else as many as fit."""
    from llamadesk.core.engines.api import GPU_LAYERS_ALL, GPU_LAYERS_AUTO

    if asked is not None:
        return asked
    return GPU_LAYERS_ALL if rpc_servers else GPU_LAYERS_AUTO


def _terminal_safe(text: str) -> str:
    """Model output for a terminal: escape sequences dropped, other control characters shown, not obeyed."""
    from llamadesk.core.markdown import inert_text

    return inert_text(text)


def _sampling_from_args(args: argparse.Namespace) -> SamplingParams:
    given = {name: getattr(args, name) for name in RANGES if getattr(args, name, None) is not None}
    return SamplingParams(**given, seed=args.seed)


def response_format_from_args(args: argparse.Namespace) -> Any:
    """--json / --json-schema FILE → a structured.ResponseFormat (None for text); StructuredOutputError (one
    sentence) for a schema file that cannot be read or used."""
    from llamadesk.core.errors import StructuredOutputError
    from llamadesk.core.structured import MAX_SCHEMA_CHARS, ResponseFormat

    if getattr(args, "json", False):
        return ResponseFormat.json_object()
    path: Path | None = getattr(args, "json_schema", None)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_SCHEMA_CHARS + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise StructuredOutputError(f"The schema file {path} could not be read ({reason}).") from None
    try:
        return ResponseFormat.from_schema_text(text, name=path.stem)
    except StructuredOutputError as exc:
        raise StructuredOutputError(f"{path.name}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from llamadesk.core.conversation.sources import FileSource
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.choice import engine_kind, make_engine

    try:
        params = _sampling_from_args(args)
        if not CTX_RANGE[0] <= args.ctx <= CTX_RANGE[1]:
            raise InvalidSetting(f"Context length must be between {CTX_RANGE[0]} and {CTX_RANGE[1]} (got {args.ctx}).")
        response_format = response_format_from_args(args)
    except (InvalidSetting, StructuredOutputError) as exc:
        print(f"llamadesk chat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.conversation is not None and args.no_history:
        print("llamadesk chat: --conversation continues a saved conversation; leave out --no-history.", file=sys.stderr)
        return EXIT_USAGE
    if args.complete and (args.file or args.system or args.endpoint or args.docs):
        print("llamadesk chat: --complete continues the text as written, on a local model; leave out --file, "
              "--docs, --system and --endpoint.", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if problem := check_chat_tools(args):
        print(f"llamadesk chat: {problem}", file=sys.stderr)
        return EXIT_USAGE
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        sources = [FileSource.read(path) for path in args.file]
    except AttachmentError as exc:
        print(f"llamadesk chat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not prompt.strip() and not sources:
        print("llamadesk chat: the prompt is empty.", file=sys.stderr)
        return EXIT_USAGE
    from llamadesk.commands import chat_images

    try:
        images = chat_images.prepare(args)  # --image files read and stored, the projector found
    except LlamaDeskError as exc:
        print(f"llamadesk chat: {exc}", file=sys.stderr)
        return EXIT_USAGE

    rpc_servers: tuple[str, ...] = ()
    if args.rpc is not None:
        from llamadesk.core import rpc

        try:
            rpc_servers = rpc.parse_hosts(args.rpc) if args.rpc else rpc.load_hosts()
        except rpc.RpcError as exc:
            print(f"llamadesk chat: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if not rpc_servers:
            print("llamadesk chat: no RPC hosts: name them (--rpc HOST:PORT,...) or add them (llamadesk rpc add).",
                  file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
    try:
        from llamadesk.commands.endpoints import remote_chat_options

        remote = remote_chat_options(args)  # --endpoint: a model a remote server serves
    except LlamaDeskError as exc:
        print(f"llamadesk chat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    options = remote or LoadOptions(
        Path(args.model), n_ctx=args.ctx, n_threads=args.threads, chat_template=args.template,
        n_gpu_layers=default_gpu_layers(args.gpu_layers, rpc_servers), rpc_servers=rpc_servers,
        mmproj=images.projector, mmproj_gpu=images.projector_gpu,
    )  # fmt: skip
    engine = make_engine(engine_kind(options))  # RPC in a child process: llama.cpp abort()s one that loses a host
    try:
        info = engine.load(options)
    except ModelLoadError as exc:
        print(f"llamadesk chat: {exc}", file=sys.stderr)
        return EXIT_LOAD
    chat_images.show_notes(images)
    if info.rpc_servers:  # where llama.cpp put the layers (stderr: stdout is the reply)
        from llamadesk.core.rpc import split_text

        print(f"[layers: {split_text(info.layer_split)}]", file=sys.stderr)
    if response_format is not None and not engine.capabilities().get("response_format"):
        engine.close()
        print("llamadesk chat: this engine cannot hold replies to JSON; leave out --json and --json-schema.",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE

    try:
        return _converse(args, engine, info, prompt, params, sources, response_format, images.refs)
    finally:
        engine.close()


def _converse(args: argparse.Namespace, engine: Any, info: Any, prompt: str, params: SamplingParams,
              sources: list[Any], response_format: Any = None, images: tuple[Any, ...] = ()) -> int:  # fmt: skip
    """The turn (core/conversation/turn.py): planned over the conversation's branch, streamed to stdout, saved."""
    from llamadesk.core.conversation import notebook
    from llamadesk.core.conversation.lifecycle import NEW_TITLE
    from llamadesk.core.conversation.plan import OverflowPolicy
    from llamadesk.core.conversation.turn import Planner, begin_turn
    from llamadesk.core.documents.context import DocumentsSource
    from llamadesk.core.engines.api import FinishReason
    from llamadesk.core.history import History

    # --no-history runs the same turn on a history kept in memory: nothing reaches the disk.
    db = Path(":memory:") if args.no_history else get_paths().history_db
    planner = Planner(OverflowPolicy(OVERFLOW[args.overflow]), n_ctx=info.n_ctx)
    history: History | None = None
    host = start_servers(args.mcp) if args.mcp else None  # MCP servers, for their tools (commands/tools.py)
    try:
        history = History(db)
        if args.conversation is None:
            sampling = {**params.to_dict(), notebook.MODE_KEY: notebook.NOTEBOOK} if args.complete else params.to_dict()
            conv = history.create_conversation(NEW_TITLE, model=info.file_name, system_prompt=args.system,
                                               sampling=sampling)  # fmt: skip
        else:
            conv = history.get_conversation(args.conversation)
            if notebook.is_notebook_sampling(conv.sampling) != args.complete:
                kind = "a chat: leave out --complete" if args.complete else "a notebook: continue it with --complete"
                raise LlamaDeskError(f"Conversation {conv.id} is {kind}.")
            history.update_conversation(conv.id, model=info.file_name)
        if args.complete:
            turn = notebook.begin_completion_turn(history, conv.id, prompt, info.file_name)
        else:
            system = args.system or conv.system_prompt
            budget = max(info.n_ctx - params.max_tokens, 0)  # what the files may take: the context less the reply
            documents = [DocumentsSource(args.docs)] if args.docs else []
            if documents and len(sample := documents[0].sample(prompt)) >= 200:
                # The budget is spent in estimated tokens: count some of these documents in the model's own first.
                sampled = [{"role": "user", "content": sample}]
                planner.calibrate(engine.count_tokens(sampled), sampled)
            turn = begin_turn(history, planner, conv.id, prompt, params, system, sources=sources,
                              source_budget=budget, prompt_sources=documents, images=images)  # fmt: skip
        tools = chat_tools(args, history.search, host)
    except LlamaDeskError as exc:  # a full disk, a conversation that is not there, a file too large for the context
        if host is not None:
            host.close()
        if history is not None:
            history.close()
        print(f"llamadesk chat: {exc}", file=sys.stderr)
        return EXIT_FAIL

    cancel = threading.Event()

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        cancel.set()

    reply: list[str] = []

    def show(text: str) -> None:
        reply.append(text)
        sys.stdout.write(shown(text))
        sys.stdout.flush()

    previous = signal.signal(signal.SIGINT, on_sigint)
    shown = _terminal_safe if sys.stdout.isatty() else str  # a reply must not drive the user's terminal
    try:
        stream = engine.stream if response_format is None else functools.partial(
            engine.stream, response_format=response_format)  # fmt: skip
        done = turn.run(stream, params, cancel, on_text=show, tools=tools)
    except LlamaDeskError as exc:
        print(f"\nllamadesk chat: {exc}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        signal.signal(signal.SIGINT, previous)
        history.close()
        if host is not None:
            host.close()
    sys.stdout.write("\n")
    reason = done.stats.finish_reason
    _print_sources(turn.extra.get("sources", []))
    if turn.excluded_ids:
        print(f"[{len(turn.excluded_ids)} earlier messages were left out of the prompt to fit]", file=sys.stderr)
    if args.stats:
        s = done.stats
        print(
            f"[{s.prompt_tokens} prompt tokens, {s.generated_tokens} generated, TTFT {s.ttft_s * 1000:.0f} ms, "
            f"{s.tokens_per_s:.1f} tokens/s, seed {s.seed}, {reason.value}]",
            file=sys.stderr,
        )
    if turn.writer.unsaved is not None:  # the last line: what was saved before the disk filled stays, "interrupted"
        print(f"llamadesk chat: {turn.writer.unsaved}", file=sys.stderr)
        return EXIT_FAIL
    if response_format is not None and reason is not FinishReason.CANCELLED:
        from llamadesk.core.structured import cut_off_sentence

        problem = cut_off_sentence(params.max_tokens) if reason is FinishReason.LENGTH else \
            response_format.check_reply("".join(reply))  # fmt: skip
        if problem:
            print(f"llamadesk chat: {problem}", file=sys.stderr)
            return EXIT_FAIL
    return EXIT_INTERRUPTED if reason is FinishReason.CANCELLED else EXIT_OK


def _print_sources(records: list[dict[str, Any]]) -> None:
    """What the reply's [1], [2] refer to, on stderr (stdout is the reply)."""
    from llamadesk.core.documents.context import place_of

    for record in records:
        if record.get("kind") == "documents" and not record.get("quoted"):
            print(f"[no passages of {', '.join(record.get('collections', []))} matched the prompt]", file=sys.stderr)
        elif record.get("kind") in ("passage", "document"):
            print(f"[{record['n']}] {place_of(record)}", file=sys.stderr)

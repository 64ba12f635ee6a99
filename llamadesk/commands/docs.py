"""`llamadesk docs add [-v] NAME PATH… | list [NAME] | rm NAME | reindex [-v] NAME | search NAME QUERY [--limit N] |
embed NAME [--model PATH | --remove]`: collections of documents, indexed for search (BM25, or hybrid with an
embedding model), that a conversation can draw passages from."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from llamadesk.commands import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

SNIPPET_CHARS = 160
VERBOSE_HELP = "a line on stderr for each file, as it is done: 'N/TOTAL PATH' (for logs and scripts)"


def add_parser(sub: Any) -> None:
    docs = sub.add_parser("docs", help="document collections to chat with (indexed for search)")
    actions = docs.add_subparsers(dest="docs_command", required=True)
    add = actions.add_parser("add", help="add files and folders to a collection (made if new) and index them")
    add.add_argument("name", help="the collection's name (any text)")
    add.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    add.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    ls = actions.add_parser("list", help="the collections; with NAME, its folders and the files it could not read")
    ls.add_argument("name", nargs="?")
    rm = actions.add_parser("rm", help="delete a collection and its index (the documents themselves stay)")
    rm.add_argument("name")
    re = actions.add_parser("reindex", help="read what changed in a collection's folders since the last time")
    re.add_argument("name")
    re.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    se = actions.add_parser("search", help="the passages that best match the words (BM25; with an embedding model, "
                            "hybrid: a line on stderr says which ranking ran)")  # fmt: skip
    se.add_argument("name")
    se.add_argument("query")
    se.add_argument("--limit", type=int, default=5, help="how many passages (default 5)")
    em = actions.add_parser("embed", help="search a collection by meaning too: embed its passages with a GGUF "
                            "embedding model (only those without a vector yet)")  # fmt: skip
    em.add_argument("name")
    which = em.add_mutually_exclusive_group()
    which.add_argument("--model", type=Path, metavar="PATH", help="the embedding model (a GGUF such as bge-small-en "
                       "or nomic-embed-text); another model than before embeds everything again")  # fmt: skip
    which.add_argument("--remove", action="store_true", help="forget the model and the vectors: BM25 alone again")


def _error(message: str, code: int = EXIT_FAIL) -> int:
    print(f"llamadesk docs: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from llamadesk.core.documents.store import CollectionError, UnknownCollection
    from llamadesk.core.errors import LlamaDeskError

    handlers = {"add": _add, "list": _list, "rm": _rm, "reindex": _reindex, "search": _search, "embed": _embed}
    try:
        return handlers[args.docs_command](args)
    except UnknownCollection as exc:
        return _error(str(exc), EXIT_USAGE)
    except CollectionError as exc:
        return _error(str(exc), EXIT_FAIL)
    except LlamaDeskError as exc:  # an embedding model that cannot be used
        return _error(str(exc), EXIT_FAIL)


def size_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _add(args: argparse.Namespace) -> int:
    from llamadesk.core.documents.store import normalize_name, open_or_create

    normalize_name(args.name)  # a bad name is refused before anything is made
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        return _error(f"{missing[0]} does not exist.", EXIT_FAIL)
    collection, new = open_or_create(args.name)
    with collection:
        collection.add_roots(args.paths)
        if new:
            print(f"Made the collection {collection.name!r}.", file=sys.stderr)
        return _index(collection, verbose=getattr(args, "verbose", False))


def _reindex(args: argparse.Namespace) -> int:
    from llamadesk.core.documents.store import open_collection

    with open_collection(args.name) as collection:
        return _index(collection, verbose=getattr(args, "verbose", False))


class _ProgressLine:
    """One redrawn line on a terminal (at most 10 times a second); nothing when stderr is a pipe or a file.
    `per_file`: instead, a line for each file as it is done, `N/TOTAL PATH`, flushed at once: a log shows where a
    run was, and a script knows which files are done (Ctrl+C keeps exactly those)."""

    def __init__(self, stream: TextIO, per_file: bool = False) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.per_file = per_file
        self.last = 0.0
        self.drawn = False

    def __call__(self, p: Any) -> None:
        if self.per_file:
            self.stream.write(f"{p.files_done}/{p.files_total} {_terminal_safe(p.path)}\n")
            self.stream.flush()
            return
        now = time.monotonic()
        if not self.tty or (now - self.last < 0.1 and p.files_done != p.files_total):
            return
        self.last = now
        eta = f"ETA {int(p.eta_s) // 60}:{int(p.eta_s) % 60:02d}" if p.eta_s is not None else ""
        name = Path(p.path).name[:40]
        self.stream.write(f"\r{p.files_done}/{p.files_total} files, {size_text(p.bytes_done)} of "
                          f"{size_text(p.bytes_total)}, {p.files_per_s:.0f} files/s {eta} {name}\033[K")  # fmt: skip
        self.stream.flush()
        self.drawn = True

    def done(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _index(collection: Any, verbose: bool = False) -> int:
    from llamadesk.core.documents.index import index_collection

    cancel = threading.Event()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        cancel.set()  # seen between files; the work done so far is committed
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl+C stops at once

    previous = signal.signal(signal.SIGINT, on_sigint)
    printer = _ProgressLine(sys.stderr, per_file=verbose)
    try:
        print(f"Indexing {collection.name!r}…", file=sys.stderr, flush=True)
        report = index_collection(collection, progress=printer, cancel=cancel)
    except KeyboardInterrupt:
        printer.done()
        print("Stopped; the files indexed before the last batch are kept.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    printer.done()
    stats = collection.stats()
    print(f"{collection.name}: {report.read} file(s) read, {report.unchanged + report.rehashed} unchanged, "
          f"{report.removed} removed, {stats.problems} problem(s); {stats.files} file(s), {stats.passages} "
          f"passage(s), {size_text(stats.bytes_on_disk)}.")  # fmt: skip
    if report.embedded:
        print(f"{collection.name}: {report.embedded} passage(s) embedded.")
    if report.embedding_problem:
        print(f"  embedding: {report.embedding_problem}", file=sys.stderr)
    for path, sentence in report.problem_files[:20]:
        print(f"  problem: {path}: {sentence}", file=sys.stderr)
    if len(report.problem_files) > 20:
        print(f"  … and {len(report.problem_files) - 20} more; `llamadesk docs list {collection.name}` lists them.",
              file=sys.stderr)  # fmt: skip
    if report.cancelled:
        print("Stopped; what was indexed is kept, and `llamadesk docs reindex` goes on from there.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from llamadesk.core.documents.store import list_collections, open_collection

    if args.name is None:
        listed = list_collections()
        if not listed:
            print("No collections; make one with: llamadesk docs add NAME PATH…")
        for info in listed:
            with open_collection(info.name) as c:
                s = c.stats()
            problems = f", {s.problems} problem(s)" if s.problems else ""
            print(f"{info.name}\t{s.files} file(s), {s.passages} passage(s){problems}\t{size_text(s.bytes_on_disk)}")
        return EXIT_OK
    with open_collection(args.name) as c:
        s = c.stats()
        print(f"# {c.name}: {s.files} file(s), {s.passages} passage(s), {s.chars:,} characters, "
              f"{size_text(s.bytes_on_disk)}")  # fmt: skip
        for root in c.roots():
            print(f"root\t{root}")
        for problem in c.problems():
            print(f"problem\t{problem.path}\t{problem.sentence}")
    return EXIT_OK


def _rm(args: argparse.Namespace) -> int:
    from llamadesk.core.documents.store import delete_collection, open_collection

    with open_collection(args.name) as c:
        name = c.name
    path = delete_collection(name)
    print(f"Deleted the collection {name!r} and its index ({path.name}); the documents themselves are untouched.")
    return EXIT_OK


def _place(hit: Any) -> str:
    return f"{hit.path} (page {hit.page})" if hit.page is not None else f"{hit.path}:{hit.line}"


def _search(args: argparse.Namespace) -> int:
    from llamadesk.core.documents.search import search_ranked
    from llamadesk.core.documents.store import open_collection

    if args.limit < 1:
        return _error("--limit must be at least 1.", EXIT_USAGE)
    with open_collection(args.name) as c:
        hits, ranking = search_ranked(c, args.query, limit=args.limit)
    if ranking.model:  # a collection with an embedding model: hybrid, or BM25 and why (without one: BM25, silently)
        print(f"ranking: {ranking.describe()}", file=sys.stderr)
    safe = _terminal_safe if sys.stdout.isatty() else (lambda s: s)
    for hit in hits:
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= SNIPPET_CHARS else snippet[: SNIPPET_CHARS - 1].rstrip() + "…"
        score = f"{hit.score:.4f}" if ranking.kind == "hybrid" else f"{hit.score:.2f}"  # RRF: ~1/61 at best
        print(f"{safe(_place(hit))}\t{score}\t{safe(snippet)}")
    if not hits:
        print(f"No passage matches {args.query!r}.", file=sys.stderr)
    return EXIT_OK


def _embed(args: argparse.Namespace) -> int:
    from llamadesk.core.documents.embeddings import Embedder, EmbeddingError
    from llamadesk.core.documents.store import EmbeddingModel, open_collection
    from llamadesk.core.fileinfo import sha256_file

    with open_collection(args.name) as collection:
        if args.remove:
            collection.set_embedding_model(None)
            print(f"{collection.name}: no embedding model; searched by BM25 alone, its vectors deleted.")
            return EXIT_OK
        current = collection.embedding_model()
        if args.model is not None:
            path = args.model.expanduser().resolve()
        elif current is not None:
            path = Path(current.path)
        else:
            return _error(f"{collection.name!r} has no embedding model yet; choose one with --model PATH.", EXIT_USAGE)
        embedder = Embedder(path)
        try:
            if args.model is not None:
                model = EmbeddingModel(str(path), path.name, sha256_file(path), embedder.dimension)
                if collection.set_embedding_model(model) and current is not None:
                    print(f"Another model than before: the vectors of {current.name} are deleted.", file=sys.stderr)
            elif current is not None and embedder.dimension != current.dimension:
                raise EmbeddingError(f"{embedder.name} now gives vectors of {embedder.dimension} numbers, not "
                                     f"{current.dimension}; choose it again with --model.")  # fmt: skip
            return _embed_passages(collection, embedder)
        finally:
            embedder.close()


def _embed_passages(collection: Any, embedder: Any) -> int:
    from llamadesk.core.documents import vectors

    cancel = threading.Event()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        cancel.set()  # seen between batches; the vectors made so far are committed
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def shown(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r{done}/{total} passages embedded\033[K")
            sys.stderr.flush()

    previous = signal.signal(signal.SIGINT, on_sigint)
    started = time.monotonic()
    try:
        print(f"Embedding the passages of {collection.name!r} with {embedder.name} ({embedder.dimension} "
              "dimensions)…", file=sys.stderr, flush=True)  # fmt: skip
        done = vectors.embed_missing(collection, embedder, progress=shown, cancel=cancel)
    except KeyboardInterrupt:
        print("\nStopped; the passages embedded before the last batch keep their vectors.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    seconds = time.monotonic() - started
    print(f"{collection.name}: {done} passage(s) embedded in {seconds:.1f} s; {vectors.count(collection)} of "
          f"{collection.stats().passages} have a vector ({embedder.name}).")  # fmt: skip
    if cancel.is_set():
        print("Stopped; `llamadesk docs embed` goes on from there.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _terminal_safe(text: str) -> str:
    """A document's text must not drive the terminal: control characters (escape sequences) are dropped."""
    return "".join(ch for ch in text if ch >= " " or ch == "\t")

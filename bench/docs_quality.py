"""Retrieval quality: recall@5 of our own question set over real public texts that every machine running the bench
has, the Python standard library's top-level modules (their docstrings and comments; PSF licence).

Each question names what a module does in the words a user would type, and the file that answers it. A question
counts as found when that file is among the files of the best 5 passages. BM25 always; hybrid (BM25 fused with
vectors) with the embedding model LLAMADESK_BENCH_EMBED_MODEL when set. Without one, a tiny generated model with
random weights (tests/gguf_factory.py) runs the hybrid path only to show it works end to end, on the first
PLUMBING_PASSAGES passages (it embeds ~1 passage a second on a loaded 2-core machine): its recall says nothing about
the quality of a real embedding model, and the figure says so (`kind`, `embedded`).

Run alone: `python -m bench.docs_quality`.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# question → the standard library module (a top-level file) that answers it
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("How do I compute a SHA-256 digest of some bytes?", "hashlib.py"),
    ("How can I parse command-line options and print a help message automatically?", "argparse.py"),
    ("Which function finds the insertion point in a sorted list so it stays sorted?", "bisect.py"),
    ("How do I encode binary data as base64 text and decode it again?", "base64.py"),
    ("How do I read and write comma-separated values files with a dialect?", "csv.py"),
    ("How can I make a shallow or a deep copy of an object?", "copy.py"),
    ("How do I show the differences between two lists of lines as a unified diff?", "difflib.py"),
    ("How do I match file names against shell-style wildcard patterns?", "fnmatch.py"),
    ("How do I represent exact rational numbers with a numerator and a denominator?", "fractions.py"),
    ("How do I cache the results of a function with a least-recently-used cache?", "functools.py"),
    ("How do I find all path names matching a pattern like *.txt, recursively?", "glob.py"),
    ("How do I compress and decompress files in the gzip format?", "gzip.py"),
    ("Which module gives a priority queue built on a binary heap?", "heapq.py"),
    ("How do I compute a keyed hash for message authentication?", "hmac.py"),
    ("How do I get the source code of a function or the signature of a callable?", "inspect.py"),
    ("How do I parse and manipulate IPv4 and IPv6 addresses and networks?", "ipaddress.py"),
    ("How do I guess the MIME type of a file from its extension?", "mimetypes.py"),
    ("How do I read login credentials from a .netrc file?", "netrc.py"),
    ("How do I format numbers and currency according to the user's locale?", "locale.py"),
    ("How do I serialize Python objects to a byte stream and load them back?", "pickle.py"),
    ("How do I find out the machine, processor and operating system release I am running on?", "platform.py"),
    ("How do I work with filesystem paths as objects, joining them with the / operator?", "pathlib.py"),
    ("How can I pick a random integer or shuffle a list?", "random.py"),
    ("How do I split a string the way a Unix shell would, honouring quotes?", "shlex.py"),
    ("How do I copy a whole directory tree or move files?", "shutil.py"),
    ("How do I set a handler for SIGINT?", "signal.py"),
    ("How do I compute the mean, median and standard deviation of a sample?", "statistics.py"),
    ("How do I substitute $name placeholders in a string template?", "string.py"),
    ("How do I run an external command and capture its output and return code?", "subprocess.py"),
    ("How do I create a temporary file or directory that is removed automatically?", "tempfile.py"),
    ("How do I wrap a long paragraph of text to a given width?", "textwrap.py"),
    ("How do I start a thread and wait for it, and share a lock between threads?", "threading.py"),
    ("How do I measure the execution time of small code snippets?", "timeit.py"),
    ("How do I print or format the stack trace of an exception?", "traceback.py"),
    ("How do I generate a universally unique identifier?", "uuid.py"),
    ("How do I issue a warning and filter which warnings are shown?", "warnings.py"),
    ("How do I keep a reference to an object that does not keep it alive for the garbage collector?", "weakref.py"),
    ("How do I open a URL in the user's web browser?", "webbrowser.py"),
    ("How do I read and create tar archives?", "tarfile.py"),
    ("How do I define enumerations of symbolic names bound to constant values?", "enum.py"),
    (
        "How do I get classes with an automatically generated __init__ and __repr__ from annotated fields?",
        "dataclasses.py",
    ),
    ("How do I read a configuration file with [sections] and key = value lines?", "configparser.py"),
    ("How do I do arithmetic on dates and times with a timedelta?", "datetime.py"),
    ("How do I write a context manager from a generator function?", "contextlib.py"),
    ("How do I pretty-print a nested data structure?", "pprint.py"),
    ("How do I compare two directories to see which files differ?", "filecmp.py"),
    ("How do I print a month's calendar as text?", "calendar.py"),
    ("How do I read a password from the terminal without echoing it?", "getpass.py"),
    ("How do I send an email through an SMTP server?", "smtplib.py"),
    ("How do I upload a file to an FTP server?", "ftplib.py"),
    ("How do I convert colours between RGB and HSV?", "colorsys.py"),
    ("How do I build a line-oriented command interpreter with a prompt?", "cmd.py"),
    ("How do I generate a cryptographically strong random token for a password reset link?", "secrets.py"),
    ("How do I read a file line by line from several files given on the command line?", "fileinput.py"),
)
K = 5
EMBED_MODEL_ENV = "LLAMADESK_BENCH_EMBED_MODEL"
PLUMBING_PASSAGES = 160  # the plumbing model embeds this many (its random vectors mean nothing; ~1 passage/s here)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files() -> list[Path]:
    """The top-level modules of this Python's standard library (the corpus): real text, on every machine."""
    return sorted(p for p in stdlib_root().glob("*.py") if p.is_file() and not p.name.startswith("_"))


def recall_at(rankings: dict[str, list[str]], answers: dict[str, str], k: int = K) -> tuple[float, list[str]]:
    """The share of questions whose answer file is among the files of the best `k` passages, and those missed."""
    missed = [q for q, files in rankings.items() if answers[q] not in files[:k]]
    return (1 - len(missed) / max(len(rankings), 1)), missed


def _files_of(hits: list[Any]) -> list[str]:
    return [Path(h.path).name for h in hits]


def _embed_model(tmp: Path) -> tuple[Path, str]:
    chosen = os.environ.get(EMBED_MODEL_ENV)
    if chosen:
        return Path(chosen), "embedding model"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from gguf_factory import write_tiny_llama  # a test helper: plumbing only

    from llamadesk.core.documents.embeddings import POOLING_MEAN

    path = write_tiny_llama(tmp / "tiny-embed.gguf", pooling=POOLING_MEAN)
    return path, "tiny generated model with random weights: plumbing only, recall not a measure of quality"


def run(limit: int = K) -> list[dict[str, Any]]:
    from llamadesk.core.documents import embeddings, store, vectors
    from llamadesk.core.documents.index import index_collection
    from llamadesk.core.documents.search import search
    from llamadesk.core.documents.store import EmbeddingModel
    from llamadesk.core.fileinfo import sha256_file

    files = corpus_files()
    present = {p.name for p in files}
    answers = {q: f for q, f in QUESTIONS if f in present}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="llamadesk-bench-quality-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "stdlib"
        root.mkdir()
        for p in files:  # a copy: the index records paths under the collection's root
            (root / p.name).write_bytes(p.read_bytes())
        collection = store.create_collection("stdlib", tmp / "collections")
        collection.add_roots([root])
        report = index_collection(collection)
        stats = collection.stats()
        bm25 = {q: _files_of(search(collection, q, limit)) for q in answers}
        recall, missed = recall_at(bm25, answers, limit)
        results.append({"name": "docs_recall_at_5_bm25", "value": round(100 * recall, 1), "unit": "% of questions",
                        "goal": None, "questions": len(answers), "files": report.read, "passages": stats.passages,
                        "corpus": f"Python {sys.version_info.major}.{sys.version_info.minor} stdlib top-level modules",
                        "missed": [answers[q] for q in missed]})  # fmt: skip
        model, kind = _embed_model(tmp)
        embedder = embeddings.Embedder(model)
        try:
            collection.set_embedding_model(EmbeddingModel(str(model), model.name, sha256_file(model),
                                                          embedder.dimension))  # fmt: skip
            start = time.perf_counter()
            stop = threading.Event()
            plumbing = not os.environ.get(EMBED_MODEL_ENV)

            def enough(done: int, _total: int) -> None:
                if plumbing and done >= PLUMBING_PASSAGES:
                    stop.set()

            embedded = vectors.embed_missing(collection, embedder, progress=enough, cancel=stop)
            embed_s = time.perf_counter() - start
        finally:
            embedder.close()
        hybrid = {q: _files_of(search(collection, q, limit)) for q in answers}
        recall_h, missed_h = recall_at(hybrid, answers, limit)
        results.append({"name": "docs_recall_at_5_hybrid", "value": round(100 * recall_h, 1),
                        "unit": "% of questions", "goal": None, "questions": len(answers), "model": model.name,
                        "kind": kind, "embed_s": round(embed_s, 1), "embedded": embedded,
                        "missed": [answers[q] for q in missed_h]})  # fmt: skip
        collection.close()
        embeddings.release_cached()
        vectors.forget_cached()
    return results


def main() -> int:
    for result in run():
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

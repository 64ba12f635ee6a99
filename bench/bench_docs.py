"""Document collections at scale: 10,000 files / 100 MB of text indexed (BM25 only), then ~100 searches.

Run alone with `python -m bench.bench_docs [--files N --mb M]`: one JSON object per figure. The text is real-ish:
paragraphs of the license texts and package copyright files found on this machine, shuffled per file, with a few
words of each file's own (so a search can name one file). Goals: indexing ≤ 60 s on 2 cores, query p95 ≤ 50 ms,
peak RSS growth while indexing ≤ +200 MB.

Quality: search() leaves common words out of the candidates (search.py says how), so the bench also ranks every
query the plain way, an OR of all its words over the whole collection, and counts the queries whose best 5 have
the same scores (the text repeats paragraphs, so equal passages tie and their order is no measure) and whose best
passage has the same score.

Embedding (docs_embed_*): our Embedder against raw llama-cpp-python `Llama.embed(normalize=True)` on the same model,
the same context settings and the same batch of passages, alternated; the median of the pairwise ratios (goal ≥
0.95x). The model: LLAMADESK_BENCH_EMBED_MODEL (a GGUF embedding model) if set, else the starter model (SmolLM2-135M,
a chat model) pooled by mean, since no embedding model can be downloaded on the machines this runs on.

Retrieval quality (docs_recall_*): bench/docs_quality.py, recall@5 of its question set over the Python standard
library's modules, BM25 and hybrid.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llamadesk.core.documents import store
from llamadesk.core.documents.index import index_collection
from llamadesk.core.documents.search import fts_query, search

SEED = 11
BENCHMARKS = ("docs_index", "docs_query", "docs_size", "docs_rss", "docs_embed", "docs_recall", "docs_index_100k")
GOALS = {"index_s": 60.0, "query_p95_ms": 50.0, "rss_growth_mb": 200.0, "embed_ratio": 0.95}
EMBED_MODEL_ENV = "LLAMADESK_BENCH_EMBED_MODEL"
SOURCES = ("/usr/share/common-licenses", "/usr/share/doc", sys.base_prefix)


def paragraphs(limit_files: int = 3000) -> list[str]:
    """Paragraphs of the license and copyright texts on this machine (at least a built-in few)."""
    found: list[str] = []
    seen: set[str] = set()
    files = 0
    for source in SOURCES:
        for dirpath, _dirs, names in os.walk(source):
            for name in names:
                if not (name in ("copyright", "LICENSE", "LICENSE.txt", "COPYING") or dirpath.endswith("licenses")):
                    continue
                try:
                    text = Path(dirpath, name).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                for para in text.split("\n\n"):
                    para = para.strip()
                    if 80 <= len(para) <= 3000 and para not in seen:
                        seen.add(para)
                        found.append(para)
                files += 1
                if files >= limit_files:
                    return found
    return found or ["The quick brown fox jumps over the lazy dog. " * 5]


def own_word(i: int) -> str:
    rng = random.Random(i)
    return "".join(rng.choice("bcdfghjklmnpqrstvwz") + rng.choice("aeiou") for _ in range(4)) + f"{i}"


def generate(root: Path, files: int, total_bytes: int) -> int:
    """Writes `files` text files (in folders of 100) of about total_bytes in all; returns the bytes written."""
    rng = random.Random(SEED)
    paras = paragraphs()
    per_file = total_bytes // files
    written = 0
    for i in range(files):
        folder = root / f"d{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        parts, size = [], 0
        word = own_word(i)
        while size < per_file:
            para = rng.choice(paras)
            if rng.random() < 0.2:
                para = f"{para} ({word})"
            parts.append(para)
            size += len(para) + 2
        data = "\n\n".join(parts).encode("utf-8")
        (folder / f"doc{i:05d}.txt").write_bytes(data)
        written += len(data)
    return written


def queries(n: int, files: int) -> list[str]:
    """Common and rare words, several words, a file's own word, and words that are nowhere."""
    rng = random.Random(SEED + 1)
    words = [w for p in paragraphs()[:400] for w in p.split() if w.isalpha() and len(w) > 3]
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(rng.choice(words))
        elif kind == 1:
            out.append(" ".join(rng.sample(words, 3)))
        elif kind == 2:
            out.append(f"{own_word(rng.randrange(files))} {rng.choice(words)}")
        else:
            out.append(" ".join(rng.sample(words, 6)) + "?")
    return out


class PeakRss:
    """The process's resident memory, sampled every 20 ms on a thread, so the peak of a run can be read."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.base = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def figure(name: str, value: float, unit: str, goal: float | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "value": round(value, 2), "unit": unit, "goal": goal, **extra}


def run(args: argparse.Namespace | Sequence[str] | None = None) -> list[dict[str, Any]]:
    if args is None or not isinstance(args, argparse.Namespace):
        args = parse_args(list(args or []))
    files = int(getattr(args, "files", 10_000))
    mb = float(getattr(args, "mb", 100))
    n_queries = int(getattr(args, "queries", 100))
    if getattr(args, "quick", False):
        files, mb, n_queries = files // 10, mb / 10, 30
    only = getattr(args, "only", None)
    results: list[dict[str, Any]] = []
    if not only or any(not group.startswith(("docs_embed", "docs_recall", "docs_index_100k")) for group in only):
        with tempfile.TemporaryDirectory(prefix="llamadesk-bench-docs-") as tmp:
            results = _measure(Path(tmp), files, int(mb * 1e6), n_queries)
    if not only or any("docs_embed".startswith(group) or group.startswith("docs_embed") for group in only):
        quick = getattr(args, "quick", False)
        results += _embedding(int(getattr(args, "embed_batch", 4 if quick else 16)), 2 if quick else 8)
    if not only or any(group.startswith("docs_recall") or "docs_recall".startswith(group) for group in only):
        from bench.docs_quality import run as recall

        results += recall()
    if not only or any(group.startswith("docs_index_100k") or "docs_index_100k".startswith(group) for group in only):
        with tempfile.TemporaryDirectory(prefix="llamadesk-bench-100k-") as tmp:
            results += _hundred_k(Path(tmp), 10_000 if getattr(args, "quick", False) else 100_000)
    only = getattr(args, "only", None)
    if only:
        results = [r for r in results if any(r["name"].startswith(group) for group in only)]
    return results


def _measure(tmp: Path, files: int, total_bytes: int, n_queries: int) -> list[dict[str, Any]]:
    root = tmp / "docs"
    started = time.perf_counter()
    written = generate(root, files, total_bytes)
    results = [figure("docs_generate_s", time.perf_counter() - started, "s", None, files=files, bytes=written),
               figure("docs_machine_load_1min", os.getloadavg()[0], "", None, cpus=os.cpu_count())]  # fmt: skip
    collection = store.create_collection("bench", tmp / "collections")
    collection.add_roots([root])
    with PeakRss() as rss:
        start, cpu = time.perf_counter(), time.process_time()
        report = index_collection(collection)
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    stats = collection.stats()
    assert report.read == files and report.problems == 0, report
    results.append(figure("docs_index_s", seconds, "s", GOALS["index_s"], cpu_s=round(cpu_s, 2), files=files,
                          mb_text=round(written / 1e6, 1), passages=stats.passages))  # fmt: skip
    results.append(figure("docs_index_files_per_s", files / seconds, "files/s", None))
    results.append(figure("docs_index_mb_per_s", written / 1e6 / seconds, "MB/s", None))
    results.append(figure("docs_rss_growth_mb", (rss.peak - rss.base) / 1e6, "MB", GOALS["rss_growth_mb"]))
    results.append(figure("docs_size_bytes_per_mb_text", stats.bytes_on_disk / (written / 1e6), "B/MB", None,
                          db_mb=round(stats.bytes_on_disk / 1e6, 1)))  # fmt: skip
    start = time.perf_counter()
    again = index_collection(collection)
    results.append(figure("docs_index_unchanged_s", time.perf_counter() - start, "s", None, unchanged=again.unchanged))
    timings, empty, same_5, same_1 = [], 0, 0, 0
    for q in queries(n_queries, files):
        t = time.perf_counter()
        hits = search(collection, q, limit=5)
        timings.append((time.perf_counter() - t) * 1000)
        empty += not hits
        plain = [float(r[0]) for r in collection.read(  # type: ignore[arg-type]
            "SELECT -bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? ORDER BY bm25(passages_fts)"
            " LIMIT 5", (fts_query(q),))]  # fmt: skip
        same = [abs(a - b) < 1e-4 for a, b in zip(plain, [h.score for h in hits], strict=False)]
        same_5 += len(plain) == len(hits) and all(same)
        same_1 += bool(same) and same[0]
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    results.append(figure("docs_query_p50_ms", statistics.median(timings), "ms", None, queries=len(timings),
                          without_hits=empty))  # fmt: skip
    results.append(figure("docs_query_p95_ms", p95, "ms", GOALS["query_p95_ms"], worst_ms=round(timings[-1], 2)))
    results.append(figure("docs_query_same_as_plain_bm25", 100 * same_5 / len(timings), "% of queries", None,
                          best_5_same_scores=same_5, best_1_same_score=same_1, queries=len(timings)))  # fmt: skip
    collection.close()
    shutil.rmtree(root, ignore_errors=True)
    return results


def _hundred_k(tmp: Path, files: int) -> list[dict[str, Any]]:
    """A folder of `files` tiny files (100 per folder) indexed to the end: that it completes, and in how long (the
    test tests/ui/test_documents_100k.py checks the same folder in the window, cancelled, untimed)."""
    root = tmp / "tiny"
    for folder in range(files // 100):
        path = root / f"d{folder:04}"
        path.mkdir(parents=True)
        for i in range(100):
            (path / f"n{i:03}.txt").write_text(f"note {folder} {i} on topic {folder * 100 + i}\n", encoding="utf-8")
    collection = store.create_collection("tiny", tmp / "collections")
    collection.add_roots([root])
    with PeakRss() as rss:
        start, cpu = time.perf_counter(), time.process_time()
        report = index_collection(collection)
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    assert report.read == files and not report.cancelled, report
    start = time.perf_counter()
    again = index_collection(collection)
    unchanged_s = time.perf_counter() - start
    collection.close()
    return [figure("docs_index_100k_s", seconds, "s", None, files=files, cpu_s=round(cpu_s, 2),
                   files_per_s=round(files / seconds), rss_growth_mb=round((rss.peak - rss.base) / 1e6, 1)),
            figure("docs_index_100k_unchanged_s", unchanged_s, "s", None, unchanged=again.unchanged)]  # fmt: skip


def _embed_model() -> tuple[Path, int | None, str]:
    """The model to embed with, the pooling to force (None: its own), and what it is."""
    from llamadesk.core.documents.embeddings import POOLING_MEAN

    chosen = os.environ.get(EMBED_MODEL_ENV)
    if chosen:
        return Path(chosen), None, "embedding model"
    from llamadesk.core.starter import ensure_starter

    cache = Path(os.environ.get("LLAMADESK_TEST_CACHE", Path.home() / ".cache" / "llamadesk" / "test-models"))
    return ensure_starter(cache / "models", cache / "download"), POOLING_MEAN, "starter chat model, mean pooling"


def _embedding(batch_size: int, pairs: int) -> list[dict[str, Any]]:
    """Passages per second through our Embedder and through raw Llama.embed(), alternated on the same batch."""
    import contextlib
    import io

    import llama_cpp

    from llamadesk.core.documents.embeddings import POOLING_UNSPECIFIED, Embedder

    path, pooling, what = _embed_model()
    rng = random.Random(SEED)
    texts = paragraphs(200)
    batch = [" ".join(rng.sample(texts, k=min(len(texts), 8)))[:1000] for _ in range(batch_size)]
    ours = Embedder(path, pooling=pooling)
    with contextlib.redirect_stderr(io.StringIO()):
        raw = llama_cpp.Llama(model_path=str(path), embedding=True, n_ctx=ours.context, n_batch=ours.context,
                              n_ubatch=ours.context, pooling_type=POOLING_UNSPECIFIED if pooling is None else pooling,
                              verbose=True)  # fmt: skip
    raw.verbose = False
    ratios, our_rates, raw_rates = [], [], []

    def rate(fn: Any) -> float:
        t = time.perf_counter()
        fn()
        return len(batch) / (time.perf_counter() - t)

    try:
        ours.embed(batch[:1])
        raw.embed(batch[:1], normalize=True)  # both warmed up
        for i in range(pairs):
            # A-B then B-A: whichever runs second in a pair meets warmer caches (or a busier machine), so the order
            # alternates and the median of the pairwise ratios is reported.
            if i % 2 == 0:
                a = rate(lambda: ours.embed(batch))
                b = rate(lambda: raw.embed(batch, normalize=True))
            else:
                b = rate(lambda: raw.embed(batch, normalize=True))
                a = rate(lambda: ours.embed(batch))
            our_rates.append(a)
            raw_rates.append(b)
            ratios.append(a / b)
    finally:
        ours.close()
        raw.close()
    return [
        figure("docs_embed_passages_per_s", statistics.median(our_rates), "passages/s", None, model=path.name,
               kind=what, batch=len(batch), raw_passages_per_s=round(statistics.median(raw_rates), 2)),
        figure("docs_embed_ratio", statistics.median(ratios), "x raw llama-cpp-python", GOALS["embed_ratio"],
               min=round(min(ratios), 3), max=round(max(ratios), 3), pairs=pairs),
    ]  # fmt: skip


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_docs", description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--mb", type=float, default=100.0, help="megabytes of text in all")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--embed-batch", type=int, default=16, help="passages per embedding batch")
    parser.add_argument("--only", nargs="*", help="figures whose names start with these (docs_embed: embedding only)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    for result in run(parse_args(sys.argv[1:] if argv is None else argv)):
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

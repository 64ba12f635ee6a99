"""History at scale: 10,000 conversations / 1,000,000 messages; sidebar, search, long conversation, size.

Run alone with `python -m bench.bench_history [--conversations N --messages M]`: one JSON object per figure.
The generated database is cached under ~/.cache/llamadesk/bench/ (LLAMADESK_BENCH_CACHE moves it), keyed by the
generator and schema versions, so only the first run pays for generating it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from llamadesk.core.history import History, export_conversations, group_conversations
from llamadesk.core.history.migrations import LATEST_VERSION

GENERATOR_VERSION = 1
SEED = 5
END_TIME = 1_780_000_000.0  # the newest message of the generated history (fixed: the file is cached)
BIG_CONVERSATION = 5_000  # messages in the one conversation that "opening a long conversation" reads
PAGE = 50  # the sidebar's first page
#: Groups of figures `python -m bench --only NAME` can pick (the runner in bench/__main__.py).
BENCHMARKS = ("history_open", "history_search", "history_long_conversation", "history_size")
GOALS_MS = {"open": 200.0, "search": 50.0, "long_conversation": 300.0}

_COMMON_TEXT = (
    "the of and to a in is you that it for was on are as with be this have from or at by not but what all"
    " were we when your can said there use an each which she do how their if will up other about out many"
    " then them these so some her would make like him into time has look two more write go see number no"
    " way could people my than first water been call who oil its now find long down day did get come made"
    " may part"
)
_COMMON = _COMMON_TEXT.split()
_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "st"]
_NUCLEI = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]


def vocabulary(size: int = 20_000) -> list[str]:
    """Real common words first, then made-up words: rank r is used with a probability near 1/r (Zipf)."""
    rng = random.Random(SEED)
    words = list(dict.fromkeys(_COMMON))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_NUCLEI) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _sizes(rng: random.Random, conversations: int, messages: int) -> list[int]:
    """Messages per conversation: one of BIG_CONVERSATION (placed mid-history), the rest log-normal, summing exactly."""
    rest = messages - BIG_CONVERSATION
    weights = [rng.lognormvariate(0, 1) for _ in range(conversations - 1)]
    total = sum(weights)
    sizes = [max(2, int(w / total * rest)) for w in weights]
    i = 0
    while sum(sizes) != rest:  # fix rounding one message at a time, never below 2
        step = 1 if sum(sizes) < rest else -1
        if sizes[i % len(sizes)] + step >= 2:
            sizes[i % len(sizes)] += step
        i += 1
    sizes.insert(len(sizes) // 2, BIG_CONVERSATION)
    return sizes


def _receipt(rng: random.Random, tokens: int) -> str:
    return json.dumps(
        {
            "app_version": "0.1.0",
            "architecture": "qwen2",
            "cached_tokens": rng.randint(0, 2000),
            "finish_reason": "stop",
            "generated_tokens": tokens,
            "llama_cpp_version": "0.3.36",
            "model_file": "qwen2.5-1.5b-instruct-q4_k_m.gguf",
            "prompt_tokens": rng.randint(20, 4000),
            "quantization": "Q4_K_M",
            "sampling": {"temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": None},
            "seed": rng.randint(0, 2**31),
            "sha256": "ab" * 32,
            "template": "gguf",
            "tokens_per_s": round(rng.uniform(10, 90), 2),
            "total_s": round(rng.uniform(0.5, 20), 3),
            "ttft_s": round(rng.uniform(0.05, 1.5), 3),
        },
        sort_keys=True,
    )


def generate(path: Path, conversations: int, messages: int) -> int:
    """Writes a history of `conversations` / `messages` to `path`; returns the id of the BIG_CONVERSATION one."""
    rng = random.Random(SEED)
    words = vocabulary()
    cum: list[float] = []
    acc = 0.0
    for rank in range(1, len(words) + 1):
        acc += 1.0 / rank
        cum.append(acc)
    History(path).close()  # the schema, made by the code under test
    conn = sqlite3.connect(str(path), isolation_level=None)
    # Bulk loading only: no journal, no fsync (a failed run deletes the file); the index is built once at the end.
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    triggers = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%fts%'").fetchall()
    conn.execute("BEGIN")
    for name in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]:
        conn.execute(f"DROP TRIGGER {name}")
    sizes = _sizes(rng, conversations, messages)
    span = END_TIME - 730 * 86400
    starts = sorted(rng.uniform(span, END_TIME - 86400) for _ in sizes)
    mid = 0
    big_cid = 0
    for cid, (size, start) in enumerate(zip(sizes, starts, strict=True), start=1):
        rows = []
        t = start
        parent: int | None = None
        user: int | None = None
        last_role = ""
        for _ in range(size):
            mid += 1
            t += rng.uniform(5, 90)
            this_parent = parent
            if last_role == "user":
                role = "assistant"
            elif last_role == "assistant" and size != BIG_CONVERSATION and rng.random() < 0.05:
                # A regenerated reply: a sibling of the last one, under the same question (a branch).
                role, this_parent = "assistant", user
            else:
                role = "user"
            n = rng.randint(20, 150) if role == "assistant" else rng.randint(4, 30)
            text = " ".join(rng.choices(words, cum_weights=cum, k=n)).capitalize() + "."
            receipt = _receipt(rng, n * 2) if role == "assistant" else None
            rows.append((mid, cid, this_parent, role, text, t, "complete", "stop" if receipt else None, receipt))
            if role == "user":
                user = mid
            parent, last_role = mid, role
        if size == BIG_CONVERSATION and not big_cid:
            big_cid = cid
        conn.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at, model, system_prompt, sampling_json,"
            " pinned, leaf_message_id) VALUES (?, ?, ?, ?, ?, '', '{}', ?, ?)",
            (
                cid,
                " ".join(rows[0][4].split()[:6]),
                start,
                t,
                "qwen2.5-1.5b-instruct-q4_k_m.gguf",
                int(cid % 997 == 0),
                mid,
            ),
        )
        conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
    conn.execute("INSERT INTO conversations_fts (conversations_fts) VALUES ('rebuild')")
    for (sql,) in triggers:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    return big_cid


def cached_history(conversations: int, messages: int, log: Callable[[str], None]) -> tuple[Path, int, float | None]:
    """The generated file (made now if not cached), the big conversation's id, and the seconds generating took."""
    cache = Path(os.environ.get("LLAMADESK_BENCH_CACHE", Path.home() / ".cache" / "llamadesk" / "bench"))
    cache.mkdir(parents=True, exist_ok=True)
    name = f"history-gen{GENERATOR_VERSION}-schema{LATEST_VERSION}-{conversations}x{messages}"
    path, meta = cache / f"{name}.sqlite3", cache / f"{name}.json"
    if path.exists() and meta.exists():
        return path, int(json.loads(meta.read_text())["big_conversation"]), None
    log(f"generating {conversations:,} conversations / {messages:,} messages into {path} (once)...")
    tmp = cache / f"{name}.tmp.sqlite3"
    for leftover in cache.glob(f"{name}.tmp.sqlite3*"):
        leftover.unlink()
    start = time.perf_counter()
    big = generate(tmp, conversations, messages)
    elapsed = time.perf_counter() - start
    tmp.replace(path)
    meta.write_text(json.dumps({"big_conversation": big, "generate_s": elapsed}))
    return path, big, elapsed


def _timed(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of `repeat` runs. CPU time shows the work itself when other programs
    share the machine; wall time is what a user waits."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def _open_first_page(path: Path) -> None:
    with History(path) as h:
        group_conversations(h.list_conversations(limit=PAGE), now=END_TIME)
        h.count_conversations()


_FRESH_PROCESS = """
import sys, time
start = time.perf_counter()
from pathlib import Path
from llamadesk.core.history import History, group_conversations
with History(Path(sys.argv[1])) as h:
    group_conversations(h.list_conversations(limit=int(sys.argv[2])), now=time.time())
    h.count_conversations()
print((time.perf_counter() - start) * 1000)
"""


def queries() -> list[str]:
    """Searches across the range of how often words occur: the very common, the mid, the rare, several words,
    a phrase, a prefix (search as you type) and a word that is nowhere."""
    w = vocabulary()
    return [
        w[0],
        w[60],
        w[400],
        w[2000],
        w[15000],
        f"{w[100]} {w[3000]}",
        f'"{w[1]} {w[2]}"',
        w[1200][:4] + "*",
        "zzqx",
    ]


def figure(name: str, value: float, unit: str, goal: float | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "value": round(value, 2), "unit": unit, "goal": goal, **extra}


def _timing(name: str, run: Callable[[], object], repeat: int, goal: float | None = None) -> dict[str, Any]:
    wall, cpu = _timed(run, repeat)
    return figure(name, wall, "ms", goal, cpu_ms=round(cpu, 2))


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace | Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Measures the figures; `args` is a Namespace with conversations/messages/repeat (or argv, or None)."""
    if args is None or not isinstance(args, argparse.Namespace):
        args = parse_args(list(args or []))
    conversations = int(getattr(args, "conversations", 10_000))
    messages = int(getattr(args, "messages", 1_000_000))
    repeat = int(getattr(args, "repeat", 5))
    if getattr(args, "quick", False):
        repeat = min(repeat, 2)
    results = _measure(conversations, messages, repeat)
    only = getattr(args, "only", None)
    if only:
        results = [r for r in results if any(r["name"].startswith(group) for group in only)]
    return results


def _measure(conversations: int, messages: int, repeat: int) -> list[dict[str, Any]]:
    path, big_cid, generated_s = cached_history(conversations, messages, _log)
    results: list[dict[str, Any]] = []
    scale = f"{conversations}x{messages}"
    if generated_s is not None:
        results.append(figure("history_generate_s", generated_s, "s", None, scale=scale))
    # Other programs on the machine slow every figure down: the load says how much to trust them.
    results.append(figure("history_machine_load_1min", os.getloadavg()[0], "", None, cpus=os.cpu_count()))
    _open_first_page(path)  # the first open after generating may check the WAL; not what a start costs
    results.append(_timing("history_open_first_page_ms", lambda: _open_first_page(path), repeat, GOALS_MS["open"]))
    fresh = [
        float(
            subprocess.run(
                [sys.executable, "-c", _FRESH_PROCESS, str(path), str(PAGE)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(3)
    ]
    results.append(figure("history_open_first_page_fresh_process_ms", statistics.median(fresh), "ms", GOALS_MS["open"]))
    with History(path) as h:
        # Message hits only (titles=False): the heavier half of a search, and what scrolling a result list reads.
        for order in ("recent", "relevance"):
            per_query = {q: _timed(partial(h.search, q, limit=PAGE, order=order, titles=False), 3) for q in queries()}
            results.append(
                figure(
                    f"history_search_{order}_median_ms",
                    statistics.median(wall for wall, _ in per_query.values()),
                    "ms",
                    GOALS_MS["search"],
                    cpu_ms=round(statistics.median(cpu for _, cpu in per_query.values()), 2),
                    worst_ms=round(max(wall for wall, _ in per_query.values()), 2),
                    per_query_ms={q: round(wall, 2) for q, (wall, _) in per_query.items()},
                )
            )
        results.append(
            _timing(
                "history_long_conversation_open_ms", lambda: h.messages(big_cid), repeat, GOALS_MS["long_conversation"]
            )
        )
        word = vocabulary()[300]
        results.append(
            _timing("history_long_conversation_find_ms", lambda: h.search_in_conversation(big_cid, word), repeat)
        )
        results.append(
            _timing(
                "history_long_conversation_export_json_ms",
                lambda: export_conversations(h, [big_cid], "json", io.StringIO()),
                3,
            )
        )
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.suffix != ".json")
    results.append(figure("history_size_db_mib", size / 1024**2, "MiB", None, scale=scale))
    results.append(figure("history_size_bytes_per_message", size / messages, "B", None))
    return results


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_history", description=__doc__)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing; the median is reported")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    for result in run(parse_args(sys.argv[1:] if argv is None else argv)):
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks: `python -m bench` runs every bench_*.py module and prints one JSON object per figure."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

# The models cache the tests use (tests/conftest.py), so a benchmark never fetches the starter model twice.
T = TypeVar("T")
TEST_CACHE = Path(os.environ.get("LLAMADESK_TEST_CACHE", Path.home() / ".cache" / "llamadesk" / "test-models"))


def default_model() -> Path:
    """The starter model (SmolLM2-135M-Instruct Q4_1), fetched once into the tests' cache."""
    from llamadesk.core.starter import ensure_starter

    return ensure_starter(TEST_CACHE / "models", TEST_CACHE / "download")


def model_path(args: argparse.Namespace) -> Path:
    return Path(args.model) if getattr(args, "model", None) else default_model()


def wanted(args: argparse.Namespace, name: str) -> bool:
    """Whether the benchmark `name` was asked for (--only; none given: all)."""
    only = getattr(args, "only", None)
    return not only or name in only


def ratio_summary(pairs: Sequence[float]) -> dict[str, float]:
    """Median of the pairwise ratios, with min and max: A and B alternate, and each pair gives one ratio."""
    return {"ratio": statistics.median(pairs), "ratio_min": min(pairs), "ratio_max": max(pairs), "pairs": len(pairs)}


def alternate(i: int, a: Callable[[], T], b: Callable[[], T]) -> tuple[T, T]:
    """Runs a then b in even rounds, b then a in odd ones; returns (a's result, b's result)."""
    if i % 2 == 0:
        first = a()
        return first, b()
    second = b()
    return a(), second


def note(text: str) -> None:
    """Progress for the person watching; stdout carries only the JSON lines."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was (load average over the last minute)."""
    import platform

    import psutil

    return {
        "cpu_physical": psutil.cpu_count(logical=False),
        "cpu_logical": psutil.cpu_count(logical=True),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "machine": platform.machine(),
    }

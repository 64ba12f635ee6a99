"""Structured output on the starter model (core/structured.py): how many replies under a JSON schema parse and
validate with jsonschema (issue 16 asks 100 of 100), and constrained vs unconstrained tokens/s on the same model in
the same run, A and B alternating (goal: ratio >= 0.8)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import alternate, machine, model_path, note, ratio_summary, wanted

BENCHMARKS = ("structured_valid", "structured_speed")
N_CTX = 2048
SEED = 1234
# A schema a user would write: free strings bounded by maxLength (not ASCII patterns: the real model's own text, any
# UTF-8), an enum, an integer, an array bounded by maxItems, a nested object.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "occupation": {"type": "string", "maxLength": 60},
        "mood": {"enum": ["happy", "sad", "calm", "angry", "curious"]},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 4},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}, "country": {"type": "string", "maxLength": 40}},
            "required": ["city", "country"],
        },
        "likes_tea": {"type": "boolean"},
    },
    "required": ["name", "age", "occupation", "mood", "hobbies", "address", "likes_tea"],
}
ASKS = [
    "Describe a fictional baker from Lyon as JSON.",
    "Invent a person who loves mountains and give their profile in JSON.",
    "Give me a JSON profile of a retired sailor.",
    "Make up a student in Tokyo; answer with JSON only.",
    "Describe your favourite detective as a JSON object.",
    "Create a JSON record for a gardener who hates rain.",
    "A musician from Lagos: describe them in JSON.",
    "Write a JSON profile of a nurse working night shifts.",
    "Describe a child who collects stamps, as JSON.",
    "Profile of a software engineer who lives on a boat, in JSON.",
]
STORY = [{"role": "user", "content": "Write a long story about a llama who learns to write computer programs."}]
STORY_SCHEMA = {  # long free text inside JSON: the grammar checks every token of a long reply
    "type": "object",
    "properties": {"title": {"type": "string", "maxLength": 80}, "story": {"type": "string", "maxLength": 1000}},
    "required": ["title", "story"],
}


def _engine(model: Path, threads: int) -> Any:
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    engine = LlamaCppEngine()
    engine.load(LoadOptions(model, n_ctx=N_CTX, n_threads=threads))
    return engine


def _reply(engine: Any, messages: list[dict[str, str]], params: Any, fmt: Any = None) -> tuple[str, Any]:
    from llamadesk.core.engines.api import Done, Token

    text, done = [], None
    options = {"response_format": fmt} if fmt is not None else {}
    for event in engine.stream(messages, params, **options):
        if isinstance(event, Token):
            text.append(event.text)
        elif isinstance(event, Done):
            done = event
    return "".join(text), done


def bench_valid(model: Path, threads: int, n: int) -> dict[str, Any]:
    """n replies (ten prompts, seeds and temperatures varied), each parsed and validated with jsonschema."""
    import jsonschema

    from llamadesk.core.sampling import SamplingParams
    from llamadesk.core.structured import ResponseFormat

    fmt = ResponseFormat.from_schema(PERSON, name="person")
    validator = jsonschema.Draft202012Validator(PERSON)
    engine = _engine(model, threads)
    valid, failures, tokens = 0, [], []
    reasons: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        for i in range(n):
            params = SamplingParams(seed=SEED + i, temperature=(0.2, 0.7, 1.0)[i % 3], max_tokens=512)
            text, done = _reply(engine, [{"role": "user", "content": ASKS[i % len(ASKS)]}], params, fmt)
            reasons[done.stats.finish_reason.value] += 1
            tokens.append(done.stats.generated_tokens)
            try:
                validator.validate(json.loads(text))
                valid += 1
            except (ValueError, jsonschema.ValidationError) as exc:
                failures.append({"i": i, "reason": done.stats.finish_reason.value, "error": str(exc)[:200],
                                 "text": text[:300]})  # fmt: skip
            if (i + 1) % 10 == 0:
                note(f"structured_valid: {valid} of {i + 1} valid")
    finally:
        engine.close()
    return {
        "benchmark": "structured_valid",
        "value": valid,
        "of": n,
        "unit": "replies that parse and validate with jsonschema",
        "goal": f"{n} of {n}",
        "ok": valid == n,
        "finish_reasons": dict(reasons),
        "tokens_median": statistics.median(tokens),
        "tokens_max": max(tokens),
        "seconds": round(time.perf_counter() - started, 1),
        "failures": failures[:5],
        "threads": threads,
    }


def bench_speed(model: Path, threads: int, rounds: int, max_tokens: int) -> dict[str, Any]:
    """tokens/s of the same engine and prompt, unconstrained (A) and under a grammar (B: the story schema, and any
    JSON object), alternating; each round's ratio is B's decode rate over A's."""
    from llamadesk.core.sampling import SamplingParams
    from llamadesk.core.structured import ResponseFormat

    engine = _engine(model, threads)
    formats = {"json_schema": ResponseFormat.from_schema(STORY_SCHEMA, name="story"),
               "json_object": ResponseFormat.json_object()}  # fmt: skip
    params = SamplingParams(seed=SEED, max_tokens=max_tokens)

    def rate(fmt: Any) -> tuple[float, int]:
        _text, done = _reply(engine, STORY, params, fmt)
        return done.stats.tokens_per_s, done.stats.generated_tokens

    out: dict[str, Any] = {}
    try:
        rate(None)  # warm: first-touch page faults of the weights
        for kind, fmt in formats.items():
            free, held, ratios = [], [], []
            for i in range(rounds):
                a, b = alternate(i, lambda: rate(None), lambda f=fmt: rate(f))  # type: ignore[misc]
                free.append(a)
                held.append(b)
                ratios.append(b[0] / a[0])
                note(f"structured_speed {kind} round {i + 1}: {b[0]:.1f} vs {a[0]:.1f} tokens/s ({b[1]} tokens)")
            summary = ratio_summary(ratios)
            out[kind] = {
                "value": statistics.median(r for r, _ in held),
                "reference": statistics.median(r for r, _ in free),
                **summary,
                "tokens": [t for _, t in held],
                "reference_tokens": [t for _, t in free],
            }
    finally:
        engine.close()
    worst = min(v["ratio"] for v in out.values())
    return {
        "benchmark": "structured_speed",
        "value": out["json_schema"]["value"],
        "reference": out["json_schema"]["reference"],
        "unit": "tokens/s",
        "reference_is": "the same engine, model, prompt and seed without a grammar, alternating",
        "ratio": out["json_schema"]["ratio"],
        "goal": "ratio >= 0.8",
        "ok": worst >= 0.8,
        "formats": out,
        "threads": threads,
        "max_tokens": max_tokens,
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from llamadesk.core.engines.local import default_threads

    model = model_path(args)
    # LLAMADESK_BENCH_THREADS: on a machine shared with other work, one thread keeps llama.cpp's workers from
    # waiting on each other for whole scheduler slices (both sides of each ratio run with the same count)
    threads = int(os.environ.get("LLAMADESK_BENCH_THREADS") or default_threads())
    quick = bool(getattr(args, "quick", False))
    context = {"model": model.name, "machine": machine()}
    records = []
    if wanted(args, "structured_valid"):
        records.append({**bench_valid(model, threads, 10 if quick else 100), **context})
    if wanted(args, "structured_speed"):
        records.append({**bench_speed(model, threads, 2 if quick else 6, 96 if quick else 192), **context})
    return records

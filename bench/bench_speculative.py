"""Speculative decoding with a draft model (issue 21, engines/draft.py): the speedup of generation at several
acceptance rates, on generated model pairs of the same vocabulary, against the same engine without a draft.

The pairs are built so that the acceptance rate can be set: the target is a generated llama with TARGET_LAYERS
layers of which only the first DRAFT_LAYERS compute anything (the others' output projections are zero, so they add
nothing to the residual stream but cost a full layer each); the draft is the same generator's DRAFT_LAYERS-layer
model with the same seed, i.e. exactly the target's live layers, at 1/6 of its cost (like Qwen2.5 0.5B for 7B or
SmolLM2 135M for 1.7B, which cost 1/10 to 1/14). Noise added to the draft's weights lowers its acceptance; a draft
of another seed and width agrees with the target only by chance. The end-of-turn rows of every output matrix are
zero, so each reply runs to max_tokens. Flash attention is off in both engines: on CPU its one-token path
rounds otherwise than its batch path, and this synthetic target's large activations turn that into another argmax
now and then (with it on, the identical draft's output left the plain one's after ~30 tokens; off, they are equal).
Temperature 0 and no repeat penalty: the sampler picks the argmax, as the draft does. Each draft's figure is the
median of the pairwise ratios (draft/plain, alternated)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench import TEST_CACHE, alternate, machine, note, ratio_summary, wanted

BENCHMARKS = ("speculative_draft",)
N_CTX = 2048
WIDTH, HEADS = 1024, 8
TARGET_LAYERS, DRAFT_LAYERS = 12, 2
SEED = 1234
THREADS = 1  # on a shared, loaded machine two threads' barriers wait on each other: one thread gives steadier ratios
NOISE = (0.0, 0.01, 0.03, 0.1, 0.3)  # noise added to the draft's layer weights, in units of their standard deviation
PROMPT = [{"role": "user", "content": "the model answer is the reply to the question, and the window shows it " * 4}]


def _edit(path: Path, edit: Any) -> None:
    import gguf

    reader = gguf.GGUFReader(path, "r+")
    for tensor in reader.tensors:
        edit(tensor.name, tensor.data)
    reader.data.flush()
    del reader


def models() -> tuple[Path, dict[str, Path]]:
    """The target and the drafts (written once into the tests' cache)."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from gguf_factory import END_OF_TURN, write_tiny_llama

    folder = TEST_CACHE / "bench" / "speculative"
    folder.mkdir(parents=True, exist_ok=True)

    def endless(name: str, data: Any) -> None:
        if name == "output.weight":
            data[list(END_OF_TURN)] = 0

    target = folder / f"target-{WIDTH}x{TARGET_LAYERS}-live{DRAFT_LAYERS}.gguf"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        write_tiny_llama(tmp, n_embd=WIDTH, n_head=HEADS, n_layers=TARGET_LAYERS, seed=SEED, n_ctx_train=N_CTX)

        def dead_layers(name: str, data: Any) -> None:
            endless(name, data)
            parts = name.split(".")
            if parts[0] == "blk" and int(parts[1]) >= DRAFT_LAYERS and parts[2] in ("attn_output", "ffn_down"):
                data[:] = 0

        _edit(tmp, dead_layers)
        tmp.rename(target)
    drafts: dict[str, Path] = {}
    for noise in NOISE:
        path = drafts[f"same seed, noise {noise}"] = folder / f"draft-{WIDTH}x{DRAFT_LAYERS}-noise{noise}.gguf"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            write_tiny_llama(tmp, n_embd=WIDTH, n_head=HEADS, n_layers=DRAFT_LAYERS, seed=SEED, n_ctx_train=N_CTX)
            rng = np.random.default_rng(int(noise * 1000))

            def noisy(name: str, data: Any, noise: float = noise, rng: Any = rng) -> None:
                endless(name, data)
                if noise and name.startswith("blk.") and data.ndim == 2:
                    data += (rng.standard_normal(data.shape) * noise * float(data.std())).astype(data.dtype)

            _edit(tmp, noisy)
            tmp.rename(path)
    other = drafts["other seed, 64 wide"] = folder / "draft-64x2-seed99.gguf"
    if not other.exists():
        write_tiny_llama(other.with_suffix(".tmp"), n_embd=64, n_head=2, n_layers=2, seed=99, n_ctx_train=N_CTX)
        _edit(other.with_suffix(".tmp"), endless)
        other.with_suffix(".tmp").rename(other)
    return target, drafts


def bench_draft(rounds: int, max_tokens: int) -> dict[str, Any]:
    from llamadesk.core.engines import draft
    from llamadesk.core.engines.api import Done, LoadOptions, Token
    from llamadesk.core.engines.local import LlamaCppEngine
    from llamadesk.core.sampling import SamplingParams

    draft.JUDGED_AFTER = 1 << 40  # measured at every rate: never switched off here (the rule this bench informs)
    target, drafts = models()
    params = SamplingParams(max_tokens=max_tokens, seed=SEED, temperature=0.0, repeat_penalty=1.0)
    plain = LlamaCppEngine()
    plain.load(LoadOptions(target, n_ctx=N_CTX, n_threads=THREADS, prompt_cache_mb=0, flash_attn=False))

    def run(engine: LlamaCppEngine) -> tuple[float, str, Done]:
        text, done = [], None
        for event in engine.stream(PROMPT, params):
            if isinstance(event, Token):
                text.append(event.text)
            elif isinstance(event, Done):
                done = event
        assert done is not None
        gen_s = done.stats.total_s - done.stats.ttft_s
        return (done.stats.generated_tokens - 1) / gen_s, "".join(text), done

    run(plain)
    rows = []
    for label, path in drafts.items():
        engine = LlamaCppEngine()
        options = LoadOptions(target, n_ctx=N_CTX, n_threads=THREADS, prompt_cache_mb=0, flash_attn=False)
        engine.load(dataclasses.replace(options, draft_model=path))
        run(engine)  # warm
        ratios, speeds, refs, same, drafted, accepted = [], [], [], [], 0, 0
        for i in range(rounds):
            (sp, tp, _), (sd, td, dd) = alternate(i, lambda: run(plain), lambda e=engine: run(e))  # type: ignore[misc]
            ratios.append(sd / sp)
            speeds.append(sd)
            refs.append(sp)
            same.append(tp == td)
            spec = dd.receipt["speculation"]
            drafted, accepted = drafted + spec["drafted"], accepted + spec["accepted"]
            note(f"draft {label} round {i + 1}: {sd:.1f} vs {sp:.1f} tokens/s, same output: {tp == td}")
        engine.close()
        rows.append(
            {
                "draft": label,
                "acceptance": round(accepted / drafted, 3) if drafted else None,
                "drafted": drafted,
                "accepted": accepted,
                "tokens_per_s": round(statistics.median(speeds), 2),
                "plain_tokens_per_s": round(statistics.median(refs), 2),
                **ratio_summary(ratios),
                "same_output_rounds": sum(same),
            }
        )
    plain.close()
    # the speedup is linear in the acceptance rate at one cost ratio (tokens per step = 1 + rate * N_DRAFT, the
    # cost of a step fixed): a least-squares line through the same-seed rows gives the break-even rate (speedup 1)
    points = [(r["acceptance"], r["ratio"]) for r in rows if r["draft"].startswith("same") and r["acceptance"]]
    break_even = None
    if len(points) >= 2:
        slope, intercept = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
        break_even = round((1 - intercept) / slope, 3) if slope > 0 else None
    return {
        "benchmark": "speculative_draft",
        "unit": "generated tokens/s, draft / plain",
        "reference_is": "the same engine and target without a draft model (temperature 0, alternated)",
        "target": f"{WIDTH} wide, {TARGET_LAYERS} layers ({DRAFT_LAYERS} live), F32",
        "draft_cost": f"{DRAFT_LAYERS}/{TARGET_LAYERS} of the target's layers",
        "max_tokens": max_tokens,
        "threads": THREADS,
        "rows": rows,
        "break_even_acceptance": break_even,
        "machine": machine(),
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    quick = getattr(args, "quick", False)
    out = []
    if wanted(args, "speculative_draft"):
        try:
            record = bench_draft(1 if quick else 3, 64 if quick else 96)
        except Exception as exc:
            record = {"benchmark": "speculative_draft", "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({"module": "speculative", **record}, default=str), file=sys.stderr, flush=True)
        out.append(record)
    return out

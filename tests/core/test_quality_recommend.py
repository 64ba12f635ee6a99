"""The comparison's one sentence (core/quality.recommend) on results written out, so each figure in it can be checked:
the smallest file keeping 90% of the reference's top tokens, its memory and speed against the reference's."""

from __future__ import annotations

from llamadesk.core.quality import Comparison, FileResult, memory_of, recommend

MB = 10**6


def result(type_: str, *, top1: float, memory_mb: int, gen: float, size_mb: int | None = None,
           prompt: float = 100.0) -> FileResult:  # fmt: skip
    reference = top1 == 1.0
    return FileResult(
        path=f"/m/model-{type_}.gguf", name=f"model-{type_}.gguf", type=type_,
        size_bytes=(size_mb if size_mb is not None else memory_mb) * MB, bits_per_weight=8.5, sha256="0" * 64,
        perplexity=10.0, kld=0.0 if reference else 0.05, kld_p99=0.0 if reference else 0.4, top1=top1,
        prompt_tps=prompt, gen_tps=gen, memory_bytes=memory_mb * MB, is_reference=reference,
    )  # fmt: skip


def comparison(*files: FileResult) -> Comparison:
    return Comparison(list(files), n_ctx=512, n_chunks=4, tokens_scored=1020, text_sha256="a" * 64, seconds=1.0)


def test_the_issue_s_own_sentence() -> None:
    c = comparison(
        result("Q8_0", top1=1.0, memory_mb=1000, gen=10.0),
        result("Q4_K_M", top1=0.97, memory_mb=550, gen=16.0),
        result("Q6_K", top1=0.99, memory_mb=800, gen=12.0),
    )
    assert recommend(c) == "Q4_K_M keeps 97% of Q8_0's top tokens at 55% of its memory and 1.6× its speed here."


def test_the_smallest_file_above_the_goal_wins_not_the_most_faithful() -> None:
    c = comparison(
        result("F16", top1=1.0, memory_mb=2000, gen=5.0),
        result("Q8_0", top1=0.99, memory_mb=1100, gen=8.0),
        result("Q4_0", top1=0.91, memory_mb=600, gen=12.0),
        result("Q2_K", top1=0.70, memory_mb=400, gen=14.0),  # smaller still, but below 90%
    )
    assert recommend(c) == "Q4_0 keeps 91% of F16's top tokens at 30% of its memory and 2.4× its speed here."


def test_when_no_file_keeps_the_goal_the_closest_is_named() -> None:
    c = comparison(
        result("F32", top1=1.0, memory_mb=400, gen=20.0),
        result("Q4_0", top1=0.62, memory_mb=100, gen=50.0),
        result("Q8_0", top1=0.81, memory_mb=150, gen=40.0),
    )
    assert recommend(c) == (
        "No file keeps 90% of F32's top tokens here; Q8_0 comes closest: it keeps 81% at 38% of F32's memory "
        "and 2.0× its speed."
    )


def test_the_reference_alone_asks_for_more_files() -> None:
    c = comparison(result("Q8_0", top1=1.0, memory_mb=1000, gen=10.0))
    assert recommend(c) == "Q8_0 has a perplexity of 10.00 on this text; add quantizations to compare."


def test_memory_falls_back_to_the_file_size_when_the_measurement_saw_little() -> None:
    """A model already mapped before the measurement (or a tiny one) shows a small RSS growth: the file size stands."""
    ref = result("F16", top1=1.0, memory_mb=10, gen=10.0, size_mb=1000)
    q4 = result("Q4_0", top1=0.95, memory_mb=300, gen=20.0, size_mb=280)
    assert memory_of(ref) == 1000 * MB and memory_of(q4) == 300 * MB
    assert recommend(comparison(ref, q4)) == (
        "Q4_0 keeps 95% of F16's top tokens at 30% of its memory and 2.0× its speed here."
    )


def test_without_generation_speeds_the_prompt_speed_is_compared() -> None:
    ref = result("Q8_0", top1=1.0, memory_mb=1000, gen=0.0, prompt=200.0)
    q4 = result("Q4_0", top1=0.93, memory_mb=600, gen=0.0, prompt=300.0)
    assert recommend(comparison(ref, q4)).endswith("at 60% of its memory and 1.5× its speed here.")

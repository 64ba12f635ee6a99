"""One file measured alone, as llama-perplexity measures it (bench/bench_quality.py times the two): the same
perplexity as when it is the reference of a comparison, no generation timing, no reference logits written."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core import quality
from llamadesk.core.quantize import quantize


def test_one_file_alone_scores_like_the_reference_and_writes_nothing(tmp_path: Path, llamadesk_home: Path) -> None:
    f32 = write_tiny_llama(tmp_path / "tiny-F32.gguf")
    q8 = quantize(f32, "Q8_0", tmp_path / "tiny-Q8_0.gguf").path
    text = quality.eval_texts()["de-kafka-verwandlung"].read_text(encoding="utf-8")[:1500]
    work = tmp_path / "work"
    stages: list[str] = []

    alone = quality.compare([f32], text, n_ctx=128, keep=False, speed=False, work_dir=work,
                            progress=lambda p: stages.append(p.stage))  # fmt: skip
    both = quality.compare([f32, q8], text, n_ctx=128, keep=False)
    a, ref = alone.files[0], both.reference
    assert a.is_reference and a.perplexity == pytest.approx(ref.perplexity, rel=1e-6)
    assert a.gen_tps == 0.0 and a.prompt_tps > 0 and "generating" not in stages and "scoring" in stages
    assert ref.gen_tps > 0  # a comparison times generation
    assert alone.recommendation.startswith("F32 has a perplexity of") and "add quantizations" in alone.recommendation
    assert not any(work.rglob("*")), "the reference's logits were written with nothing to compare them with"

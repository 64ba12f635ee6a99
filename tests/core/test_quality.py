"""Comparing quantizations by measurement: generated F32 models, turned into F16, Q8_0 and Q4_0 by the app itself,
scored on a text that ships with LlamaDesk. The KL ordering holds (Q8_0 < Q4_0 against F32 and against F16);
files of other models, short texts and unknown files are refused with one sentence; results are kept per SHA-256."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core import quality
from llamadesk.core.quality import QualityError, compare
from llamadesk.core.quantize import quantize

N_CTX = 128  # 4 bundled-text chunks of 128 tokens keep the whole module to seconds


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """tiny F32 (generated, fixed seed) → F16, Q8_0, Q4_0 (from F32) and Q8_0, Q4_0 (from F16), all by the app."""
    folder = tmp_path_factory.mktemp("family")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLAMADESK_HOME", str(folder / "home"))
        f32 = write_tiny_llama(folder / "tiny-F32.gguf")
        made = {"F32": f32}
        made["F16"] = quantize(f32, "F16", folder / "tiny-F16.gguf").path
        for t in ("Q8_0", "Q4_0"):
            made[t] = quantize(f32, t, folder / f"tiny-{t}.gguf").path
            made[f"{t} from F16"] = quantize(made["F16"], t, folder / f"tiny-f16-{t}.gguf").path
        yield made


@pytest.fixture(scope="module")
def text() -> str:
    texts = quality.eval_texts()
    assert set(texts) >= {"en-gpl-3", "en-cc0-1.0", "code-python-textwrap"}
    return texts["en-cc0-1.0"].read_text(encoding="utf-8")[:2500]


def by_type(comparison: quality.Comparison) -> dict[str, quality.FileResult]:
    return {f.type: f for f in comparison.files}


def test_kl_ordering_against_f32(family: dict[str, Path], text: str, llamadesk_home: Path) -> None:
    result = compare([family["Q4_0"], family["F32"], family["Q8_0"]], text, n_ctx=N_CTX)
    assert [f.type for f in result.files] == ["F32", "Q8_0", "Q4_0"]  # the most precise first: the reference
    r = by_type(result)
    assert r["F32"].is_reference and r["F32"].kld == 0.0 and r["F32"].top1 == 1.0
    assert 0 < r["Q8_0"].kld < r["Q4_0"].kld
    assert r["Q8_0"].top1 >= r["Q4_0"].top1
    assert all(math.isfinite(f.perplexity) and f.perplexity > 1 for f in result.files)
    assert all(f.prompt_tps > 0 and f.gen_tps > 0 and f.memory_bytes >= 0 for f in result.files)
    assert result.n_ctx == N_CTX and result.n_chunks >= 2
    assert result.tokens_scored == result.n_chunks * (N_CTX - 1 - N_CTX // 2)
    assert result.recommendation.endswith("its speed here.") or "comes closest" in result.recommendation
    print({t: (round(f.perplexity), f.kld, f.top1) for t, f in r.items()})

    stored = quality.stored_results(r["Q4_0"].sha256)
    assert len(stored) == 1 and stored[0]["kld"] == r["Q4_0"].kld and stored[0]["reference_type"] == "F32"
    assert quality.stored_results(r["F32"].sha256)[0]["is_reference"] is True


def test_kl_ordering_against_f16(family: dict[str, Path], text: str) -> None:
    result = compare([family["F16"], family["Q4_0 from F16"], family["Q8_0 from F16"]], text, n_ctx=N_CTX,
                     keep=False)
    r = by_type(result)
    assert r["F16"].is_reference
    assert 0 < r["Q8_0"].kld < r["Q4_0"].kld and r["Q8_0"].top1 >= r["Q4_0"].top1


def test_f16_is_nearly_the_f32_reference(family: dict[str, Path], text: str) -> None:
    r = by_type(compare([family["F32"], family["F16"]], text, n_ctx=N_CTX, keep=False))
    assert r["F16"].kld < 0.01 and r["F16"].top1 > 0.95
    assert abs(r["F16"].perplexity / r["F32"].perplexity - 1) < 0.01


def test_the_same_measurement_twice_gives_the_same_quality(family: dict[str, Path], text: str) -> None:
    a = by_type(compare([family["F32"], family["Q4_0"]], text, n_ctx=N_CTX, keep=False))
    b = by_type(compare([family["F32"], family["Q4_0"]], text, n_ctx=N_CTX, keep=False))
    assert a["Q4_0"].kld == pytest.approx(b["Q4_0"].kld, rel=1e-4)
    assert a["Q4_0"].perplexity == pytest.approx(b["Q4_0"].perplexity, rel=1e-4)


def test_files_of_another_model_are_refused(family: dict[str, Path], text: str, tmp_path: Path) -> None:
    wider = write_tiny_llama(tmp_path / "wider.gguf", n_embd=128, n_head=4)
    with pytest.raises(QualityError, match="are not the same model: their tensors have different shapes"):
        compare([family["F32"], wider], text, n_ctx=N_CTX)
    other_arch = write_tiny_llama(tmp_path / "other-arch.gguf", architecture="qwen2")
    with pytest.raises(QualityError, match=r"architectures differ \(llama and qwen2\)"):
        compare([family["F32"], other_arch], text, n_ctx=N_CTX)
    # the same shapes, one token spelt otherwise (same length, so the file stays valid)
    renamed = tmp_path / "renamed-token.gguf"
    data = family["Q8_0"].read_bytes()
    assert data.count("\u2581hello".encode()) == 1
    renamed.write_bytes(data.replace("\u2581hello".encode(), "\u2581hellp".encode()))
    with pytest.raises(QualityError, match="their vocabularies hold different tokens; compare quantizations of one"):
        compare([family["F32"], renamed], text, n_ctx=N_CTX)


def test_a_text_shorter_than_one_context_is_refused(family: dict[str, Path]) -> None:
    with pytest.raises(QualityError, match=r"The text holds \d+ tokens, fewer than one context of 512; give a"):
        compare([family["F32"], family["Q8_0"]], "hello world " * 20, n_ctx=512)
    with pytest.raises(QualityError, match="fewer than one context of 128"):  # the default shrinks only to 128
        compare([family["F32"], family["Q8_0"]], "hello world", n_ctx=None)


def test_a_short_text_shrinks_the_default_context_and_says_so(family: dict[str, Path], text: str) -> None:
    result = compare([family["F32"], family["Q8_0"]], text[:300], keep=False)
    assert result.n_ctx < quality.DEFAULT_CTX
    assert result.notes and f"so the context is {result.n_ctx} instead of 512" in result.notes[0]


def test_a_file_named_twice_or_missing_is_one_sentence(family: dict[str, Path], text: str, tmp_path: Path) -> None:
    with pytest.raises(QualityError, match="named twice"):
        compare([family["F32"], family["F32"]], text, n_ctx=N_CTX)
    with pytest.raises(QualityError, match=r"missing\.gguf"):
        compare([family["F32"], tmp_path / "missing.gguf"], text, n_ctx=N_CTX)


def test_stop_between_chunks(family: dict[str, Path], text: str) -> None:
    import threading

    cancel = threading.Event()

    def progress(p: quality.CompareProgress) -> None:
        if p.stage == "scoring" and p.file_index == 1:
            cancel.set()

    with pytest.raises(quality.QualityCancelled):
        compare([family["F32"], family["Q4_0"]], text, n_ctx=N_CTX, progress=progress, cancel=cancel)
    from llamadesk.core.fileinfo import sha256_file

    assert not quality.stored_results(sha256_file(family["Q4_0"]))


def test_the_reference_logits_go_to_a_temporary_file_that_is_removed(family: dict[str, Path], text: str,
                                                                      tmp_path: Path) -> None:
    work = tmp_path / "work"
    compare([family["F32"], family["Q8_0"]], text, n_ctx=N_CTX, work_dir=work, keep=False)
    assert work.is_dir() and not any(work.iterdir())
    shutil.rmtree(work)

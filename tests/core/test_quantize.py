"""Making your own quant: generated F32 models quantized by the app (llama_model_quantize in a child process),
registered with their source, loadable; bad sources and types refused with one sentence; Stop removes the partial
file."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core import library
from llamadesk.core.engines.api import LoadOptions
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.quantize import (
    PARTIAL_SUFFIX,
    QuantizeCancelled,
    QuantizeError,
    QuantizeProgress,
    default_output,
    quantize,
)
from llamadesk.paths import get_paths


@pytest.fixture(scope="module")
def f32_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("quant") / "tiny-F32.gguf")


@pytest.fixture(scope="module")
def medium_f32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large enough (256-wide rows, 11 MB) that the K and IQ types apply and quantizing takes a moment."""
    return write_tiny_llama(tmp_path_factory.mktemp("quant") / "medium-F32.gguf", n_embd=256, n_head=8, n_layers=4)


def test_quantizes_to_q8_0_and_q4_0_registers_the_source_and_loads(f32_model: Path, llamadesk_home: Path) -> None:
    models = get_paths().models
    seen: list[QuantizeProgress] = []
    made = {t: quantize(f32_model, t, models_dir=models, progress=seen.append) for t in ("Q8_0", "Q4_0")}
    q8, q4 = made["Q8_0"], made["Q4_0"]
    assert q8.path == models / "quantized" / "tiny-Q8_0.gguf" and q4.path.name == "tiny-Q4_0.gguf"
    assert f32_model.stat().st_size > q8.size_bytes > q4.size_bytes
    assert {p.stage for p in seen} >= {"checking", "quantizing", "done"}
    assert seen[-1].fraction == 1.0 and all(0 <= p.fraction <= 1 for p in seen)
    assert max(p.bytes_written for p in seen if p.stage == "quantizing") > 0
    assert not list(models.rglob(f"*{PARTIAL_SUFFIX}"))

    listed = {m.path: m for m in library.list_local_models(models)}
    assert set(listed) == {q8.path, q4.path}
    notes = library.read_sidecar(q4.path)
    assert notes["source"] == "quantized by LlamaDesk from tiny-F32.gguf (F32) to Q4_0"
    assert notes["quantized_from"]["path"] == str(f32_model.resolve()) and notes["quantized_from"]["type"] == "F32"
    assert listed[q4.path].sha256 == q4.sha256

    from llamadesk.core.gguf_header import read_header

    assert read_header(q8.path).quantization == "Q8_0" and read_header(q4.path).quantization == "Q4_0"
    for result in (q8, q4):
        engine = LlamaCppEngine()
        try:
            info = engine.load(LoadOptions(result.path, n_ctx=256, n_threads=1))
            assert info is not None and engine.count_tokens([{"role": "user", "content": "hello world"}]) > 0
        finally:
            engine.close()


def test_an_f16_source_and_an_output_outside_the_models_folder(f32_model: Path, tmp_path: Path) -> None:
    f16 = quantize(f32_model, "f16", tmp_path / "tiny-F16.gguf")
    assert f16.type == "F16" and f16.source_type == "F32"
    q8 = quantize(f16.path, "Q8_0", tmp_path / "elsewhere" / "tiny-from-f16-Q8_0.gguf")
    assert q8.source_type == "F16" and q8.path.exists()
    used_in_place = [m for m in library.list_local_models(get_paths().models) if m.external]
    assert {m.path for m in used_in_place} == {f16.path.resolve(), q8.path.resolve()}


@pytest.mark.parametrize(("type_name", "phrase"), [
    ("Q9_Z", "cannot quantize to 'Q9_Z'; choose one of"),
    ("IQ2_XS", "needs an importance matrix"),
    ("F32", "would not be smaller"),
])
def test_a_type_it_cannot_make_is_one_sentence(f32_model: Path, tmp_path: Path, type_name: str, phrase: str) -> None:
    with pytest.raises(QuantizeError, match=phrase) as err:
        quantize(f32_model, type_name, tmp_path / "out.gguf")
    assert str(err.value).count(". ") == 0 and not (tmp_path / "out.gguf").exists()


def test_a_quantized_source_an_existing_target_and_a_non_gguf_are_refused(f32_model: Path, tmp_path: Path) -> None:
    q4 = quantize(f32_model, "Q4_0", tmp_path / "tiny-Q4_0.gguf")
    with pytest.raises(QuantizeError, match=r"already quantized \(Q4_0\); quantize from an F32, F16, BF16 or Q8_0"):
        quantize(q4.path, "Q4_0", tmp_path / "again.gguf")
    with pytest.raises(QuantizeError, match="already exists"):
        quantize(f32_model, "Q4_0", q4.path)
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    with pytest.raises(QuantizeError):
        quantize(not_gguf, "Q4_0", tmp_path / "x.gguf")


def test_default_output_names_the_new_type() -> None:
    models = Path("/m")
    assert default_output(Path("/a/Model-7B-F16.gguf"), "Q4_K_M", models) == models / "quantized/Model-7B-Q4_K_M.gguf"
    assert default_output(Path("/a/model.Q8_0.gguf"), "Q4_0", models) == models / "quantized/model.Q4_0.gguf"
    assert default_output(Path("/a/model.gguf"), "Q5_K_S", models) == models / "quantized/model-Q5_K_S.gguf"


def test_stop_while_quantizing_kills_the_child_and_removes_the_partial_file(medium_f32: Path, tmp_path: Path) -> None:
    """Synchronised on a state: Stop is pressed once the partial file exists and holds bytes."""
    target = tmp_path / "medium-IQ3_S.gguf"
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    cancel = threading.Event()
    seen_partial: list[int] = []

    def progress(p: QuantizeProgress) -> None:
        if p.stage == "quantizing" and p.bytes_written > 0 and not cancel.is_set():
            seen_partial.append(partial.stat().st_size)
            cancel.set()

    with pytest.raises(QuantizeCancelled, match="was stopped; the partial file was removed"):
        quantize(medium_f32, "IQ3_S", target, progress=progress, cancel=cancel, threads=1)
    assert seen_partial and seen_partial[0] > 0
    assert not partial.exists() and not target.exists()
    assert not multiprocessing.active_children()
    assert not library.list_local_models(get_paths().models)


def test_k_and_iq_types_on_a_model_with_256_wide_rows(medium_f32: Path, tmp_path: Path) -> None:
    from llamadesk.core.gguf_header import read_header

    made = quantize(medium_f32, "Q4_K_M", tmp_path / "medium-Q4_K_M.gguf")
    assert read_header(made.path).quantization == "Q4_K_M"
    assert made.size_bytes < medium_f32.stat().st_size / 5

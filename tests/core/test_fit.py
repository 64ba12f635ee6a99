"""The fit estimate's arithmetic: KV cache, compute buffer, GPU-layer split, verdicts and the largest context."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from gguf_factory import write_tiny_llama

from llamadesk.core import fit
from llamadesk.core.fit import ModelShape, Verdict
from llamadesk.core.gguf_header import read_header

GB = 1_000_000_000
MiB = 1 << 20


def llama3_8b(weights: int = 4_900_000_000) -> ModelShape:
    """Llama 3.1 8B's real shape (GQA: 8 KV heads of 128), weights spread evenly."""
    return ModelShape(n_layers=32, n_embd=4096, n_head=32, n_head_kv=8, head_dim_k=128, head_dim_v=128,
                      n_vocab=128256, n_ctx_train=131072, layer_bytes=tuple([(weights - 2 * 280_000_000) // 32] * 32),
                      input_bytes=280_000_000, output_bytes=280_000_000)


def test_kv_cache_formula_matches_llama_cpp() -> None:
    shape = llama3_8b()
    # 32 layers · 8192 cells · 8 heads · (128·2 + 128·2) bytes = 1 GiB, llama.cpp's figure for f16 at 8k
    assert fit.kv_cache_bytes(shape, 8192) == 32 * 8192 * 8 * (128 * 2 + 128 * 2) == 1 << 30
    assert fit.kv_cache_bytes(shape, 8192, "q8_0", "q8_0") == int(32 * 8192 * 8 * (128 * 34 / 32 * 2))
    assert fit.kv_cache_bytes(shape, 8192, "f16", "q4_0") == int(32 * 8192 * 8 * (128 * 2 + 128 * 18 / 32))
    with pytest.raises(ValueError, match="Unknown KV cache type"):
        fit.kv_cache_bytes(shape, 8192, "q3_k")


def test_compute_buffer_grows_with_context_unless_flash_attention() -> None:
    shape = llama3_8b()
    small, big = fit.compute_buffer_bytes(shape, 4096), fit.compute_buffer_bytes(shape, 8192)
    assert big - small == 4 * 4096 * 512 * 32  # f32 scores of one layer: n_kv · n_ubatch · n_head
    assert fit.compute_buffer_bytes(shape, 8192, flash_attn=True) == fit.compute_buffer_bytes(shape, 4096,
                                                                                              flash_attn=True)


def test_fits_in_ram_without_a_gpu() -> None:
    est = fit.estimate(llama3_8b(), 4096, ram_free=16 * GB)
    assert est.verdict is Verdict.FITS and est.message == "fits" and est.gpu_layers == 0
    assert est.ram_needed == est.weights_bytes + est.kv_bytes + est.compute_bytes
    assert est.total_bytes == est.weights_bytes + est.kv_bytes + est.compute_bytes


def test_too_large_for_ram() -> None:
    est = fit.estimate(llama3_8b(), 4096, ram_free=4 * GB)
    assert est.verdict is Verdict.TOO_LARGE and est.message == "too large" and est.max_ctx == 0


def test_all_layers_on_a_big_gpu() -> None:
    est = fit.estimate(llama3_8b(), 4096, ram_free=16 * GB, vram_free=24 * GB)
    assert est.verdict is Verdict.FITS and est.gpu_layers == 32 and est.n_gpu_layers == 33
    # only the token embeddings and a small CPU graph stay in RAM
    assert est.ram_needed == 280_000_000 + est.compute_bytes // 8


def test_partial_offload_names_the_split() -> None:
    shape = llama3_8b()
    est = fit.estimate(shape, 4096, ram_free=16 * GB, vram_free=3 * GB)
    assert est.verdict is Verdict.PARTIAL and 0 < est.gpu_layers < 32
    assert est.message == f"fits with {est.gpu_layers} of 32 layers on GPU"
    # the split is the largest one whose VRAM need fits under free VRAM minus the reserve
    kv_layer = fit.kv_cache_bytes(shape, 4096) // 32
    per_layer = shape.layer_bytes[0] + kv_layer
    compute = fit.compute_buffer_bytes(shape, 4096)
    budget = 3 * GB - fit.VRAM_RESERVE - compute
    assert est.gpu_layers == budget // per_layer
    assert est.vram_needed <= 3 * GB - fit.VRAM_RESERVE


def test_layers_for_vram_bounds() -> None:
    shape = llama3_8b()
    assert fit.layers_for_vram(shape, 4096, 0) == 0
    assert fit.layers_for_vram(shape, 4096, 100 * GB) == 33  # every block plus the output layer
    few = fit.layers_for_vram(shape, 4096, 2 * GB)
    more = fit.layers_for_vram(shape, 4096, 4 * GB)
    assert 0 < few < more < 33
    assert fit.layers_for_vram(shape, 32768, 4 * GB) < more  # a longer context leaves room for fewer layers


def test_max_context_is_the_largest_that_fits() -> None:
    shape = llama3_8b()
    ram = 8 * GB
    best = fit.max_context(shape, ram_free=ram)
    assert best % fit.CONTEXT_STEP == 0 and 0 < best < shape.n_ctx_train
    assert fit.estimate(shape, best, ram_free=ram).verdict is not Verdict.TOO_LARGE
    assert fit.estimate(shape, best + fit.CONTEXT_STEP, ram_free=ram).verdict is Verdict.TOO_LARGE
    assert fit.max_context(shape, ram_free=1000 * GB) == shape.n_ctx_train


def test_shape_from_a_real_header(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf", n_layers=3, n_embd=64, n_head=2)
    header = read_header(path)
    shape = ModelShape.from_header(header)
    assert (shape.n_layers, shape.n_head_kv, shape.head_dim_k, shape.n_ctx_train) == (3, 2, 32, 2048)
    # every tensor byte is counted once: blocks, input side and output side
    assert shape.weights_bytes == header.tensor_data_size
    assert shape.output_bytes == header.tensor("output.weight").n_bytes
    assert len(set(shape.layer_bytes)) == 1
    # a split model: the parts not read are spread over the blocks
    bigger = ModelShape.from_header(header, total_weights=header.tensor_data_size + 3000)
    assert bigger.weights_bytes == header.tensor_data_size + 3000
    est = fit.estimate(header, 512, ram_free=8 * GB)
    assert est.verdict is Verdict.FITS and est.max_ctx == 2048


def test_approximate_shape_keeps_the_total() -> None:
    shape = ModelShape.approximate(n_layers=16, n_embd=2048, n_head=32, n_head_kv=8, head_dim=64, n_vocab=128256,
                                   n_ctx_train=131072, weights_bytes=808_000_000)
    assert shape.weights_bytes == 808_000_000
    assert shape.input_bytes > 0 and shape.output_bytes > 0

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
    # the split is the largest one whose VRAM need fits under free VRAM minus the reserve; the output layer
    # goes first, so it is paid for before any block
    kv_layer = fit.kv_cache_bytes(shape, 4096) // 32
    per_layer = shape.layer_bytes[0] + kv_layer
    compute = fit.compute_buffer_bytes(shape, 4096)
    budget = 3 * GB - fit.VRAM_RESERVE - compute - shape.output_bytes
    assert est.gpu_layers == budget // per_layer and est.output_on_gpu
    assert est.n_gpu_layers == est.gpu_layers + 1
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


def small_shape(layer_mib: tuple[int, ...] = (100, 100, 100, 100), output_mib: int = 50) -> ModelShape:
    """Round figures: 64 KiB of f16 KV cache per block at 256 tokens (1 head of 64 · 2 · 2 bytes · 256)."""
    return ModelShape(n_layers=len(layer_mib), n_embd=64, n_head=1, n_head_kv=1, head_dim_k=64, head_dim_v=64,
                      n_vocab=1000, n_ctx_train=2048, layer_bytes=tuple(m * MiB for m in layer_mib),
                      input_bytes=30 * MiB, output_bytes=output_mib * MiB)


@pytest.mark.parametrize(("n_gpu_layers", "blocks"), [(0, 0), (1, 0), (2, 1), (4, 3), (5, 4), (99, 4), (-1, 4)])
def test_gpu_blocks_follow_llama_cpp_numbering(n_gpu_layers: int, blocks: int) -> None:
    # llama-model.cpp: i_gpu_start = n_layer + 1 - n_gpu_layers over the slots 0 … n_layer (n_layer: output)
    assert fit.gpu_blocks(n_gpu_layers, 4) == blocks


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_layers_for_vram_arithmetic(k: int) -> None:
    """Free VRAM that holds exactly the reserve, the compute buffer, the output layer and k blocks with their
    KV cache gives n_gpu_layers = k + 1; one byte less gives k."""
    shape = small_shape()
    kv_layer = fit.kv_cache_bytes(shape, 256) // 4
    assert kv_layer == 64 * 1024
    compute = fit.compute_buffer_bytes(shape, 256)
    exact = fit.VRAM_RESERVE + compute + 50 * MiB + k * (100 * MiB + kv_layer)
    assert fit.layers_for_vram(shape, 256, exact) == k + 1
    assert fit.layers_for_vram(shape, 256, exact - 1) == k
    assert fit.layers_for_vram(shape, 256, exact - fit.VRAM_RESERVE, reserve=0) == k + 1


def test_output_layer_goes_first_then_blocks_from_the_last() -> None:
    # the last block is the big one: once the output layer is placed it is next in line, so nothing more fits
    # even though three small blocks would
    shape = small_shape((10, 10, 10, 500))
    compute = fit.compute_buffer_bytes(shape, 256)
    free = compute + 50 * MiB + 40 * MiB
    assert fit.layers_for_vram(shape, 256, free, reserve=0) == 1
    # the first block is the big one: every other block fits, and the first only with room for it
    shape = small_shape((500, 10, 10, 10))
    assert fit.layers_for_vram(shape, 256, free, reserve=0) == 4
    assert fit.layers_for_vram(shape, 256, free + 500 * MiB, reserve=0) == 5
    # a big output layer that does not fit keeps everything on the CPU
    assert fit.layers_for_vram(small_shape(output_mib=900), 256, 500 * MiB, reserve=0) == 0


def test_estimate_reports_llama_cpp_value_and_ram_split() -> None:
    shape = small_shape()
    compute = fit.compute_buffer_bytes(shape, 256, n_ubatch=256)  # the micro-batch is at most the context
    kv_layer = fit.kv_cache_bytes(shape, 256) // 4
    vram = fit.VRAM_RESERVE + compute + 50 * MiB + 2 * (100 * MiB + kv_layer)
    est = fit.estimate(shape, 256, ram_free=16 * GB, vram_free=vram)
    assert (est.verdict, est.gpu_layers, est.output_on_gpu, est.n_gpu_layers) == (Verdict.PARTIAL, 2, True, 3)
    assert est.vram_needed == compute + 50 * MiB + 2 * (100 * MiB + kv_layer)
    # RAM: the input layer, two blocks with their KV cache, and the CPU's compute buffer
    assert est.ram_needed == 30 * MiB + 2 * (100 * MiB + kv_layer) + compute
    only_output = fit.estimate(shape, 256, ram_free=16 * GB, vram_free=fit.VRAM_RESERVE + compute + 50 * MiB)
    assert (only_output.gpu_layers, only_output.n_gpu_layers, only_output.verdict) == (0, 1, Verdict.PARTIAL)


def test_quantized_kv_cache_makes_room_for_more_layers() -> None:
    shape = llama3_8b()
    f16 = fit.layers_for_vram(shape, 32768, 6 * GB)
    q8 = fit.layers_for_vram(shape, 32768, 6 * GB, type_k="q8_0", type_v="q8_0", flash_attn=True)
    assert 0 < f16 < q8 < 33

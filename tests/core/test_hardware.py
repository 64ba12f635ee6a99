"""The hardware snapshot read from ggml's backend registry, and the offload fallback arithmetic."""

from __future__ import annotations

import platform
from pathlib import Path

import gguf
import numpy as np
import psutil
import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core import fit, hardware
from llamadesk.core.doctor import GPU_BACKENDS
from llamadesk.core.engines.api import LoadOptions
from llamadesk.core.gguf_header import read_header


@pytest.fixture(scope="module")
def snap() -> hardware.HardwareSnapshot:
    return hardware.snapshot()


def test_cpu_backend_and_device_come_from_the_registry(snap: hardware.HardwareSnapshot) -> None:
    assert "CPU" in snap.backend_names
    cpu = [d for d in snap.devices if d.kind == "CPU"]
    assert len(cpu) == 1 and cpu[0].backend == "CPU" and cpu[0].name == "CPU"
    assert cpu[0].description  # the CPU's model name as ggml reads it
    cpu_backend = next(b for b in snap.backends if b.name == "CPU")
    assert cpu_backend.n_devices == 1


def test_no_gpu_without_a_gpu_backend(snap: hardware.HardwareSnapshot) -> None:
    if set(snap.backend_names) & GPU_BACKENDS:
        pytest.skip("this llama.cpp build has a GPU backend")
    assert snap.gpus == [] and snap.vram_free == 0
    assert all(not d.can_offload for d in snap.devices)


def test_memory_figures_agree_with_psutil(snap: hardware.HardwareSnapshot) -> None:
    mem = psutil.virtual_memory()
    assert snap.ram_total == mem.total
    assert abs(snap.ram_available - mem.available) < max(1 << 30, mem.total // 10)
    cpu = next(d for d in snap.devices if d.kind == "CPU")
    assert abs(cpu.total_bytes - mem.total) <= mem.total * 0.05
    # ggml says "all free" for the CPU on Linux/macOS; the snapshot reports the available memory instead
    assert 0 < cpu.free_bytes <= cpu.total_bytes
    assert abs(cpu.free_bytes - mem.available) < max(1 << 30, mem.total // 10)
    assert snap.cpu_physical >= 1 and snap.cpu_logical >= snap.cpu_physical


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 feature names")
def test_cpu_features_from_system_info(snap: hardware.HardwareSnapshot) -> None:
    assert snap.system_info.startswith("CPU :") or "CPU :" in snap.system_info
    assert "AVX2" in snap.cpu_features  # -DGGML_NATIVE=OFF builds still compile the AVX2 baseline
    cpu_backend = next(b for b in snap.backends if b.name == "CPU")
    assert cpu_backend.features.get("AVX2") == "1"  # the registry's own feature list agrees


def test_cpu_features_parse_only_the_cpu_part() -> None:
    info = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX512 = 0 | AVX2 = 1 | REPACK = 1 |"
    assert hardware.cpu_features(info) == ["SSE3", "AVX2", "REPACK"]
    assert hardware.cpu_features("") == []


def test_versions() -> None:
    version, commit = hardware.ggml_version()
    assert version.count(".") == 2 and commit


def test_snapshot_without_devices_does_not_touch_llama_cpp() -> None:
    s = hardware.snapshot(with_devices=False)
    assert s.devices == [] and s.backends == [] and s.ram_total > 0


@pytest.mark.parametrize(
    ("n", "ladder"),
    [(33, [33, 16, 8, 4, 2, 1, 0]), (3, [3, 1, 0]), (1, [1, 0]), (0, [0])],
)
def test_fallback_halves_then_zero(n: int, ladder: list[int]) -> None:
    assert hardware.fallback_layers(n) == ladder


def test_placement_reads_devices_buffers_and_flash_attention() -> None:
    lines = [
        "load_tensors: layer   0 assigned to device CPU, is_swa = 0",
        "load_tensors: layer   1 assigned to device CUDA0, is_swa = 0",
        "load_tensors: layer   2 assigned to device CUDA0, is_swa = 0",
        "load_tensors: offloaded 3/3 layers to GPU",  # not trusted: printed with no GPU when RPC is compiled in
        "load_tensors:   CPU_Mapped model buffer size =     0.49 MiB",
        "load_tensors:        CUDA0 model buffer size =   812.50 MiB",
        "llama_context: flash_attn            = auto",
        "resolve_fused_ops: Flash Attention enabled",
    ]
    p = hardware.Placement.parse(lines)
    assert p.gpu_layers == 2 and p.gpu_devices == ["CUDA0"]
    assert p.buffers == {"CPU_Mapped": 0.49, "CUDA0": 812.5}
    assert p.flash_attn == "on"
    assert hardware.Placement.parse(["x: Flash Attention not supported, set to disabled"]).flash_attn == "off"
    assert hardware.Placement.parse(["llama_context: flash_attn            = disabled"]).flash_attn == "off"
    assert hardware.Placement.parse([]).flash_attn == "auto"


def test_offload_notes() -> None:
    assert hardware.offload_note(0, 0, 31, []) == ""
    assert hardware.offload_note(99, 0, 31, []).startswith("No GPU device was found")
    assert hardware.offload_note(-1, 31, 31, ["CUDA0"]) == "31 of 31 layers run on CUDA0."
    partial = hardware.offload_note(-1, 15, 31, ["CUDA0"], out_of_memory=True)
    assert partial == "31 layers did not fit in GPU memory, so 15 of 31 run on CUDA0, the rest on the CPU."
    assert "all layers run on the CPU" in hardware.offload_note(8, 0, 31, ["CUDA0"], out_of_memory=True)
    silent = hardware.offload_note(8, 0, 31, ["CUDA0"])  # fewer than asked, with no memory failure
    assert silent == "llama.cpp put 0 of 31 layers on CUDA0, not the 8 asked for; the rest run on the CPU."


@pytest.mark.parametrize(
    ("reason", "memory"),
    [
        ("unable to allocate CUDA0 buffer", True),
        ("cudaMalloc failed: out of memory", True),
        ("failed to allocate compute pp buffers", True),
        ("tensor 'blk.0.attn_q.weight' data is not within the file bounds", False),
        (None, False),
    ],
)
def test_memory_failures_are_recognised(reason: str | None, memory: bool) -> None:
    assert hardware.is_memory_failure(reason) is memory


def gpu(free: int, name: str = "CUDA0") -> hardware.Device:
    return hardware.Device(name, "A GPU", "GPU", "CUDA", total_bytes=free, free_bytes=free)


def test_auto_gpu_layers_follows_the_fit_estimate(tmp_path: Path) -> None:
    header = read_header(write_tiny_llama(tmp_path / "m.gguf", n_layers=3, n_embd=64, n_head=2))
    options = LoadOptions(tmp_path / "m.gguf", n_ctx=512)
    cpu = hardware.Device("CPU", "A CPU", "CPU", "CPU", 8 << 30, 8 << 30)

    n, note = hardware.auto_gpu_layers(header, options, [cpu])
    assert n == 0 and note == "GPU layers are on auto and no GPU device was found, so all layers run on the CPU."

    n, note = hardware.auto_gpu_layers(header, options, [cpu, gpu(8 << 30)])
    assert n == 4 and note == "GPU layers are on auto: all 4 layers fit in GPU memory (8.0 GiB free on CUDA0)."

    n, note = hardware.auto_gpu_layers(header, options, [gpu(fit.VRAM_RESERVE)])  # nothing left past the reserve
    assert n == 0 and "does not fit in GPU memory" in note and "512-token context" in note

    # exactly the room the estimate asks for two slots (the output layer and the last block) at this context
    shape = fit.ModelShape.from_header(header)
    want = fit.VRAM_RESERVE + fit.compute_buffer_bytes(shape, 512) + shape.output_bytes + shape.layer_bytes[2]
    want += fit.kv_cache_bytes(shape, 512) // 3
    n, note = hardware.auto_gpu_layers(header, options, [gpu(want)])
    assert n == 2 and note.startswith("GPU layers are on auto: 2 of 4 layers fit in GPU memory")
    # a quantized KV cache at a longer context: the same arithmetic with its own figures
    q8 = LoadOptions(tmp_path / "m.gguf", n_ctx=2048, type_k="q8_0", type_v="q8_0", flash_attn=True)
    expected = fit.layers_for_vram(shape, 2048, want, type_k="q8_0", type_v="q8_0", flash_attn=True)
    assert hardware.auto_gpu_layers(header, q8, [gpu(want)])[0] == expected
    # two GPUs pool their free memory, each keeping its reserve
    n, _ = hardware.auto_gpu_layers(header, options, [gpu(want, "CUDA0"), gpu(fit.VRAM_RESERVE, "CUDA1")])
    assert n == 2


def write_split_parts(tmp_path: Path, count: int = 3, extra: int = 1 << 20) -> tuple[Path, int]:
    """A split model as gguf-split lays it out: the first part holds the metadata and the first tensors, the
    others `split.no`/`split.count` and more tensors (here `extra` float32 values of block 1's weights each).
    Returns the first part and the weights of all parts together."""
    first = write_tiny_llama(tmp_path / f"m-00001-of-{count:05d}.gguf", n_layers=3, n_embd=64, n_head=2)
    total = sum(t.n_bytes for t in read_header(first).tensors)
    for no in range(1, count):
        w = gguf.GGUFWriter(str(tmp_path / f"m-{no + 1:05d}-of-{count:05d}.gguf"), "llama")
        w.add_uint16("split.no", no)
        w.add_uint16("split.count", count)
        w.add_tensor(f"blk.1.ffn_extra_{no}.weight", np.zeros(extra, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        total += extra * 4
    return first, total


def test_auto_gpu_layers_counts_every_part_of_a_split_model(tmp_path: Path) -> None:
    first, total = write_split_parts(tmp_path)
    header = read_header(first)
    options = LoadOptions(first, n_ctx=512)
    assert hardware.split_weights(header, first) == total
    assert hardware.split_weights(header, write_tiny_llama(tmp_path / "single.gguf")) is None

    alone = fit.ModelShape.from_header(header)  # what the first part's header alone tells
    whole = fit.ModelShape.from_header(header, total_weights=total)
    assert whole.weights_bytes == total > alone.weights_bytes + (2 << 20)
    # room for every layer of the first part alone, far from enough for the whole model
    room = fit.VRAM_RESERVE + fit.compute_buffer_bytes(alone, 512) + fit.kv_cache_bytes(alone, 512)
    room += alone.weights_bytes
    assert fit.layers_for_vram(alone, 512, room) == 4
    n, note = hardware.auto_gpu_layers(header, options, [gpu(room)])
    assert n == fit.layers_for_vram(whole, 512, room) < 4 and f"{n} of 4 layers fit" in note

    (tmp_path / "m-00003-of-00003.gguf").write_bytes(b"not a gguf" * 100)  # unreadable: its size counts
    assert hardware.split_weights(header, first) == total - (1 << 22) + 1000


def test_offload_note_prefers_the_auto_sentence_when_the_load_did_what_auto_chose() -> None:
    auto = "GPU layers are on auto: all 4 layers fit in GPU memory (8.0 GiB free on CUDA0)."
    assert hardware.offload_note(4, 4, 4, ["CUDA0"], auto_note=auto) == auto
    assert hardware.offload_note(0, 0, 4, [], auto_note="no GPU.") == "no GPU."
    fell_back = hardware.offload_note(4, 2, 4, ["CUDA0"], out_of_memory=True, auto_note=auto)
    assert fell_back.startswith("4 layers did not fit in GPU memory")

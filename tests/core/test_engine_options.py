"""Advanced load options through real llama.cpp: GPU layers on a CPU build, flash attention, KV cache types,
mmap/mlock, and the fallback to fewer GPU layers when a load runs out of memory."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core import hardware
from llamadesk.core.engines import local as engine_module
from llamadesk.core.engines.api import GPU_LAYERS_AUTO, Done, LoadOptions
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.errors import InvalidSetting, ModelLoadError
from llamadesk.core.sampling import SamplingParams
from tests.core.conftest import collect

HELLO = [{"role": "user", "content": "hello model"}]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """head_dim 32, so q8_0/q4_0 blocks (32 values) divide it."""
    return write_tiny_llama(tmp_path_factory.mktemp("opts") / "tiny-kv.gguf", n_embd=64, n_head=2)


@pytest.fixture
def engine() -> Any:
    eng = LlamaCppEngine()
    yield eng
    eng.close()


def reply(engine: LlamaCppEngine, max_tokens: int = 8) -> tuple[str, Done]:
    return collect(engine.stream(HELLO, SamplingParams(max_tokens=max_tokens, seed=3, top_k=1)))


def no_gpu() -> bool:
    return not hardware.snapshot().gpus


def one_sentence(text: str) -> bool:
    return text.endswith(".") and "\n" not in text and len(re.findall(r"[.!?](\s|$)", text)) == 1


@pytest.mark.parametrize("n_gpu_layers", [99, -1, 1])
def test_gpu_layers_on_a_cpu_build_load_and_say_what_happened(
    engine: LlamaCppEngine, model: Path, n_gpu_layers: int
) -> None:
    if not no_gpu():
        pytest.skip("this machine has a GPU device")
    info = engine.load(LoadOptions(model, n_ctx=512, n_threads=2, n_gpu_layers=n_gpu_layers))
    assert info.n_gpu_layers == 0 and info.n_gpu_layers_requested == n_gpu_layers
    assert info.offload_note.startswith("No GPU device was found") and "CPU" in info.offload_note
    assert info.gpu_buffers == {}
    _, done = reply(engine)
    assert done.stats.generated_tokens > 0


def test_auto_gpu_layers_on_a_cpu_build_places_none_and_says_so(engine: LlamaCppEngine, model: Path) -> None:
    if not no_gpu():
        pytest.skip("this machine has a GPU device")
    info = engine.load(LoadOptions(model, n_ctx=512, n_threads=1, n_gpu_layers=GPU_LAYERS_AUTO))
    assert info.n_gpu_layers == 0 and info.n_gpu_layers_requested == GPU_LAYERS_AUTO
    assert info.offload_note == "GPU layers are on auto and no GPU device was found, so all layers run on the CPU."
    _, done = reply(engine)
    assert done.stats.generated_tokens > 0


def test_no_gpu_layers_asked_no_note(engine: LlamaCppEngine, model: Path) -> None:
    info = engine.load(LoadOptions(model, n_ctx=512, n_threads=2))
    assert info.n_gpu_layers == 0 and info.offload_note == ""


def test_quantized_v_without_flash_attention_is_one_sentence(engine: LlamaCppEngine, model: Path) -> None:
    options = LoadOptions(model, n_ctx=512, flash_attn=False, type_v="q8_0")
    with pytest.raises(InvalidSetting) as setting:
        options.check()
    with pytest.raises(ModelLoadError) as load:
        engine.load(options)
    message = str(load.value)
    assert message == str(setting.value)
    assert "flash attention" in message and "q8_0" in message and one_sentence(message), message
    assert engine.info is None


def test_unknown_cache_type_is_one_sentence(engine: LlamaCppEngine, model: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"K cache type must be one of f16, q8_0, q4_0") as err:
        engine.load(LoadOptions(model, type_k="q2_k"))
    assert one_sentence(str(err.value))
    with pytest.raises(ModelLoadError, match="GPU layers"):
        engine.load(LoadOptions(model, n_gpu_layers=-5))


def kv_line(caplog: pytest.LogCaptureFixture) -> str:
    lines = [r.getMessage() for r in caplog.records if "llama_kv_cache: size" in r.getMessage()]
    assert lines, "llama.cpp logged no KV cache size"
    return lines[-1]


def test_flash_attention_with_q8_0_cache_loads_and_streams(
    engine: LlamaCppEngine, model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="llamadesk.llama_cpp"):
        info = engine.load(LoadOptions(model, n_ctx=512, n_threads=2, flash_attn=True, type_k="q8_0", type_v="q8_0"))
    assert info.flash_attn == "on" and info.type_k == "q8_0" and info.type_v == "q8_0"
    line = kv_line(caplog)
    assert "K (q8_0)" in line and "V (q8_0)" in line
    text, done = reply(engine, 16)
    assert done.stats.generated_tokens > 0 and text
    assert done.receipt["n_ctx"] == 512


def test_auto_flash_attention_is_enabled_for_a_quantized_v_cache(
    engine: LlamaCppEngine, model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="llamadesk.llama_cpp"):
        info = engine.load(LoadOptions(model, n_ctx=512, n_threads=2, flash_attn=None, type_k="q4_0", type_v="q4_0"))
    assert info.flash_attn == "on"
    assert "V (q4_0)" in kv_line(caplog)
    assert reply(engine)[1].stats.generated_tokens > 0


@pytest.mark.parametrize(("flash_attn", "shown"), [(False, "off"), (True, "on"), (None, "on")])
def test_flash_attention_setting_is_reported_as_resolved(
    engine: LlamaCppEngine, model: Path, flash_attn: bool | None, shown: str
) -> None:
    # auto: llama.cpp enables it when every device that holds a layer supports it, as the CPU does
    info = engine.load(LoadOptions(model, n_ctx=512, n_threads=2, flash_attn=flash_attn))
    assert info.flash_attn == shown


def test_auto_flash_attention_reaches_llama_cpp(
    engine: LlamaCppEngine, model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="llamadesk.llama_cpp"):
        engine.load(LoadOptions(model, n_ctx=512, flash_attn=None))
    assert any(re.search(r"flash_attn\s+= auto", r.getMessage()) for r in caplog.records)


def test_same_reply_with_and_without_flash_attention_at_f16(engine: LlamaCppEngine, model: Path) -> None:
    engine.load(LoadOptions(model, n_ctx=512, n_threads=2, flash_attn=False))
    off, _ = reply(engine, 12)
    engine.load(LoadOptions(model, n_ctx=512, n_threads=2, flash_attn=True))
    on, _ = reply(engine, 12)
    assert off and on  # both generate; greedy text may differ by rounding, so only shape is compared
    assert len(off.split()) > 0 and len(on.split()) > 0


def test_mmap_off_and_mlock_on_load(engine: LlamaCppEngine, model: Path) -> None:
    info = engine.load(LoadOptions(model, n_ctx=512, n_threads=2, use_mmap=False, use_mlock=True))
    assert info.use_mmap is False and info.use_mlock is True
    assert reply(engine)[1].stats.generated_tokens > 0


def test_load_progress_reaches_the_callback(engine: LlamaCppEngine, model: Path) -> None:
    seen: list[float] = []

    def progress(fraction: float) -> bool:
        seen.append(fraction)
        return True

    engine.load(LoadOptions(model, n_ctx=512), progress)
    assert seen and seen[-1] == pytest.approx(1.0)


def test_load_progress_can_cancel(engine: LlamaCppEngine, model: Path) -> None:
    with pytest.raises(ModelLoadError, match="cancelled"):
        engine.load(LoadOptions(model, n_ctx=512), lambda f: False)
    assert engine.info is None


# -- falling back to fewer GPU layers (a GPU is simulated: the device list and the out-of-memory failures) --

FAKE_GPU = hardware.Device("FakeGPU0", "Simulated GPU", "GPU", "CUDA", 8 << 30, 1 << 30)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pretends a GPU exists and that any load with more than one GPU layer runs out of its memory;
    returns the GPU-layer counts the engine tried, in order."""
    tried: list[int] = []
    real_new_llama = LlamaCppEngine._new_llama
    monkeypatch.setattr(hardware, "list_devices", lambda: [FAKE_GPU])

    def new_llama(
        self: LlamaCppEngine, path: Path, options: LoadOptions, n_threads: int, n_gpu: int, progress: Any
    ) -> Any:
        tried.append(n_gpu)
        if n_gpu > 1:
            cause = ValueError("Failed to load model from file")
            raise engine_module.LoadFailed("unable to allocate CUDA0 buffer", cause)
        return real_new_llama(self, path, options, n_threads, n_gpu, progress)

    monkeypatch.setattr(LlamaCppEngine, "_new_llama", new_llama)
    return tried


def test_out_of_gpu_memory_retries_with_fewer_layers(engine: LlamaCppEngine, model: Path, fake_gpu: list[int]) -> None:
    info = engine.load(LoadOptions(model, n_ctx=512, n_threads=2, n_gpu_layers=-1))
    assert fake_gpu == [3, 1]  # 2 blocks + the output layer, then half of that
    assert info.n_gpu_layers_requested == -1
    assert info.n_gpu_layers == 0  # the real (CPU) llama.cpp put the one layer asked for on the CPU
    assert "did not fit in GPU memory" in info.offload_note and one_sentence(info.offload_note)
    assert reply(engine)[1].stats.generated_tokens > 0


def test_out_of_memory_at_every_step_is_one_sentence(
    engine: LlamaCppEngine, model: Path, fake_gpu: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_oom(
        self: LlamaCppEngine, path: Path, options: LoadOptions, n_threads: int, n_gpu: int, progress: Any
    ) -> Any:
        fake_gpu.append(n_gpu)
        raise engine_module.LoadFailed("unable to allocate CPU buffer", ValueError("Failed to load model from file"))

    monkeypatch.setattr(LlamaCppEngine, "_new_llama", always_oom)
    with pytest.raises(ModelLoadError, match="does not fit in memory") as err:
        engine.load(LoadOptions(model, n_ctx=512, n_gpu_layers=3))
    assert fake_gpu == [3, 1, 0] and one_sentence(str(err.value))


def test_other_failures_are_not_retried(
    engine: LlamaCppEngine, model: Path, fake_gpu: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(
        self: LlamaCppEngine, path: Path, options: LoadOptions, n_threads: int, n_gpu: int, progress: Any
    ) -> Any:
        fake_gpu.append(n_gpu)
        raise engine_module.LoadFailed("unknown model architecture: 'x'", ValueError("Failed to load model"))

    monkeypatch.setattr(LlamaCppEngine, "_new_llama", broken)
    with pytest.raises(ModelLoadError, match="architecture"):
        engine.load(LoadOptions(model, n_ctx=512, n_gpu_layers=3))
    assert fake_gpu == [3]


def test_capabilities_say_gpu_offload_only_with_a_gpu_device(engine: LlamaCppEngine) -> None:
    assert engine.capabilities()["gpu_offload"] is (not no_gpu())

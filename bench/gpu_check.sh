#!/usr/bin/env bash
# GPU check: build llama-cpp-python for a GPU backend into its own venv, confirm `llamadesk doctor` sees the
# GPU, load a model with every layer offloaded, check that the weights really sit on the GPU (llama.cpp's
# placement and the device's free memory), and compare decode speed with the CPU.
#
#   bench/gpu_check.sh [MODEL.gguf]
#
# Environment: BACKEND=cuda (or vulkan, metal), VENV=.venv-$BACKEND, PYTHON=python3, SKIP_BUILD=1 (reuse the
# venv as it is), OUT=folder for doctor.json and result.json. Without MODEL the starter model is fetched
# (network); with no network either, a generated tiny model is used (placement is checked, speed means little).
# Exit status: 0 offloaded; 2 no GPU device; 3 offload fell back to the CPU (silently or not); 1 anything else.
set -euo pipefail

cd "$(dirname "$0")/.."
backend="${BACKEND:-cuda}"
venv="${VENV:-.venv-$backend}"
python="${PYTHON:-python3}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
export LLAMADESK_HOME="${LLAMADESK_HOME:-$out/home}"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  wheelhouse="$(PYTHON="$venv/bin/python" packaging/build_llama_wheel.sh "$backend")"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --find-links "$wheelhouse" \
    --only-binary llama-cpp-python --force-reinstall --no-deps "llama-cpp-python"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --find-links "$wheelhouse" \
    --only-binary llama-cpp-python -e '.[test]'
fi
py="$venv/bin/python"

echo "== llamadesk doctor --json" >&2
if ! "$py" -m llamadesk doctor --json >"$out/doctor.json" 2>"$out/doctor.err"; then
  # `doctor` not registered in cli.COMMANDS yet: the same report from the module
  "$py" -c 'import json; from llamadesk.core import doctor; print(json.dumps(doctor.collect(), indent=2))' \
    >"$out/doctor.json"
fi
"$py" -c 'import json, sys; r = json.load(open(sys.argv[1])); print("GPU offload:", r["gpu_offload"]["summary"])' \
  "$out/doctor.json" >&2

echo "== offload check" >&2
"$py" - "${1:-}" "$out" <<'PY'
import json
import statistics
import sys
import time
from pathlib import Path

from llamadesk.core import hardware
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.engines.api import LoadOptions, Token
from llamadesk.core.sampling import SamplingParams

model_arg, out = sys.argv[1], Path(sys.argv[2])
result: dict = {"ok": False}


def finish(code: int, reason: str) -> None:
    result["reason"] = reason
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    print(("OK: " if code == 0 else "FAIL: ") + reason, file=sys.stderr)
    sys.exit(code)


gpus = [d for d in hardware.list_devices() if d.can_offload and d.backend != "RPC"]
result["devices"] = [f"{d.name} ({d.description}, {d.free_bytes / 2**30:.1f} GiB free)" for d in gpus]
if not gpus:
    finish(2, "no GPU device: the build has backends " + ", ".join(hardware.snapshot().backend_names))

if model_arg:
    model = Path(model_arg)
else:
    try:
        from llamadesk.core.starter import ensure_starter
        from llamadesk.paths import get_paths

        paths = get_paths().ensure()
        model = ensure_starter(paths.models, paths.cache / "starter")
    except Exception as exc:  # no network: a generated model still shows where the layers go
        sys.path.insert(0, "tests")
        from gguf_factory import write_tiny_llama

        print(f"starter model unavailable ({exc}); using a generated tiny model", file=sys.stderr)
        model = write_tiny_llama(out / "tiny.gguf", n_layers=8, n_embd=256, n_head=8)
result["model"] = model.name

free_before = sum(d.free_bytes for d in gpus)
engine = LlamaCppEngine()
info = engine.load(LoadOptions(model, n_ctx=2048, n_gpu_layers=-1))
free_after = sum(d.free_bytes for d in hardware.list_devices() if d.can_offload and d.backend != "RPC")
result.update(
    n_layers=info.n_layers,
    n_gpu_layers=info.n_gpu_layers,
    offload_note=info.offload_note,
    gpu_buffers_mib=info.gpu_buffers,
    flash_attn=info.flash_attn,
    vram_used_mib=round((free_before - free_after) / 2**20, 1),
)
if info.n_gpu_layers < info.n_layers + 1:
    finish(3, f"asked for all {info.n_layers + 1} layers, {info.n_gpu_layers} on the GPU: {info.offload_note}")
weights_mib = sum(info.gpu_buffers.values())
if weights_mib <= 0:
    finish(3, "llama.cpp placed the layers on a GPU but reported no GPU model buffer")
if free_before - free_after < 0.5 * weights_mib * 2**20:
    finish(3, f"GPU free memory fell by {result['vram_used_mib']} MiB only, for {weights_mib:.0f} MiB of weights")


def tokens_per_s(eng: LlamaCppEngine) -> float:
    times = []
    prompt = [{"role": "user", "content": "Write a long story about a llama who learns to program."}]
    for event in eng.stream(prompt, SamplingParams(max_tokens=128, seed=1)):
        if isinstance(event, Token):
            times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0


cpu = LlamaCppEngine()
cpu.load(LoadOptions(model, n_ctx=2048, n_gpu_layers=0))
tokens_per_s(engine), tokens_per_s(cpu)  # warm-up
gpu_tps, cpu_tps, ratios = [], [], []
for i in range(3):
    if i % 2 == 0:  # alternate the order: A B, B A, A B
        a = tokens_per_s(engine)
        b = tokens_per_s(cpu)
    else:
        b = tokens_per_s(cpu)
        a = tokens_per_s(engine)
    gpu_tps.append(a)
    cpu_tps.append(b)
    ratios.append(a / b if b else float("inf"))
result.update(
    gpu_tokens_per_s=round(statistics.median(gpu_tps), 1),
    cpu_tokens_per_s=round(statistics.median(cpu_tps), 1),
    ratio=round(statistics.median(ratios), 2),
    ratio_min=round(min(ratios), 2),
    ratio_max=round(max(ratios), 2),
    ok=True,
)
if result["ratio"] < 1.0:
    print("warning: the GPU decoded no faster than the CPU (a tiny model or a busy GPU?)", file=sys.stderr)
finish(0, f"{info.offload_note} {result['gpu_tokens_per_s']} vs {result['cpu_tokens_per_s']} tokens/s on the CPU")
PY

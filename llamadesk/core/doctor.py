"""The system report behind `llamadesk doctor` and the About panel: versions, backends, devices, memory, paths."""

from __future__ import annotations

import platform
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llamadesk import __version__
from llamadesk.core import hardware
from llamadesk.paths import Paths, get_paths

# ggml registry names of backends that drive a GPU ("MTL" is Metal). A GPU backend compiled in but seeing no
# device (no driver, no card) still offloads nothing.
GPU_BACKENDS = {"CUDA", "ROCm", "MUSA", "MTL", "Vulkan", "SYCL", "OpenCL", "CANN", "WebGPU", "VirtGPU", "HTP"}
_PRETTY = {"MTL": "Metal"}


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def gpu_offload(snap: hardware.HardwareSnapshot) -> dict[str, Any]:
    """Whether this build can put layers on a GPU now. llama_supports_gpu_offload() is not used as the answer:
    it is true whenever the RPC backend is compiled in, GPU or not."""
    import llama_cpp

    compiled = [_PRETTY.get(b.name, b.name) for b in snap.backends if b.name in GPU_BACKENDS]
    local = [d for d in snap.gpus if d.backend != "RPC"]
    remote = [d for d in snap.gpus if d.backend == "RPC"]
    if local:
        summary = "yes: " + ", ".join(f"{d.name} ({d.description}, {gib(d.free_bytes)} free)" for d in local)
    elif remote:
        summary = "yes, to RPC servers only: " + ", ".join(d.description or d.name for d in remote)
    elif compiled:
        summary = f"no GPU device ({', '.join(compiled)} compiled in, but it sees no device)"
    else:
        summary = "no GPU device (this build has no GPU backend)"
    return {
        "possible": bool(snap.gpus),
        "summary": summary,
        "devices": [d.name for d in snap.gpus],
        "gpu_backends_compiled": compiled,
        "vram_free_bytes": snap.vram_free,
        "llama_supports_gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "rpc_compiled": "RPC" in snap.backend_names,
    }


def _paths(paths: Paths) -> dict[str, Any]:
    found: dict[str, Any] = {
        "data": str(paths.data),
        "config": str(paths.config),
        "cache": str(paths.cache),
        "models": str(paths.models),
        "logs": str(paths.logs),
        "history_db": str(paths.history_db),
        "settings_file": str(paths.settings_file),
    }
    try:
        found["models_disk_free_bytes"] = shutil.disk_usage(_existing(paths.models)).free
    except OSError:
        found["models_disk_free_bytes"] = None
    return found


def _existing(path: Path) -> Path:
    """The nearest folder that exists (disk_usage needs one; doctor creates nothing)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def collect(paths: Paths | None = None) -> dict[str, Any]:
    """The whole report as plain JSON-able values. Loads llama.cpp's libraries; loads no model."""
    import llama_cpp

    snap = hardware.snapshot()
    version, commit = hardware.ggml_version()
    cpu_device = next((d for d in snap.devices if d.kind == "CPU"), None)
    return {
        "llamadesk": {"version": __version__},
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "frozen": bool(getattr(sys, "frozen", False)),
        },
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine()},
        "llama_cpp_python": {"version": llama_cpp.__version__, "library_dir": str(hardware.library_dir())},
        "llama_cpp": {"ggml_version": version, "commit": commit, "system_info": snap.system_info},
        "backends": [{"name": b.name, "devices": b.n_devices, "features": b.features} for b in snap.backends],
        "cpu": {
            "name": cpu_device.description if cpu_device else platform.processor(),
            "physical_cores": snap.cpu_physical,
            "logical_cores": snap.cpu_logical,
            "features": snap.cpu_features,
        },
        "devices": [asdict(d) for d in snap.devices],
        "ram": {"total_bytes": snap.ram_total, "available_bytes": snap.ram_available},
        "gpu_offload": gpu_offload(snap),
        "mmap": bool(llama_cpp.llama_supports_mmap()),
        "mlock": bool(llama_cpp.llama_supports_mlock()),
        "paths": _paths(paths or get_paths()),
    }


def format_text(report: dict[str, Any]) -> str:
    """The report as a person reads it (and pastes into a bug report)."""
    lcpp, cpu, ram, gpu = report["llama_cpp"], report["cpu"], report["ram"], report["gpu_offload"]
    backends = []
    for b in report["backends"]:
        name = _PRETTY.get(b["name"], b["name"])
        backends.append(f"{name} ({b['devices']} device{'' if b['devices'] == 1 else 's'})")
    lines = [
        f"LlamaDesk          {report['llamadesk']['version']}",
        f"Python             {report['python']['version']} ({report['python']['implementation']}, "
        f"{report['platform']['system']} {report['platform']['machine']})",
        f"llama-cpp-python   {report['llama_cpp_python']['version']}",
        f"llama.cpp (ggml)   {lcpp['ggml_version']}, commit {lcpp['commit']}",
        f"Backends           {', '.join(backends)}",
        f"CPU                {cpu['name']}, {cpu['physical_cores']} cores ({cpu['logical_cores']} threads)",
        f"CPU features       {' '.join(cpu['features']) or '-'}",
        f"RAM                {gib(ram['available_bytes'])} available of {gib(ram['total_bytes'])}",
        "Devices",
    ]
    for d in report["devices"]:
        lines.append(
            f"  {d['name']:<16} {d['kind']:<5} {d['backend']:<7} {d['description']}: "
            f"{gib(d['free_bytes'])} free of {gib(d['total_bytes'])}"
        )
    lines.append(f"GPU offload        {gpu['summary']}")
    if gpu["llama_supports_gpu_offload"] and not gpu["possible"]:
        lines.append("                   (llama.cpp's offload flag is on only because the RPC backend is compiled in)")
    lines.append("Paths")
    for key in ("data", "config", "cache", "models", "logs", "history_db"):
        lines.append(f"  {key:<16} {report['paths'][key]}")
    free = report["paths"].get("models_disk_free_bytes")
    if free is not None:
        lines.append(f"  {'disk free':<16} {gib(free)} (models folder)")
    return "\n".join(lines)

"""What this machine has: CPU, RAM, and the accelerator devices llama.cpp's backends can see."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from llamadesk.core.errors import LlamaDeskError

if TYPE_CHECKING:
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.gguf_header import GGUFHeader

# enum ggml_backend_dev_type in ggml-backend.h
DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "IGPU", 3: "ACCEL", 4: "META"}


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    kind: str  # ggml's device type: "CPU", "GPU", "IGPU", "ACCEL" or "META" (RPC servers show up as "GPU")
    backend: str  # the registry that owns it: "CPU", "CUDA", "Metal", "Vulkan", "RPC", ...
    total_bytes: int
    free_bytes: int

    @property
    def can_offload(self) -> bool:
        """llama.cpp puts model layers on GPU and integrated-GPU devices (and on RPC servers, typed GPU)."""
        return self.kind in ("GPU", "IGPU")


@dataclass(frozen=True)
class Backend:
    """A backend compiled into this llama.cpp build (ggml_backend_reg_*), with the features it reports."""

    name: str
    n_devices: int
    features: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HardwareSnapshot:
    cpu_physical: int
    cpu_logical: int
    ram_total: int
    ram_available: int
    devices: list[Device] = field(default_factory=list)
    backends: list[Backend] = field(default_factory=list)
    cpu_features: list[str] = field(default_factory=list)  # from llama_print_system_info(): "AVX2", "FMA", ...
    system_info: str = ""  # llama_print_system_info() as printed

    @property
    def gpus(self) -> list[Device]:
        return [d for d in self.devices if d.can_offload]

    @property
    def vram_free(self) -> int:
        return sum(d.free_bytes for d in self.gpus)

    @property
    def backend_names(self) -> list[str]:
        return [b.name for b in self.backends]


def snapshot(*, with_devices: bool = True) -> HardwareSnapshot:
    """Reads the figures now (they change as other programs run). with_devices loads llama_cpp (its libraries)."""
    mem = psutil.virtual_memory()
    devices: list[Device] = []
    backends: list[Backend] = []
    info = ""
    if with_devices:
        backends = list_backends()
        devices = list_devices()
        info = system_info()
    return HardwareSnapshot(
        cpu_physical=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        cpu_logical=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        ram_total=mem.total,
        ram_available=mem.available,
        devices=devices,
        backends=backends,
        cpu_features=cpu_features(info),
        system_info=info,
    )


# -- ggml's backend registry through ctypes --------------------------------------------------------------


class _Feature(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]


def library_dir() -> Path:
    """The folder llama_cpp loaded its shared libraries from (LLAMA_CPP_LIB_PATH overrides, as in llama_cpp)."""
    import llama_cpp.llama_cpp as lcpp

    return Path(getattr(lcpp, "_base_path", Path(lcpp.__file__).parent / "lib"))


def _linked_ggml(folder: Path) -> Path | None:
    """The libggml file libllama is linked against. Wheels hold copies, not symlinks (libggml.so, libggml.so.0,
    libggml.so.0.25.3): each file opened loads as a library of its own, with its own backend registry, so only
    the one named by the soname (the shortest versioned name: libggml.so.0, libggml.0.dylib) is libllama's."""
    found = sorted([*folder.glob("libggml.so.*"), *folder.glob("libggml.*.dylib")], key=lambda p: len(p.name))
    return found[0] if found else None


@cache
def ggml() -> Any:
    """libggml, bound here: llama-cpp-python binds none of the ggml_backend_* registry functions.
    Importing llama_cpp first loads libllama, so this opens the copy already in the process (the same
    registry llama.cpp loads models with: RPC servers registered here are the ones a load can use)."""
    import llama_cpp  # noqa: F401 (loads libggml-base, libggml and the backends)
    from llama_cpp._ctypes_extensions import load_shared_library

    linked = _linked_ggml(library_dir())
    lib = ctypes.CDLL(str(linked)) if linked is not None else load_shared_library("ggml", library_dir())
    vp, size, text = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
    signatures: dict[str, tuple[list[Any], Any]] = {
        "ggml_backend_reg_count": ([], size),
        "ggml_backend_reg_get": ([size], vp),
        "ggml_backend_reg_name": ([vp], text),
        "ggml_backend_reg_dev_count": ([vp], size),
        "ggml_backend_reg_get_proc_address": ([vp, text], vp),
        "ggml_backend_dev_count": ([], size),
        "ggml_backend_dev_get": ([size], vp),
        "ggml_backend_dev_name": ([vp], text),
        "ggml_backend_dev_description": ([vp], text),
        "ggml_backend_dev_type": ([vp], ctypes.c_int),
        "ggml_backend_dev_memory": ([vp, ctypes.POINTER(size), ctypes.POINTER(size)], None),
        "ggml_backend_dev_backend_reg": ([vp], vp),
        "ggml_backend_load_all_from_path": ([text], None),
        "ggml_version": ([], text),
        "ggml_commit": ([], text),
        "ggml_backend_reg_by_name": ([text], vp),
        "ggml_backend_register": ([vp], None),
    }
    for name, (argtypes, restype) in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    if lib.ggml_backend_reg_count() == 0:  # a GGML_BACKEND_DL build: backends are separate libraries
        lib.ggml_backend_load_all_from_path(str(library_dir()).encode())
    return lib


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", errors="replace")


def _features(lib: Any, reg: int) -> dict[str, str]:
    address = lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_get_features")
    if not address:
        return {}
    get = ctypes.CFUNCTYPE(ctypes.POINTER(_Feature), ctypes.c_void_p)(address)
    array = get(reg)
    found: dict[str, str] = {}
    for i in range(256):  # NULL-terminated; the bound keeps a broken backend from walking off forever
        if not array or not array[i].name:
            break
        found[_text(array[i].name)] = _text(array[i].value)
    return found


def list_backends() -> list[Backend]:
    """Every backend compiled in (CPU, CUDA, Metal, Vulkan, RPC, BLAS, ...), even one with no device."""
    lib = ggml()
    regs = (lib.ggml_backend_reg_get(i) for i in range(lib.ggml_backend_reg_count()))
    return [
        Backend(_text(lib.ggml_backend_reg_name(r)), lib.ggml_backend_reg_dev_count(r), _features(lib, r)) for r in regs
    ]


def list_devices() -> list[Device]:
    """Every device the backends see, with its memory now. ggml reports the CPU's free memory as its total
    on Linux and macOS ("assume all of it is free"), so the CPU device's free figure is psutil's available."""
    lib = ggml()
    found = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        kind = DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev), "UNKNOWN")
        free_bytes = free.value
        if kind == "CPU" and sys.platform != "win32":
            free_bytes = min(psutil.virtual_memory().available, total.value or free_bytes)
        found.append(
            Device(
                name=_text(lib.ggml_backend_dev_name(dev)),
                description=_text(lib.ggml_backend_dev_description(dev)),
                kind=kind,
                backend=_text(lib.ggml_backend_reg_name(lib.ggml_backend_dev_backend_reg(dev))),
                total_bytes=total.value,
                free_bytes=free_bytes,
            )
        )
    return found


def ggml_version() -> tuple[str, str]:
    """(version, commit) of the ggml compiled into llama-cpp-python, e.g. ("0.25.3", "0c1e570")."""
    lib = ggml()
    return _text(lib.ggml_version()), _text(lib.ggml_commit())


def system_info() -> str:
    import llama_cpp

    return _text(llama_cpp.llama_print_system_info()).strip()


def cpu_features(info: str) -> list[str]:
    """The CPU features switched on in llama_print_system_info()'s "CPU : SSE3 = 1 | AVX2 = 1 | ..." part."""
    found: list[str] = []
    backend = ""
    for item in info.split("|"):
        if " : " in item:  # "CPU : SSE3 = 1" starts the CPU backend's part
            backend, item = (part.strip() for part in item.split(" : ", 1))
        name, eq, value = item.partition("=")
        if backend == "CPU" and eq and value.strip() not in ("", "0"):
            found.append(name.strip())
    return found


# -- loading with GPU layers -----------------------------------------------------------------------------
# How many layers fit is core/fit.py's estimate (layers_for_vram); what a load actually did is read here.


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def auto_gpu_layers(
    header: GGUFHeader, options: LoadOptions, devices: Sequence[Device], *, total_weights: int | None = None
) -> tuple[int, str]:
    """n_gpu_layers for "auto": as many layers as the GPUs' free memory holds with the KV cache at
    options.n_ctx and the chosen cache types (fit.layers_for_vram), and one sentence saying so.
    Several GPUs are taken as one pool (llama.cpp splits the layers by free memory), each keeping its reserve."""
    from llamadesk.core import fit

    gpus = [d for d in devices if d.can_offload]
    n_all = (header.n_layers or 0) + 1
    if not gpus:
        return 0, "GPU layers are on auto and no GPU device was found, so all layers run on the CPU."
    free = sum(d.free_bytes for d in gpus)
    if total_weights is None:
        total_weights = split_weights(header, options.path)
    shape = fit.ModelShape.from_header(header, total_weights=total_weights)
    n = fit.layers_for_vram(
        shape, options.n_ctx, free, type_k=options.type_k, type_v=options.type_v,
        flash_attn=options.flash_attn is True, reserve=fit.VRAM_RESERVE * len(gpus),
    )  # fmt: skip
    where = f"{_gib(free)} free on {', '.join(d.name for d in gpus)}"
    if n == 0:
        return 0, (
            f"GPU layers are on auto and the model does not fit in GPU memory ({where}) with a "
            f"{options.n_ctx}-token context, so all layers run on the CPU."
        )
    if n >= n_all:
        return n_all, f"GPU layers are on auto: all {n_all} layers fit in GPU memory ({where})."
    return n, (
        f"GPU layers are on auto: {n} of {n_all} layers fit in GPU memory ({where}) with a "
        f"{options.n_ctx}-token context; the rest run on the CPU."
    )


def split_weights(header: GGUFHeader, path: str | os.PathLike[str]) -> int | None:
    """The weights of every part of a split model (`-00001-of-0000N.gguf`) whose first part is `path` (read
    into `header`): the tensors listed in each part's header; None for a single file. The first part's header
    alone lists only its own tensors, so a fit from it alone would offload far too many layers."""
    from llamadesk.core.gguf_header import read_header
    from llamadesk.core.library import split_parts

    first = Path(path)
    parts = split_parts(first)
    if len(parts) < 2:
        return None
    total = sum(t.n_bytes for t in header.tensors)
    for part in parts:
        if part == first:
            continue
        try:
            total += sum(t.n_bytes for t in read_header(part).tensors)
        except (LlamaDeskError, OSError):  # an unreadable part: its size is the best guess (the load will say)
            with contextlib.suppress(OSError):
                total += part.stat().st_size
    return total


def fallback_layers(n_gpu_layers: int) -> list[int]:
    """The layer counts to try, in order, when a load runs out of GPU memory: halving, then 0."""
    steps = []
    n = n_gpu_layers
    while n > 0:
        steps.append(n)
        n //= 2
    return [*steps, 0]


# -- where a load put the model ---------------------------------------------------------------------------

_MEMORY_WORDS = ("out of memory", "failed to allocate", "unable to allocate", "cudamalloc", "insufficient memory")


def is_memory_failure(reason: str | None) -> bool:
    """Whether llama.cpp's reason for a failed load is a device running out of memory."""
    return any(word in (reason or "").lower() for word in _MEMORY_WORDS)


@dataclass
class Placement:
    """What llama.cpp's load log says: the device of each layer, the model buffers (MiB), flash attention.
    Its "offloaded N/N layers to GPU" line is not used: a build with the RPC backend prints it with no GPU."""

    layer_devices: dict[int, str] = field(default_factory=dict)
    buffers: dict[str, float] = field(default_factory=dict)
    flash_attn: str = "auto"
    descriptions: dict[str, str] = field(default_factory=dict)  # "RPC0" → "192.168.1.10:50052" ("using device")

    @classmethod
    def parse(cls, lines: Sequence[str]) -> Placement:
        found = cls()
        for line in lines:
            if not ("assigned to device" in line or "buffer size" in line or "lash" in line or "using device" in line):
                continue
            if m := re.search(r"using device (\S+) \(([^)]*)\)", line):
                found.descriptions[m.group(1)] = m.group(2)
            elif m := re.search(r"layer\s+(\d+) assigned to device ([^,\s]+)", line):
                found.layer_devices[int(m.group(1))] = m.group(2)
            elif m := re.search(r"(\S+) model buffer size =\s*([\d.]+) MiB", line):
                found.buffers[m.group(1)] = found.buffers.get(m.group(1), 0.0) + float(m.group(2))
            elif m := re.search(r"flash_attn\s+= (enabled|disabled)|Flash Attention (enabled|not supported)", line):
                found.flash_attn = "on" if "enabled" in (m.group(1), m.group(2)) else "off"
        return found

    @property
    def gpu_devices(self) -> list[str]:
        return sorted({d for d in self.layer_devices.values() if not d.startswith("CPU")})

    @property
    def gpu_layers(self) -> int:
        return sum(1 for d in self.layer_devices.values() if not d.startswith("CPU"))

    def layer_split(self) -> dict[str, int]:
        """Layers per device in load order, RPC devices named by their host ("192.168.1.10:50052": 12, "CPU": 1);
        the output layer counts as one (llama.cpp's n_layers + 1)."""
        split: dict[str, int] = {}
        for _, device in sorted(self.layer_devices.items()):
            name = self.descriptions.get(device, device) if device.startswith("RPC") else device
            split[name] = split.get(name, 0) + 1
        return split


def offload_note(
    asked: int, placed: int, n_all: int, devices: Sequence[str], *, out_of_memory: bool = False, auto_note: str = ""
) -> str:
    """One sentence on where the layers went; empty when no GPU layers were asked for. out_of_memory: the
    load was retried with fewer layers because the GPU ran out of memory. auto_note (from auto_gpu_layers)
    is the sentence when "auto" chose `asked` and the load placed them."""
    if asked == 0:
        return auto_note
    if not devices:
        names = ", ".join(b.name for b in list_backends())
        return f"No GPU device was found (backends in this build: {names}), so all layers run on the CPU."
    where = ", ".join(devices)
    wanted = n_all if asked < 0 else min(asked, n_all)
    if placed >= wanted:
        return auto_note or f"{placed} of {n_all} layers run on {where}."
    if out_of_memory and placed == 0:
        return f"The model did not fit in GPU memory ({where}), so all layers run on the CPU."
    if out_of_memory:
        return f"{wanted} layers did not fit in GPU memory, so {placed} of {n_all} run on {where}, the rest on the CPU."
    return f"llama.cpp put {placed} of {n_all} layers on {where}, not the {wanted} asked for; the rest run on the CPU."

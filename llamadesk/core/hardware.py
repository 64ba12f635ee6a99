"""What this machine has: CPU, RAM, and the accelerator devices llama.cpp's backends can see."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    kind: str  # "CPU", "GPU", "IGPU", "ACCEL" or "RPC" — ggml's device types
    backend: str  # "CPU", "CUDA", "Metal", "Vulkan", "RPC", ...
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class HardwareSnapshot:
    cpu_physical: int
    cpu_logical: int
    ram_total: int
    ram_available: int
    devices: list[Device] = field(default_factory=list)

    @property
    def gpus(self) -> list[Device]:
        return [d for d in self.devices if d.kind in ("GPU", "IGPU")]

    @property
    def vram_free(self) -> int:
        return sum(d.free_bytes for d in self.gpus)


def snapshot(*, with_devices: bool = True) -> HardwareSnapshot:
    """Reads the figures now (they change as other programs run). Devices need llama_cpp loaded."""
    mem = psutil.virtual_memory()
    return HardwareSnapshot(
        cpu_physical=psutil.cpu_count(logical=False) or os.cpu_count() or 1,
        cpu_logical=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        ram_total=mem.total,
        ram_available=mem.available,
        devices=[],
    )

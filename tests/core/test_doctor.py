"""The doctor report on this machine: right about backends, devices, GPU offload, memory and paths."""

from __future__ import annotations

import json
from pathlib import Path

import llama_cpp
import psutil
import pytest

from llamadesk import __version__
from llamadesk.core import doctor


@pytest.fixture
def report(llamadesk_home: Path) -> dict:
    return doctor.collect()


def has_gpu_backend(report: dict) -> bool:
    return bool(report["gpu_offload"]["gpu_backends_compiled"])


def test_versions_and_build(report: dict) -> None:
    assert report["llamadesk"]["version"] == __version__
    assert report["llama_cpp_python"]["version"] == llama_cpp.__version__
    assert report["llama_cpp"]["ggml_version"] and report["llama_cpp"]["commit"]
    assert "CPU :" in report["llama_cpp"]["system_info"]
    assert report["python"]["version"].count(".") == 2


def test_backends_and_devices(report: dict) -> None:
    names = [b["name"] for b in report["backends"]]
    assert "CPU" in names
    cpu = [d for d in report["devices"] if d["kind"] == "CPU"]
    assert len(cpu) == 1 and cpu[0]["total_bytes"] > 0
    assert report["cpu"]["physical_cores"] >= 1


def test_no_gpu_is_reported_honestly(report: dict) -> None:
    if has_gpu_backend(report):
        pytest.skip("this build has a GPU backend")
    gpu = report["gpu_offload"]
    assert gpu["possible"] is False and gpu["devices"] == [] and gpu["vram_free_bytes"] == 0
    assert gpu["summary"].startswith("no GPU device")
    # llama.cpp's own flag is true on a CPU build with RPC: the report must not take it as the answer
    if gpu["rpc_compiled"]:
        assert gpu["llama_supports_gpu_offload"] is True
    text = doctor.format_text(report)
    assert "GPU offload        no GPU device" in text


def test_ram_is_plausible(report: dict) -> None:
    mem = psutil.virtual_memory()
    assert report["ram"]["total_bytes"] == mem.total
    assert 0 < report["ram"]["available_bytes"] <= mem.total
    assert abs(report["ram"]["available_bytes"] - mem.available) < max(1 << 30, mem.total // 10)


def test_paths_follow_llamadesk_home(report: dict, llamadesk_home: Path) -> None:
    home = str(llamadesk_home.resolve())
    for key in ("data", "config", "cache", "models", "logs", "history_db", "settings_file"):
        assert report["paths"][key].startswith(home), key
    assert report["paths"]["models_disk_free_bytes"] > 0
    assert not llamadesk_home.exists(), "the report must not create folders"


def test_report_is_json_and_text(report: dict) -> None:
    assert json.loads(json.dumps(report)) == report
    text = doctor.format_text(report)
    for label in ("LlamaDesk", "Python", "llama-cpp-python", "llama.cpp (ggml)", "Backends", "RAM", "Devices",
                  "GPU offload", "Paths"):  # fmt: skip
        assert label in text

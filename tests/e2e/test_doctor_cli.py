"""`llamadesk doctor` as a user runs it: a real subprocess, text and --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llamadesk import cli
from llamadesk.commands import doctor as doctor_command


def doctor(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "llamadesk", "doctor", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_doctor_json(llamadesk_home: Path) -> None:
    result = doctor("--json", home=llamadesk_home)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # nothing but the JSON on stdout
    assert "CPU" in [b["name"] for b in report["backends"]]
    assert any(d["kind"] == "CPU" for d in report["devices"])
    assert report["ram"]["total_bytes"] > report["ram"]["available_bytes"] > 0
    assert report["paths"]["models"] == str((llamadesk_home / "models").resolve())
    if not report["gpu_offload"]["gpu_backends_compiled"]:
        assert report["gpu_offload"]["possible"] is False
        assert report["gpu_offload"]["summary"].startswith("no GPU device")


def test_doctor_text(llamadesk_home: Path) -> None:
    result = doctor(home=llamadesk_home)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "llama-cpp-python" in out and "Backends" in out and "CPU" in out and "GPU offload" in out
    assert str(llamadesk_home.resolve()) in out


def test_doctor_is_registered() -> None:
    assert cli.COMMANDS["doctor"] is doctor_command

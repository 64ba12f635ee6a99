"""Models on disk: the GGUF files in the models folder, with where each came from and its license."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".llamadesk.json"  # next to the model: {"source": ..., "license": ..., "display_name": ...}


@dataclass(frozen=True)
class LocalModel:
    path: Path
    name: str
    size_bytes: int
    source: str  # where the file came from, in words (a URL or "imported from ...")
    license: str
    sha256: str | None

    @property
    def description(self) -> str:
        parts = [self.name, f"{self.size_bytes / 1e6:.0f} MB"]
        if self.license:
            parts.append(self.license)
        return " · ".join(parts)


def read_sidecar(model_path: Path) -> dict[str, Any]:
    sidecar = model_path.with_name(model_path.name + SIDECAR_SUFFIX)
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("Ignoring unreadable model notes %s: %s", sidecar, exc)
        return {}
    return data if isinstance(data, dict) else {}


def write_sidecar(model_path: Path, data: dict[str, Any]) -> None:
    sidecar = model_path.with_name(model_path.name + SIDECAR_SUFFIX)
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, sidecar)


def describe(path: Path) -> LocalModel:
    notes = read_sidecar(path)
    return LocalModel(
        path=path,
        name=str(notes.get("display_name") or path.stem),
        size_bytes=path.stat().st_size,
        source=str(notes.get("source") or "added by you"),
        license=str(notes.get("license") or ""),
        sha256=notes.get("sha256"),
    )


def list_local_models(models_dir: Path) -> list[LocalModel]:
    """Every .gguf under the models folder, sorted by name; unreadable entries are skipped with a log line."""
    if not models_dir.is_dir():
        return []
    found: list[LocalModel] = []
    for path in sorted(models_dir.rglob("*.gguf")):
        try:
            if path.is_file():
                found.append(describe(path))
        except OSError as exc:
            log.warning("Skipping %s: %s", path, exc)
    return found

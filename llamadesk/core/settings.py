"""The user's application settings, kept as JSON in the config folder and written atomically."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError

log = logging.getLogger(__name__)


@dataclass
class AppSettings:
    """What LlamaDesk remembers between runs. Sampling is a SamplingParams dict (validated where used)."""

    last_model: str | None = None
    n_ctx: int = 4096
    n_threads: int | None = None
    n_gpu_layers: int = 0
    chat_template: str | None = None  # None: the GGUF's own template, or one chosen by architecture
    system_prompt: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_settings(path: Path) -> AppSettings:
    """Reads settings; a missing or unreadable file gives the defaults (and a log line), never an error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AppSettings()
    except (OSError, ValueError) as exc:
        log.warning("Ignoring unreadable settings file %s: %s", path, exc)
        return AppSettings()
    if not isinstance(data, dict):
        return AppSettings()
    names = {f.name for f in dataclasses.fields(AppSettings)}
    try:
        return AppSettings(**{k: v for k, v in data.items() if k in names})
    except TypeError:
        return AppSettings()


def save_settings(path: Path, settings: AppSettings) -> None:
    """Writes through a temporary file and a rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(settings.to_dict(), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise LlamaDeskError(f"Settings could not be saved to {path}: {exc.strerror or exc}.") from exc

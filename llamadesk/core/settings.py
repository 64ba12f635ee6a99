"""The user's application settings, kept as JSON in the config folder and written atomically."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.core.engines.api import GPU_LAYERS_AUTO, KV_CACHE_TYPES
from llamadesk.core.errors import LlamaDeskError

log = logging.getLogger(__name__)


@dataclass
class AppSettings:
    """What LlamaDesk remembers between runs. Sampling is a SamplingParams dict (validated where used)."""

    last_model: str | None = None
    n_ctx: int = 4096
    n_threads: int | None = None  # None: engine.default_threads() (physical cores, one left for the GUI)
    n_gpu_layers: int = GPU_LAYERS_AUTO  # -2 auto, -1 all, 0 none (CPU only), N: that many
    chat_template: str | None = None  # None: the GGUF's own template, or one chosen by architecture
    system_prompt: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    flash_attn: str = "auto"  # "auto" (llama.cpp decides per device), "on" or "off"
    type_k: str = "f16"
    type_v: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    prompt_cache_mb: int = 4096  # saved prompt states on disk (core/engines/prompt_cache.py); 0 turns them off
    prompt_lookup: bool = False  # speculative decoding by prompt lookup (measured in bench/bench_cache.py)
    draft_model: str = ""  # a GGUF of the loaded model's family that drafts tokens (engines/draft.py); "": none

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_kwargs(self) -> dict[str, Any]:
        """The advanced model settings as LoadOptions keyword arguments."""
        return {
            "n_threads": self.n_threads,
            "n_gpu_layers": self.n_gpu_layers,
            "flash_attn": FLASH_ATTN[self.flash_attn],
            "type_k": self.type_k,
            "type_v": self.type_v,
            "use_mmap": self.use_mmap,
            "use_mlock": self.use_mlock,
            "prompt_cache_mb": self.prompt_cache_mb,
            "prompt_lookup": self.prompt_lookup,
            "draft_model": Path(self.draft_model) if self.draft_model else None,
        }

    def _sanitized(self) -> AppSettings:
        """The stored values a hand-edited or older file may get wrong are put back to their defaults."""
        default = AppSettings()
        checks: dict[str, Any] = {
            "n_ctx": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
            "n_threads": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
            "n_gpu_layers": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= GPU_LAYERS_AUTO,
            "flash_attn": lambda v: v in FLASH_ATTN,
            "type_k": lambda v: v in KV_CACHE_TYPES,
            "type_v": lambda v: v in KV_CACHE_TYPES,
            "use_mmap": lambda v: isinstance(v, bool),
            "use_mlock": lambda v: isinstance(v, bool),
            "prompt_cache_mb": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "prompt_lookup": lambda v: isinstance(v, bool),
            "draft_model": lambda v: isinstance(v, str),
        }
        bad = {name: getattr(default, name) for name, ok in checks.items() if not ok(getattr(self, name))}
        if bad:
            log.warning("Ignoring invalid stored settings: %s", ", ".join(sorted(bad)))
        return dataclasses.replace(self, **bad)


FLASH_ATTN: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


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
        return AppSettings(**{k: v for k, v in data.items() if k in names})._sanitized()
    except TypeError:
        return AppSettings()


def save_settings(path: Path, settings: AppSettings) -> None:
    """Writes through a temporary file and a rename, so a crash never leaves half a file."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(settings.to_dict(), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:  # a full disk leaves no half-written temporary file behind
            with contextlib.suppress(OSError):
                Path(tmp).unlink(missing_ok=True)
        raise LlamaDeskError(f"Settings could not be saved to {path}: {exc.strerror or exc}.") from exc

"""Models shipped inside an installed LlamaDesk: read-only, listed after the user's own models."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from llamadesk.paths import resource_path

if TYPE_CHECKING:
    from llamadesk.core.library import LocalModel

# Overrides where bundled models are looked for (tests, or a distribution that keeps them elsewhere).
BUNDLED_MODELS_ENV = "LLAMADESK_BUNDLED_MODELS"
# Inside the frozen app the models sit next to the other assets: <bundle>/_internal/assets/models/.
BUNDLED_MODELS_FOLDER = "models"


def bundled_models_dir() -> Path | None:
    """The read-only folder of models that came with the app, or None (a source checkout has none)."""
    override = os.environ.get(BUNDLED_MODELS_ENV)
    if override:
        folder = Path(override).expanduser()
    elif getattr(sys, "frozen", False):
        folder = resource_path(BUNDLED_MODELS_FOLDER)
    else:
        return None
    return folder if folder.is_dir() else None


def list_models(models_dir: Path) -> list[LocalModel]:
    """The user's models, then the bundled ones whose file name is not already in the user's folder.

    Bundled models are marked `external` (used in place): LlamaDesk never deletes them, they live in the
    read-only install folder and go away with the app.
    """
    from llamadesk.core.library import list_local_models  # library may call bundled_models_dir() itself

    own = list_local_models(models_dir)
    bundled = bundled_models_dir()
    if bundled is None or _same_folder(bundled, models_dir):
        return own
    names = {m.path.name for m in own}
    extra = [
        dataclasses.replace(m, external=True)
        for m in list_local_models(bundled, include_external=False)
        if m.path.name not in names
    ]
    return own + extra


def is_bundled(path: Path) -> bool:
    """True for a file inside the bundled models folder (never deleted, never written)."""
    bundled = bundled_models_dir()
    if bundled is None:
        return False
    try:
        return path.resolve().is_relative_to(bundled.resolve())
    except OSError:
        return False


def bundled_model(file_name: str) -> Path | None:
    """A bundled model by file name (e.g. the starter model's), or None when the app ships none."""
    bundled = bundled_models_dir()
    if bundled is None:
        return None
    path = bundled / file_name
    return path if path.is_file() else None


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False

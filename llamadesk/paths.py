"""Every folder LlamaDesk reads or writes, from platformdirs; LLAMADESK_HOME moves them all under one folder."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from llamadesk.core.errors import StorageError, storage_sentence

APP_NAME = "LlamaDesk"
APP_ID = "io.github.llamadesk.LlamaDesk"
HOME_ENV = "LLAMADESK_HOME"


@dataclass(frozen=True)
class Paths:
    """The user's folders. Created on first use by `ensure()`."""

    data: Path
    config: Path
    cache: Path
    models: Path
    logs: Path

    @property
    def history_db(self) -> Path:
        return self.data / "history.sqlite3"

    @property
    def settings_file(self) -> Path:
        return self.config / "settings.json"

    def ensure(self) -> Paths:
        """Creates the folders; a full disk or a folder that cannot be made is a StorageError (one sentence)."""
        for folder in (self.data, self.config, self.cache, self.models, self.logs):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(storage_sentence(folder, exc)) from exc
        return self


def get_paths(home: str | os.PathLike[str] | None = None) -> Paths:
    """The folders for this process: `home`, else $LLAMADESK_HOME, else the platform's user folders."""
    base = home if home is not None else os.environ.get(HOME_ENV)
    if base:
        root = Path(base).expanduser().resolve()
        return Paths(
            data=root / "data",
            config=root / "config",
            cache=root / "cache",
            models=root / "models",
            logs=root / "logs",
        )
    data = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return Paths(
        data=data,
        config=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        cache=Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
        models=data / "models",
        logs=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    )


def resource_path(*parts: str) -> Path:
    """A file under assets/, wherever it sits: a source checkout, or a PyInstaller bundle."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        return Path(frozen_root, "assets", *parts)
    return Path(__file__).resolve().parent.parent.joinpath("assets", *parts)

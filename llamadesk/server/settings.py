"""The app's server settings: off by default, loopback, in <config>/server.json; the API key in the OS keyring."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError
from llamadesk.paths import get_paths
from llamadesk.server.runner import DEFAULT_HOST, DEFAULT_PORT, ServerConfig

log = logging.getLogger(__name__)

FILE_NAME = "server.json"
KEYRING_SERVICE, KEYRING_KEY = "LlamaDesk", "server-api-key"


class ServerSettingsError(LlamaDeskError):
    """The server settings could not be saved; one sentence."""


@dataclass(frozen=True)
class ServerSettings:
    enabled: bool = False  # off until the user turns it on
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    record_history: bool = False  # keep requests in the history under the "server" label

    def config(self, api_key: str | None) -> ServerConfig:
        return ServerConfig(host=self.host, port=self.port, api_key=api_key)


def settings_path() -> Path:
    return get_paths().config / FILE_NAME


def load_settings(path: Path | None = None) -> ServerSettings:
    """The stored settings; a missing or broken file gives the defaults (server off), a broken one is logged."""
    path = path or settings_path()
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ServerSettings()
    except (OSError, ValueError) as exc:
        log.warning("Ignoring the server settings %s: %s", path, exc)
        return ServerSettings()
    if not isinstance(data, dict):
        return ServerSettings()
    default = ServerSettings()
    values: dict[str, Any] = {}
    for f in fields(ServerSettings):
        fallback = getattr(default, f.name)
        value = data.get(f.name, fallback)
        values[f.name] = value if type(value) is type(fallback) else fallback  # exact: True is not a port
    if not 0 <= values["port"] <= 65535:
        values["port"] = DEFAULT_PORT
    return ServerSettings(**values)


def save_settings(settings: ServerSettings, path: Path | None = None) -> None:
    path = path or settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".server.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(asdict(settings), f, indent=2)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ServerSettingsError(f"The server settings could not be saved in {path.parent}: {exc.strerror}.") from exc


def new_api_key() -> str:
    return "ld-" + secrets.token_urlsafe(24)


def get_api_key() -> str | None:
    """The stored key, or None (none stored, or no usable keyring: logged)."""
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, KEYRING_KEY) or None
    except Exception as exc:  # any keyring backend failure reads as "no key"
        log.warning("The system keyring could not be read (%s); no server API key.", type(exc).__name__)
        return None


def set_api_key(key: str | None) -> None:
    """Stores the key in the OS keyring (None: forget it); ServerSettingsError with a sentence if it refuses."""
    try:
        import keyring

        if key:
            keyring.set_password(KEYRING_SERVICE, KEYRING_KEY, key)
        elif keyring.get_password(KEYRING_SERVICE, KEYRING_KEY) is not None:
            keyring.delete_password(KEYRING_SERVICE, KEYRING_KEY)
    except Exception as exc:
        raise ServerSettingsError(
            f"The system keyring refused to store the server's API key ({type(exc).__name__}); "
            "the key works until LlamaDesk quits."
        ) from exc

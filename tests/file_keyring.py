"""Keyring backends for tests. FileKeyring, for CLI tests: the subprocess's "OS keyring" is a JSON file outside
LLAMADESK_HOME (PYTHON_KEYRING_BACKEND=file_keyring.FileKeyring, TEST_KEYRING_FILE=path), so a test can see where a
key went. MemoryKeyring, for in-process tests (the `memory_keyring` fixture): a key never reaches a disk or the
machine's real keyring."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    priority = 1

    @property
    def path(self) -> Path:
        return Path(os.environ["TEST_KEYRING_FILE"])

    def _read(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._read().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        self.path.write_text(json.dumps({**self._read(), f"{service}/{username}": password}))

    def delete_password(self, service: str, username: str) -> None:
        data = self._read()
        del data[f"{service}/{username}"]
        self.path.write_text(json.dumps(data))


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring standing in for the desktop's; `store` maps (service, user) to the secret."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.store[(service, username)]

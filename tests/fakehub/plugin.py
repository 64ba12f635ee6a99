"""Pytest fixtures around FakeHub: import them into a test module (`from fakehub.plugin import fake_hub, ...`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from fakehub.server import FakeHub

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection from this process to a non-loopback address fails the test."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            raise AssertionError(f"network traffic beyond loopback: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, loopback_only: None) -> Iterator[FakeHub]:
    """A running FakeHub; HF_ENDPOINT points at it, proxies are bypassed for loopback, no stored HF token is used."""
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield hub


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[Any]]:
    """A loopback Hub address where nothing listens (HF_ENDPOINT points there), and the list of connection attempts
    made to it; a connection beyond loopback fails the test."""
    with FakeHub() as dead:
        url = dead.url
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def counted(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == port:
            attempts.append(address)
        elif isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise AssertionError(f"network traffic beyond loopback: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counted)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return url, attempts

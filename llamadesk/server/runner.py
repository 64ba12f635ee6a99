"""Runs the server app with uvicorn in a thread of its own: start (bind, or one sentence why not) and stop."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llamadesk.core.errors import LlamaDeskError
from llamadesk.server.backend import Backend

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765
START_TIMEOUT_S = 10.0


class ServerError(LlamaDeskError):
    """The server cannot start (port in use, no key for an exposed address); the text is one sentence."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Where to listen. Loopback by default; any other address needs an API key (checked by `check`)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port (tests)
    api_key: str | None = None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ServerError(f"The server port must be between 1 and 65535, not {self.port}.")
        if not self.loopback and not self.api_key:
            raise ServerError(
                f"Listening on {self.host} lets other machines in; set an API key first "
                "(clients then send it as 'Authorization: Bearer KEY')."
            )


class ServerRunner:
    """One uvicorn server in a daemon thread. The socket is bound here first, so a port in use is a sentence."""

    def __init__(self, backend: Backend, config: ServerConfig) -> None:
        self.backend, self.config = backend, config
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = config.port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def url(self) -> str:
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/v1"

    def _bind(self) -> socket.socket:
        host, port = self.config.host, self.config.port
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise ServerError(f"The server cannot listen on {host}: {exc.strerror or exc}.") from exc
        try:
            if hasattr(socket, "SO_REUSEADDR") and socket.SO_REUSEADDR and not hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            if isinstance(exc, PermissionError):
                raise ServerError(f"Port {port} on {host} needs more privileges; choose a port above 1024.") from exc
            if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise ServerError(f"Port {port} on {host} is in use by another program; choose another port.") from exc
            raise ServerError(f"The server cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc
        self.port = sock.getsockname()[1]
        return sock

    def start(self) -> str:
        """Binds and starts serving; returns the base URL (…/v1). ServerError (a sentence) when it cannot."""
        import uvicorn

        if self.running:
            return self.url
        self.config.check()
        sock = self._bind()
        from llamadesk.server.app import build_app  # starlette and uvicorn load only when a server starts

        app = build_app(self.backend, api_key=self.config.api_key, loopback_only=self.config.loopback)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", http="h11", ws="none", loop="asyncio",
            timeout_graceful_shutdown=2, server_header=False,
        )  # fmt: skip
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="llamadesk-server",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(0.01)  # uvicorn has no started event; its flag is set once it accepts connections
        if not server.started:
            self.stop()
            sock.close()
            raise ServerError(f"The server did not start on {self.config.host}:{self.port}; see the log.")
        log.info("Serving the OpenAI-compatible API at %s", self.url)
        return self.url

    def stop(self) -> None:
        """Stops accepting, lets open requests end (2 s at most), and waits for the thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
        with contextlib.suppress(Exception):
            for s in getattr(server, "servers", []):
                s.close()
        self._server, self._thread = None, None
        log.info("The server stopped")

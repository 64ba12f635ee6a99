"""Stopping a blocking HTTP request from another thread: shut its socket down.

httpx has no cancel for a request blocked in recv() (waiting for response headers from a server that evaluates a
long prompt, or for the next body byte from a stalled one), and closing the socket does not wake a blocked recv() on
Linux; shutdown() does. `SocketWatch` learns a client's sockets from httpcore's `trace` request extension;
`StopWatcher` is the thread that shuts them down as soon as the job's stop condition holds (the downloader's
Pause/Cancel, the remote engine's Stop).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType


def shutdown_stream(stream: object) -> None:
    """Shuts down the socket under an httpcore network stream, from any thread: a recv() blocked on it returns."""
    get_extra_info = getattr(stream, "get_extra_info", None)
    sock = get_extra_info("socket") if get_extra_info is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain one: a TLS socket keeps its state


class SocketWatch:
    """The sockets a client opened for one job, so that another thread can shut them down: a request still
    waiting for its response headers (or a body read) then fails at once instead of after its timeout. It learns
    them from httpcore's `trace` request extension when each connection is made; pass it to every request of the
    client (`open_stream(..., watch=)`), so that a pooled connection was seen when it was made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: list[object] = []
        self.stopped = False

    def trace(self, name: str, info: dict[str, object]) -> None:
        if name not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        with self._lock:
            self._streams.append(stream)
            stopped = self.stopped
        if stopped:  # connected after stop(): fail this request too
            shutdown_stream(stream)

    def stop(self) -> None:
        """Shuts every socket seen (and any made later) down; the requests on them raise a TransportError."""
        with self._lock:
            self.stopped = True
            streams = list(self._streams)
        for stream in streams:
            shutdown_stream(stream)


class StopWatcher(threading.Thread):
    """`with StopWatcher(stop_requested) as watch:` — pass `watch.trace` to every request of the job (as
    `extensions={"trace": watch.trace}`, or `remote.open_stream(..., watch=watch)`); when `stop_requested()`
    turns true, every socket of the job is shut down and the blocked call raises (or reads the end) at once."""

    def __init__(self, stop_requested: Callable[[], bool], *, name: str, poll: float = 0.1) -> None:
        super().__init__(name=name, daemon=True)
        self._stop_requested, self._poll = stop_requested, poll
        self.watch = SocketWatch()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self._poll):
            if self._stop_requested():
                self.watch.stop()
                return

    def __enter__(self) -> SocketWatch:
        self.start()
        return self.watch

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self._done.set()
        self.join()

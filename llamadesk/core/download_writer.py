"""The disk side of a download: a thread that writes and hashes what the socket thread received, and wakes a
read blocked on a silent server when Pause or Cancel is pressed; the sha256 of a .part file as it grows; the
watchers that make Pause and Cancel answer while a request waits for its headers or for the Hub's HEAD."""

from __future__ import annotations

import concurrent.futures
import hashlib
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

import httpx2

from llamadesk.core.socket_stop import shutdown_stream

T = TypeVar("T")

MiB = 1 << 20
QUEUE_BLOCKS = 4  # blocks in flight between the socket and the disk: bounds the memory a slow disk can pin
STOP_POLL = 0.1  # seconds between the writer's looks at Pause/Cancel while no data arrives


class Stopped(Exception):
    """Pause or Cancel was pressed."""


class BlockWriter(threading.Thread):
    """Writes and hashes the blocks the socket thread hands over, so that reading the network, hashing and
    writing overlap (hashlib and file writes release the GIL). While no data comes it watches Pause and Cancel,
    and shuts the socket down when one is set: a read blocked on a silent server returns at once instead of
    after the stall timeout."""

    def __init__(
        self,
        f: IO[bytes],
        digest: Hasher,
        written: int,
        cancel: threading.Event,
        pause: threading.Event,
        response: httpx2.Response,
    ) -> None:
        super().__init__(name="download-writer", daemon=True)
        self.f, self.digest, self.written = f, digest, written
        self.cancel, self.pause, self.response = cancel, pause, response
        self.blocks: queue.Queue[bytes | None] = queue.Queue(QUEUE_BLOCKS)
        self.error: OSError | None = None
        self._interrupted = False

    def run(self) -> None:
        while True:
            try:
                block = self.blocks.get(timeout=STOP_POLL)
            except queue.Empty:
                if self.cancel.is_set() or self.pause.is_set():
                    self.interrupt()
                continue
            if block is None:
                return
            if self.error is None:
                try:
                    self._write(block)
                except OSError as exc:
                    self.error = exc
                    self.interrupt()  # the reader stops at once; the sentence comes from finish()

    def _write(self, block: bytes) -> None:
        view = memoryview(block)
        while view:  # a raw file may write less than asked
            n = self.f.write(view) or 0
            self.digest.update(view[:n])
            self.written += n
            view = view[n:]

    def interrupt(self) -> None:
        """Shuts the response's socket down (from this thread): the reader's blocked recv() returns."""
        if self._interrupted:
            return
        self._interrupted = True
        shutdown_stream(self.response.extensions.get("network_stream"))

    def put(self, block: bytes) -> None:
        """Hands a block over, waiting while QUEUE_BLOCKS are in flight; raises the writer's error."""
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.blocks.put(block, timeout=STOP_POLL)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Waits until every block handed over is on disk; raises the writer's error."""
        self.blocks.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def stop_requested(cancel: threading.Event, pause: threading.Event) -> bool:
    return cancel.is_set() or pause.is_set()


def call_stoppable(call: Callable[[], T], cancel: threading.Event, pause: threading.Event) -> T:
    """The result of a blocking call whose socket we do not hold (huggingface_hub's HEAD), made on a helper
    thread; raises Stopped as soon as Pause or Cancel is pressed. An abandoned call ends at its own timeout and
    its result is dropped."""
    if stop_requested(cancel, pause):
        raise Stopped
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def work() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to the waiting thread, which raises it
            future.set_exception(exc)

    threading.Thread(target=work, name="download-metadata", daemon=True).start()
    while True:
        if stop_requested(cancel, pause):
            raise Stopped
        try:
            return future.result(timeout=STOP_POLL)
        except TimeoutError:
            continue


class Hasher:
    """sha256 of the .part file as it grows; rebuilt from the disk when the file is cut or started again."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        self._digest.update(data)

    def reset(self) -> None:
        self._digest = hashlib.sha256()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def load(self, path: Path, cancel: threading.Event, pause: threading.Event) -> None:
        """Hashes the bytes already on disk: a resumed download reads its .part once, locally."""
        self._digest = hashlib.sha256()
        if path.is_file():
            with open(path, "rb") as f:
                while chunk := f.read(4 * MiB):
                    self._digest.update(chunk)
                    if cancel.is_set() or pause.is_set():
                        raise Stopped

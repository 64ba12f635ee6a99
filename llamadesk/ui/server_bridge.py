"""The server's backend in the GUI: requests run on the window's EngineHost, in turn with the user's own replies.

A job submitted from the server's thread crosses to the GUI thread by a queued signal, which asks the EngineHost
for a reply like the chat does (so it waits behind a reply already streaming: one engine). The worker's tokens /
finished / failed signals are connected twice: with Qt.DirectConnection, so the engine thread hands each batch
straight to the job (no detour through the GUI thread's event loop), and normally, so the GUI thread writes the
request into the history when the user asked for that. A client that goes away sets job.cancel; a timer on the GUI
thread turns that into EngineHost.stop(request).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from llamadesk.core.conversation.turn import Turn
from llamadesk.core.engines.api import Done, GenerationStats, Token
from llamadesk.core.sampling import SamplingParams
from llamadesk.server.backend import Failed, Job
from llamadesk.server.recording import ServerRecorder
from llamadesk.ui.workers import EngineHost

log = logging.getLogger(__name__)

CANCEL_CHECK_MS = 100


@dataclass
class _Running:
    job: Job
    host_cancel: threading.Event
    reply: Turn | None = None
    ended: bool = False


class ServerBridge(QObject):
    """The Backend protocol (server/backend.py) over an EngineHost. Lives in the GUI thread; `submit`, `model_id`
    and `default_params` may be called from the server's thread."""

    _submitted = Signal(object)  # Job → the GUI thread
    activityChanged = Signal(int)  # requests running or waiting (GUI thread)
    requestRecorded = Signal(int)  # a conversation id written to the history (GUI thread)

    def __init__(
        self,
        host: EngineHost,
        recorder: Callable[[], ServerRecorder | None] = lambda: None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.host = host
        self._recorder = recorder
        self._model_id: str | None = None
        self._params = SamplingParams()
        self._lock = threading.Lock()  # the engine thread reads _running while the GUI thread adds to it
        self._running: dict[int, _Running] = {}
        self._closed = False
        worker = host.worker
        direct = Qt.ConnectionType.DirectConnection
        worker.tokens.connect(self._tokens_direct, direct)
        worker.finished.connect(self._finished_direct, direct)
        worker.failed.connect(self._failed_direct, direct)
        worker.tokens.connect(self._on_tokens)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._submitted.connect(self._on_submitted)
        self._cancel_timer = QTimer(self, interval=CANCEL_CHECK_MS)
        self._cancel_timer.timeout.connect(self._check_cancels)

    # -- the Backend protocol (any thread) ----------------------------------------------------------------------
    def model_id(self) -> str | None:
        return self._model_id

    def default_params(self) -> SamplingParams:
        return self._params

    def submit(self, job: Job) -> None:
        self._submitted.emit(job)

    # -- set from the GUI thread --------------------------------------------------------------------------------
    def set_model(self, model_id: str | None) -> None:
        self._model_id = model_id

    def set_params(self, params: SamplingParams) -> None:
        self._params = params

    def pending(self) -> int:
        with self._lock:
            return sum(1 for r in self._running.values() if not r.ended)

    def reopen(self) -> None:
        """Accepts requests again after close() (the server was started again)."""
        self._closed = False

    def close(self) -> None:
        """Stops the server's requests (the user's are left alone); later submits fail at once."""
        self._closed = True
        self._cancel_timer.stop()
        with self._lock:
            running = list(self._running.items())
        for request_id, r in running:
            if not r.ended:
                self.host.stop(request_id)

    # -- GUI thread ---------------------------------------------------------------------------------------------
    @Slot(object)
    def _on_submitted(self, job: Job) -> None:
        if self._closed or self._model_id is None:
            job.emit(Failed("No model is loaded in LlamaDesk; load one, then try again."))
            return
        if job.cancel.is_set():
            job.emit(Failed("The request was cancelled before it started."))
            return
        if job.tools:  # the EngineHost's generate takes no tools yet: refused, rather than silently not offered
            job.emit(Failed("The window's server does not offer tools yet; use 'llamadesk serve' for tool calls."))
            return
        reply = None
        recorder = self._recorder()
        if recorder is not None:
            try:
                reply = recorder.begin(job.messages, job.params)
            except Exception:
                log.exception("A server request could not be written to the history")
        with self._lock:  # held until the id is known: the engine thread's first tokens wait for it
            request_id, host_cancel = self.host.generate(job.messages, job.params, response_format=job.response_format)
            self._running[request_id] = _Running(job, host_cancel, reply)
        if reply is not None:
            self.requestRecorded.emit(reply.cid)
        self._cancel_timer.start()
        self.activityChanged.emit(self.pending())

    def _check_cancels(self) -> None:
        with self._lock:
            items = list(self._running.items())
        for request_id, r in items:
            if r.job.cancel.is_set() and not r.host_cancel.is_set():
                self.host.stop(request_id)
        if not items:
            self._cancel_timer.stop()

    def _on_tokens(self, request_id: int, text: str) -> None:
        r = self._running.get(request_id)
        if r is not None and r.reply is not None and not r.reply.writer.finished:
            r.reply.append(text)

    def _on_finished(self, request_id: int, stats: GenerationStats, receipt: dict[str, Any]) -> None:
        r = self._forget(request_id)
        if r is not None and r.reply is not None:
            recorder = self._recorder()
            if recorder is not None:
                recorder.finish(r.reply, Done(stats, receipt))

    def _on_failed(self, request_id: int, message: str) -> None:
        r = self._forget(request_id)
        if r is not None and r.reply is not None:
            recorder = self._recorder()
            if recorder is not None:
                recorder.fail(r.reply, message)

    def _forget(self, request_id: int) -> _Running | None:
        with self._lock:
            r = self._running.pop(request_id, None)
        if r is not None:
            self.activityChanged.emit(self.pending())
        return r

    # -- engine thread (DirectConnection): straight to the job ------------------------------------------------------
    def _get(self, request_id: int) -> _Running | None:
        with self._lock:
            return self._running.get(request_id)

    def _tokens_direct(self, request_id: int, text: str) -> None:
        r = self._get(request_id)
        if r is not None and not r.ended:
            r.job.emit(Token(text))

    def _finished_direct(self, request_id: int, stats: GenerationStats, receipt: dict[str, Any]) -> None:
        r = self._get(request_id)
        if r is not None and not r.ended:
            r.ended = True
            r.job.emit(Done(stats, dict(receipt)))

    def _failed_direct(self, request_id: int, message: str) -> None:
        r = self._get(request_id)
        if r is not None and not r.ended:
            r.ended = True
            r.job.emit(Failed(message))

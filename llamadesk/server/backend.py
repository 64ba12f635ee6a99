"""What the server serves from: a "backend" that runs one chat job at a time on the model loaded in LlamaDesk.

Two backends implement it: `EngineThreadBackend` here (for `llamadesk serve`: an engine in a dedicated thread) and
ui/server_bridge.py (the GUI's EngineHost, so requests wait their turn behind the user's own replies). A job's
events (Token ..., then one Done or one Failed) are handed to `job.emit` from the engine's thread, in order.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llamadesk.core.engines.api import Done, Engine, LoadOptions, Message, ModelInfo, Token
from llamadesk.core.errors import GenerationError, LlamaDeskError, ModelLoadError
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.structured import ResponseFormat
from llamadesk.server.recording import ServerRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failed:
    """The last event of a job that could not run or broke off; `message` is one sentence."""

    message: str


JobEvent = Token | Done | Failed


@dataclass
class Job:
    messages: list[Message]
    params: SamplingParams
    emit: Callable[[JobEvent], None]  # called from the engine's thread; Done or Failed comes last, once
    cancel: threading.Event = field(default_factory=threading.Event)  # set: stop between tokens (or skip if queued)
    response_format: ResponseFormat | None = None  # the request's JSON or JSON schema; None for text
    tools: list[dict[str, Any]] = field(default_factory=list)  # function definitions offered to the model
    request_id: str = ""  # the reply's id: its tool calls' ids derive from it (protocol.response_call_id)


class Backend(Protocol):
    def model_id(self) -> str | None:
        """The id the loaded model is served under (its file name); None when no model is loaded."""
        ...

    def default_params(self) -> SamplingParams:
        """Sampling for the fields a request leaves out (the app's own settings)."""
        ...

    def submit(self, job: Job) -> None:
        """Queues the job (thread-safe); jobs run one at a time on the one engine."""
        ...


def run_job(engine: Engine, job: Job, recorder: ServerRecorder | None = None) -> None:
    """Streams one job through `engine` in the calling thread; exactly one Done or Failed reaches job.emit."""
    if job.cancel.is_set():  # the client went away while the job waited its turn
        job.emit(Failed("The request was cancelled before it started."))
        return
    reply = recorder.begin(job.messages, job.params) if recorder is not None else None
    ended = False
    try:
        options: dict[str, Any] = {"response_format": job.response_format} if job.response_format is not None else {}
        if options and not engine.capabilities().get("response_format"):
            raise GenerationError("This engine cannot hold replies to a response format.")
        if job.tools:
            options["tools"] = job.tools
        try:
            events = engine.stream(job.messages, job.params, job.cancel, **options)
        except TypeError:
            if not job.tools:
                raise
            raise GenerationError(
                "This engine cannot offer tools to the model; use the local llama.cpp engine."
            ) from None
        for event in events:
            if isinstance(event, Token):
                if reply is not None and event.text:
                    reply.append(event.text)
            elif isinstance(event, Done):
                ended = True
                if recorder is not None and reply is not None:
                    recorder.finish(reply, event, request_id=job.request_id)
            job.emit(event)
            if ended:
                break
    except LlamaDeskError as exc:
        if not ended:
            if recorder is not None and reply is not None:
                recorder.fail(reply, str(exc))
            job.emit(Failed(str(exc)))
    except Exception as exc:  # a bug: logged, and the client still gets a sentence
        log.exception("A server request failed")
        if not ended:
            job.emit(Failed(f"Generation failed unexpectedly: {exc}."))


class EngineThreadBackend:
    """An engine of its own in a dedicated thread, for `llamadesk serve`. The thread creates the engine, loads the
    model and runs the jobs in order; nothing else touches the engine."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine] | None = None,
        *,
        params: SamplingParams | None = None,
        record_history: bool = False,
    ) -> None:
        self._factory = engine_factory or _default_engine
        self._params = params or SamplingParams()
        self._record = record_history
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    def model_id(self) -> str | None:
        return self._info.file_name if self._info is not None else None

    def default_params(self) -> SamplingParams:
        return self._params

    def start(self, options: LoadOptions) -> ModelInfo:
        """Starts the thread and loads the model there; ModelLoadError (a sentence) when it cannot be loaded."""
        loaded: queue.Queue[ModelInfo | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(options, loaded), name="llamadesk-serve-engine")
        self._thread.start()
        result = loaded.get()
        if isinstance(result, BaseException):
            self._thread.join()
            self._thread = None
            raise result
        self._info = result
        return result

    def submit(self, job: Job) -> None:
        if self._thread is None:
            job.emit(Failed("The server is not running."))
            return
        self._jobs.put(job)

    def close(self) -> None:
        """Cancels what waits, lets the running job stop, ends the thread (closing the engine there)."""
        if self._thread is None:
            return
        pending: list[Job] = []
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                pending.append(item)
        for job in pending:
            job.emit(Failed("The server is shutting down."))
        self._jobs.put(None)
        self._thread.join()
        self._thread = None
        self._info = None

    def _run(self, options: LoadOptions, loaded: queue.Queue[ModelInfo | BaseException]) -> None:
        engine: Engine | None = None
        recorder: ServerRecorder | None = None
        try:
            engine = self._factory()
            info = engine.load(options)
            if self._record:
                recorder = ServerRecorder.open(info.file_name)
        except LlamaDeskError as exc:
            loaded.put(exc if isinstance(exc, ModelLoadError) else ModelLoadError(str(exc)))
            if engine is not None:
                engine.close()
            return
        except Exception as exc:
            log.exception("Loading %s for the server failed", options.path)
            loaded.put(ModelLoadError(f"The model could not be loaded: {exc}."))
            if engine is not None:
                engine.close()
            return
        loaded.put(info)
        try:
            while (job := self._jobs.get()) is not None:
                run_job(engine, job, recorder)
        finally:
            if recorder is not None:
                recorder.close()
            engine.close()


def _default_engine() -> Engine:
    from llamadesk.core.engines.choice import AutoEngine

    return AutoEngine()


def sample_messages(messages: Sequence[Message]) -> list[Message]:
    """A defensive copy: jobs cross threads."""
    return [dict(m) for m in messages]

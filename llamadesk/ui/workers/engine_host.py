"""EngineHost: a QThread that owns the inference engine for its whole life; queued requests in, batched tokens out."""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from llamadesk.core import priority
from llamadesk.core.engines.api import Done, Engine, LoadOptions, Message, Token
from llamadesk.core.engines.choice import engine_kind, make_engine
from llamadesk.core.errors import GenerationError, LlamaDeskError
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.tools.loop import stream_with_tools

log = logging.getLogger(__name__)

BATCH_INTERVAL_S = 0.016  # coalesce tokens to the display rate (~60 Hz): never one signal per token
PROGRESS_INTERVAL_S = 0.03
SHUTDOWN_WAIT_MS = 60_000

EngineFactory = Callable[[], Engine]


default_engine_factory = make_engine  # the worker's factory unless a test gives its own


class EngineWorker(QObject):
    """Lives in the engine thread and owns the engine; every slot runs there, every signal is queued out."""

    loadProgress = Signal(float)
    loaded = Signal(object)  # ModelInfo
    loadFailed = Signal(str)
    loadCancelled = Signal()
    unloaded = Signal()
    tokens = Signal(int, str)  # request id, a batch of reply text
    finished = Signal(int, object, object)  # request id, GenerationStats, receipt dict
    failed = Signal(int, str)  # request id, a sentence
    tokenCount = Signal(int)
    tokenProbs = Signal(int, object)  # request id, a batch of TokenProb records (sent with the text's batch)
    prefilled = Signal(int)  # tokens of a prompt evaluated ahead of its reply (0: nothing to do or not supported)
    closed = Signal()

    def __init__(self, engine_factory: EngineFactory) -> None:
        super().__init__()
        self._factory = engine_factory
        self._engine: Engine | None = None
        self._kind = "local"

    def _get_engine(self, kind: str | None = None) -> Engine:
        """The current engine (kind None or the same), else a new engine of `kind` that `load` adopts once it has
        loaded: a conversation switches between local, remote and RPC models with the picker, and a failed switch
        leaves the model that was loaded in place."""
        if kind is None or kind == self._kind:
            if self._engine is None:
                self._engine = self._make_engine(self._kind)
            return self._engine
        return self._make_engine(kind)

    def _make_engine(self, kind: str) -> Engine:
        return self._factory() if kind == "local" else default_engine_factory(kind)

    def _adopt(self, engine: Engine, kind: str) -> None:
        """Makes `engine` the current one, closing the previous engine (of another kind)."""
        if engine is not self._engine:
            old, self._engine, self._kind = self._engine, engine, kind
            if old is not None:
                try:
                    old.close()
                except Exception:
                    log.exception("Closing the previous engine failed")

    def _discard(self, engine: Engine | None) -> None:
        """Closes a new engine whose first load failed (the current one stays)."""
        if engine is not None and engine is not self._engine:
            try:
                engine.close()
            except Exception:
                log.exception("Closing an engine that failed to load failed")

    @Slot(object, object)
    def load(self, options: LoadOptions, cancel: threading.Event) -> None:
        if cancel.is_set():
            self.loadCancelled.emit()
            return
        last = 0.0

        def progress(fraction: float) -> bool:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL_S or fraction >= 1.0:
                last = now
                self.loadProgress.emit(float(fraction))
            return not cancel.is_set()

        kind = engine_kind(options)
        engine: Engine | None = None
        try:
            engine = self._get_engine(kind)
            info = engine.load(options, progress)
        except LlamaDeskError as exc:
            self._discard(engine)
            self._after_failed_load(cancel, str(exc))
            return
        except Exception as exc:  # a bug or an unexpected library error: log it, show a sentence
            log.exception("Loading %s failed", options.path)
            self._discard(engine)
            self._after_failed_load(cancel, f"The model could not be loaded: {exc}.")
            return
        self._adopt(engine, kind)
        self.loaded.emit(info)

    def _after_failed_load(self, cancel: threading.Event, message: str) -> None:
        if cancel.is_set():
            self.loadCancelled.emit()
        else:
            self.loadFailed.emit(message)
        if self._engine is None or self._engine.info is None:
            self.unloaded.emit()

    @Slot(int, object, object, object, object)
    def generate(
        self, request_id: int, messages: Sequence[Message], params: SamplingParams, cancel: threading.Event,
        options: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """`options`: {"mode": "chat" | "continue" | "completion", "token_probs": bool} (GenerationMode values)."""
        pending: list[str] = []
        pending_probs: list[Any] = []
        last_emit = 0.0  # the first text goes out at once (time to first token), the rest at the display rate

        def flush() -> None:
            nonlocal last_emit
            if pending:
                self.tokens.emit(request_id, "".join(pending))
                pending.clear()
            if pending_probs:
                self.tokenProbs.emit(request_id, list(pending_probs))
                pending_probs.clear()
            last_emit = time.monotonic()

        events = None
        try:
            # This thread and llama.cpp's pool (which inherits its niceness) yield the cores to the GUI thread.
            priority.yield_to()
            engine = self._get_engine()
            options = dict(options or {})
            tools = options.pop("tools", None)  # a ToolUse: the reply's steps may call tools (core/tools/loop.py)
            kwargs = _stream_options(engine, options)
            if tools is None:
                events = engine.stream(messages, params, cancel, **kwargs)
            elif "tools" not in inspect.signature(engine.stream).parameters:
                raise GenerationError("This engine cannot call tools; use the local llama.cpp engine for them.")
            else:
                events = stream_with_tools(engine.stream, messages, params, cancel, tools, **kwargs)
            for event in events:
                if isinstance(event, Token):
                    pending.append(event.text)
                    pending_probs.extend(event.probs)
                    if time.monotonic() - last_emit >= BATCH_INTERVAL_S:
                        flush()
                elif isinstance(event, Done):
                    flush()
                    # A failed reply also ends with Done (finish_reason ERROR, stats.error): one report only.
                    self.finished.emit(request_id, event.stats, dict(event.receipt))
                    return
            flush()
            self.failed.emit(request_id, "Generation ended without a result.")
        except LlamaDeskError as exc:
            flush()
            self.failed.emit(request_id, str(exc))
        except Exception as exc:
            log.exception("Generation %d failed", request_id)
            flush()
            self.failed.emit(request_id, f"Generation failed unexpectedly: {exc}.")
        finally:
            if events is not None and hasattr(events, "close"):
                events.close()

    @Slot(object, object, str)
    def prefill(self, messages: Sequence[Message], cancel: threading.Event, mode: str) -> None:
        """Evaluates a prompt ahead of its reply, when the engine can (the in-process llama.cpp engine)."""
        engine = self._engine
        prefill = getattr(engine, "prefill", None)  # the in-process engine's (capabilities()["prefill"])
        if cancel.is_set() or engine is None or engine.info is None or prefill is None:
            return
        try:
            priority.yield_to()
            self.prefilled.emit(int(prefill(messages, cancel, mode=mode)))
        except LlamaDeskError as exc:
            log.info("The prompt was not prepared: %s", exc)
        except Exception:
            log.exception("Preparing the prompt failed")

    @Slot(object)
    def countTokens(self, messages: Sequence[Message]) -> None:
        if self._engine is None or self._engine.info is None:
            return
        try:
            self.tokenCount.emit(int(self._engine.count_tokens(messages)))
        except LlamaDeskError as exc:
            log.info("Could not count tokens: %s", exc)
        except Exception:
            log.exception("Counting tokens failed")

    @Slot()
    def unload(self) -> None:
        if self._engine is not None:
            try:
                self._engine.unload()
            except Exception:
                log.exception("Unloading failed")
        self.unloaded.emit()

    @Slot()
    def close(self) -> None:
        """Closes the engine in its own thread, then ends the thread's event loop."""
        try:
            if self._engine is not None:
                self._engine.close()
        except Exception:
            log.exception("Closing the engine failed")
        finally:
            self._engine = None
            self.closed.emit()
            thread = self.thread()
            if thread is not None:
                thread.quit()


def _stream_options(engine: Engine, options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of engine.stream() for a request's options; only those the engine says it takes."""
    mode, probs = str(options.get("mode") or "chat"), bool(options.get("token_probs"))
    fmt = options.get("response_format")  # a structured.ResponseFormat, or None for text
    if mode == "chat" and not probs and fmt is None:
        return {}
    capabilities = engine.capabilities()
    kwargs: dict[str, Any] = {}
    if fmt is not None:
        if not capabilities.get("response_format"):
            raise GenerationError("This engine cannot hold replies to JSON; choose Text as the response format.")
        kwargs["response_format"] = fmt
    if mode != "chat":
        if mode not in capabilities.get("modes", ()):
            what = "continue a reply" if mode == "continue" else "continue raw text (notebook mode)"
            raise GenerationError(f"This engine cannot {what}; use the local llama.cpp engine for that.")
        kwargs["mode"] = mode
    if probs and capabilities.get("token_probs"):
        kwargs["token_probs"] = True
    return kwargs


_live_hosts: weakref.WeakSet[EngineHost] = weakref.WeakSet()


class EngineHost(QObject):
    """Makes the engine thread and its worker; the GUI talks to the engine only through this object."""

    _loadRequested = Signal(object, object)
    _generateRequested = Signal(int, object, object, object, object)
    _countRequested = Signal(object)
    _prefillRequested = Signal(object, object, str)
    _unloadRequested = Signal()
    _closeRequested = Signal()

    def __init__(self, engine_factory: EngineFactory | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("llamadesk-engine")
        self.worker = EngineWorker(engine_factory or default_engine_factory)
        self.worker.moveToThread(self._thread)
        self._loadRequested.connect(self.worker.load)
        self._generateRequested.connect(self.worker.generate)
        self._countRequested.connect(self.worker.countTokens)
        self._prefillRequested.connect(self.worker.prefill)
        self._unloadRequested.connect(self.worker.unload)
        self._closeRequested.connect(self.worker.close)
        self._ids = itertools.count(1)
        self._cancels: dict[int, threading.Event] = {}
        self._load_cancel: threading.Event | None = None
        self._prefill_cancel = threading.Event()
        self._shut_down = False
        self.worker.finished.connect(self._forget)
        self.worker.failed.connect(self._forget)
        self._thread.start()
        _live_hosts.add(self)

    @property
    def thread_running(self) -> bool:
        return self._thread.isRunning()

    def load(self, options: LoadOptions) -> threading.Event:
        """Asks for a load; a load still in progress is cancelled. Returns the event that cancels this one."""
        self._prefill_cancel.set()
        if self._load_cancel is not None:
            self._load_cancel.set()
        cancel = threading.Event()
        self._load_cancel = cancel
        self._loadRequested.emit(options, cancel)
        return cancel

    def cancel_load(self) -> None:
        if self._load_cancel is not None:
            self._load_cancel.set()

    def generate(
        self, messages: Sequence[Message], params: SamplingParams, *, mode: str = "chat", token_probs: bool = False,
        response_format: Any = None, tools: Any = None,
    ) -> tuple[int, threading.Event]:  # fmt: skip
        """Queues a reply. `mode` "continue" extends the last (assistant) message; "completion" continues the
        messages' text as raw text; `token_probs` records each token's probability and alternatives;
        `response_format` (a structured.ResponseFormat that is not text) holds the reply to JSON or a schema;
        `tools` (a core.tools.use.ToolUse with tools switched on) lets the reply call them (core/tools/loop.py)."""
        self._prefill_cancel.set()  # a prompt being prepared gives way at once
        request_id = next(self._ids)
        cancel = threading.Event()
        self._cancels[request_id] = cancel
        options = {"mode": mode, "token_probs": token_probs}
        if response_format is not None and not response_format.is_text:
            options["response_format"] = response_format
        if tools is not None and tools.box:
            options["tools"] = tools
        self._generateRequested.emit(request_id, [dict(m) for m in messages], params, cancel, options)
        return request_id, cancel

    def stop(self, request_id: int | None = None) -> None:
        """Sets the cancel event of one request, or of all of them."""
        for rid, cancel in self._cancels.items():
            if request_id is None or rid == request_id:
                cancel.set()

    def prefill(self, messages: Sequence[Message], *, mode: str = "chat") -> None:
        """Asks the engine to evaluate the prompt of `messages` (rendered for `mode`: "chat" or "completion") while
        it has nothing else to do; the next request (or prefill) interrupts it. The reply that follows reads only
        the tokens that changed."""
        self._prefill_cancel.set()
        self._prefill_cancel = threading.Event()
        self._prefillRequested.emit([dict(m) for m in messages], self._prefill_cancel, mode)

    def count_tokens(self, messages: Sequence[Message]) -> None:
        self._countRequested.emit([dict(m) for m in messages])

    def unload(self) -> None:
        self._prefill_cancel.set()
        self._unloadRequested.emit()

    def _forget(self, request_id: int, *_: Any) -> None:
        self._cancels.pop(request_id, None)

    def shutdown(self, wait_ms: int = SHUTDOWN_WAIT_MS) -> bool:
        """Cancels everything, closes the engine in its thread and waits for the thread to end."""
        if self._shut_down:
            return not self._thread.isRunning()
        self._shut_down = True
        self.cancel_load()
        self._prefill_cancel.set()
        self.stop()
        if self._thread.isRunning():
            self._closeRequested.emit()
            if not self._thread.wait(wait_ms):
                log.error("The engine thread did not stop within %d ms", wait_ms)
                return False
        _live_hosts.discard(self)
        return True


def live_hosts() -> list[EngineHost]:
    """Hosts whose thread has not been shut down (tests assert that none is left)."""
    return [h for h in _live_hosts if h.thread_running]

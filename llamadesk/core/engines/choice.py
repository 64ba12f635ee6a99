"""The one place an engine is chosen, for the window's engine thread, the CLI and the server alike: by what is
loaded. A model an endpoint serves → RemoteEngine (remote.py); a local file split over llama.cpp RPC hosts →
ChildEngine (rpc_child.py: llama.cpp in a child process, which a lost host cannot take down); else the in-process
LlamaCppEngine (local.py). Engines are imported when made, so the window's engine thread does the importing."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from llamadesk.core.engines.api import Capabilities, Engine, LoadOptions, LoadProgress, Message, ModelInfo, StreamEvent
from llamadesk.core.sampling import SamplingParams

EngineKind = Literal["local", "rpc", "remote"]


def engine_kind(options: LoadOptions) -> EngineKind:
    """Which engine a load needs: "remote" (a model an endpoint serves), "rpc" (a local file split over llama.cpp
    RPC hosts, run in a child process) or "local" (the in-process llama.cpp engine)."""
    from llamadesk.core.endpoints import RemoteOptions

    if isinstance(options, RemoteOptions):
        return "remote"
    return "rpc" if getattr(options, "rpc_servers", ()) else "local"


def make_engine(kind: str = "local") -> Engine:
    """A new engine of a kind (see `engine_kind`)."""
    if kind == "remote":
        from llamadesk.core.engines.remote import RemoteEngine

        return RemoteEngine()
    if kind == "rpc":
        from llamadesk.core.engines.rpc_child import ChildEngine

        return ChildEngine()
    from llamadesk.core.engines.local import LlamaCppEngine

    return LlamaCppEngine()


class AutoEngine:
    """One engine that chooses per load (engine_kind): the in-process LlamaCppEngine for local models, a ChildEngine
    for models split over RPC hosts. Only one of them holds a model at a time. For `llamadesk serve`, whose engine
    thread cannot be handed a new engine per load the way the window's is."""

    def __init__(self) -> None:
        from llamadesk.core.engines.local import LlamaCppEngine

        self._local: Any = LlamaCppEngine()
        self._child: Any = None
        self._active: Any = self._local

    @property
    def info(self) -> ModelInfo | None:
        info: ModelInfo | None = self._active.info
        return info

    def capabilities(self) -> Capabilities:
        caps: Capabilities = self._active.capabilities()
        return caps

    def load(self, options: LoadOptions, progress: LoadProgress | None = None) -> ModelInfo:
        if engine_kind(options) == "rpc":
            self._local.unload()
            self._child = self._child or make_engine("rpc")
            self._active = self._child
        else:
            if self._child is not None:
                self._child.close()
            self._active = self._local
        info: ModelInfo = self._active.load(options, progress)
        return info

    def unload(self) -> None:
        self._active.unload()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return int(self._active.count_tokens(messages))

    def stream(
        self, messages: Sequence[Message], params: SamplingParams, cancel: threading.Event | None = None, **kwargs: Any
    ) -> Iterator[StreamEvent]:
        events: Iterator[StreamEvent] = self._active.stream(messages, params, cancel, **kwargs)
        return events

    def close(self) -> None:
        self._local.close()
        if self._child is not None:
            self._child.close()

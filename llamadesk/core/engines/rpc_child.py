"""Models split over llama.cpp RPC hosts run in a child process, so a host that goes away cannot take the app down.

llama.cpp's RPC client calls abort() when a host does not answer or drops the connection mid-reply
("Remote RPC server crashed or returned malformed response"): the whole process dies, with no exception to catch.
`ChildEngine` runs the in-process `LlamaCppEngine` in a child process (multiprocessing, spawn) and speaks to it over
a pipe; when the child dies, the caller gets one sentence naming the host that stopped answering, and the app lives.

The pipe carries (command, args) to the child and ("progress" | "event" | "result" | "error", ...) back. Stop
crosses as a multiprocessing Event the child's engine checks between tokens and inside llama_decode.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, cast

from llamadesk.core import rpc
from llamadesk.core.engines.api import (
    Capabilities,
    Done,
    FinishReason,
    GenerationStats,
    LoadOptions,
    LoadProgress,
    Message,
    ModelInfo,
    StreamEvent,
    Token,
)
from llamadesk.core.errors import GenerationError, LlamaDeskError, ModelLoadError, StructuredOutputError
from llamadesk.core.sampling import SamplingParams

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often a wait for the child looks at the caller's Stop


class _ChildDied(Exception):
    pass


# -- the child ----------------------------------------------------------------------------------------------


class _PipeLogHandler(logging.Handler):
    """Sends the child's log records (llama.cpp's included) to the parent, which logs them as its own."""

    def __init__(self, conn: Connection, lock: threading.Lock) -> None:
        super().__init__(logging.DEBUG)
        self.conn, self.pipe_lock = conn, lock  # not `self.lock`: logging.Handler holds its own lock under that name

    def emit(self, record: logging.LogRecord) -> None:
        try:
            with self.pipe_lock:
                self.conn.send(("log", record.name, record.levelno, record.getMessage()))
        except Exception:  # the parent is gone: nothing to tell
            pass


def _child_main(conn: Connection, cancel: Any, load_cancel: Any, log_level: int) -> None:
    """The child's loop: one command at a time, answers on the same pipe. Ends on "close" or a closed pipe.
    `cancel` is a multiprocessing Event: it has the is_set() the engine calls on its threading.Event."""
    os.environ["GGML_NO_BACKTRACE"] = "1"  # an abort() ends the child at once, without attaching gdb for a backtrace
    from llamadesk.core.engines.local import LlamaCppEngine

    lock = threading.Lock()
    root = logging.getLogger()
    root.handlers[:] = [_PipeLogHandler(conn, lock)]
    root.setLevel(log_level)

    def send(*message: Any) -> None:
        with lock:
            conn.send(message)

    def progress(fraction: float) -> bool:
        send("progress", fraction)
        return not load_cancel.is_set()

    engine = LlamaCppEngine()
    while True:
        try:
            command, args = conn.recv()
        except (EOFError, OSError):
            break
        try:
            if command == "close":
                engine.close()
                send("result", None)
                break
            if command == "load":
                (options,) = args
                info = engine.load(options, progress)
                send("result", info)
            elif command == "stream":
                messages, params, kwargs = args
                for event in engine.stream(messages, params, cast(threading.Event, cancel), **kwargs):
                    send("event", event)
                send("result", None)
            elif command == "count":
                send("result", engine.count_tokens(args[0]))
            elif command == "capabilities":
                send("result", engine.capabilities())
            elif command == "unload":
                engine.unload()
                send("result", None)
            else:
                send("error", "LlamaDeskError", f"Unknown engine command {command!r}.")
        except LlamaDeskError as exc:
            send("error", type(exc).__name__, str(exc))
        except Exception as exc:  # a bug: the parent still gets a sentence, the log has the traceback
            logging.getLogger(__name__).exception("Engine command %s failed", command)
            send("error", "LlamaDeskError", f"The engine failed unexpectedly: {exc}.")


# -- the parent ---------------------------------------------------------------------------------------------

_ERRORS: dict[str, type[LlamaDeskError]] = {"ModelLoadError": ModelLoadError, "GenerationError": GenerationError,
                                            "StructuredOutputError": StructuredOutputError}  # fmt: skip


class ChildEngine:
    """The Engine protocol over a child process running LlamaCppEngine. Not thread-safe, like the engine it wraps:
    one thread calls it; other threads only set the `cancel` Event passed to stream()."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Connection | None = None
        self._cancel: Any = None
        self._load_cancel: Any = None
        self._info: ModelInfo | None = None
        self._hosts: tuple[str, ...] = ()
        self.exit_code: int | None = None  # of the last child that ended on its own (-6: llama.cpp abort()ed)

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def capabilities(self) -> Capabilities:
        caps: Capabilities = {"kind": "llama.cpp over RPC (child process)", "streaming": True, "rpc": True}
        if self._conn is not None:
            with contextlib.suppress(LlamaDeskError):
                caps = {**self._call("capabilities"), **caps}
        return caps

    def _start(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._stop_process()
        parent, child = self._ctx.Pipe()
        self._cancel, self._load_cancel = self._ctx.Event(), self._ctx.Event()
        level = logging.getLogger().getEffectiveLevel()
        self._process = self._ctx.Process(
            target=_child_main, args=(child, self._cancel, self._load_cancel, level), name="llamadesk-rpc-engine",
            daemon=True,
        )  # fmt: skip
        self._process.start()
        child.close()
        self._conn = parent

    def _stop_process(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
        self._process, self._conn, self._info = None, None, None

    def _receive(self, stop: threading.Event | None = None) -> tuple[Any, ...]:
        """The child's next message (log records are logged here); _ChildDied when the child is gone."""
        conn = self._conn
        if conn is None:
            raise _ChildDied
        while True:
            if stop is not None and stop.is_set() and self._cancel is not None:
                self._cancel.set()
            ready = wait([conn, self._process.sentinel], POLL_S)
            if conn in ready or (ready and conn.poll()):
                try:
                    message: tuple[Any, ...] = conn.recv()
                except (EOFError, OSError) as exc:
                    raise _ChildDied from exc
                if message[0] == "log":
                    logging.getLogger(message[1]).log(message[2], "%s", message[3])
                    continue
                return message
            if ready:  # the process ended and left nothing in the pipe
                raise _ChildDied

    def _call(self, command: str, *args: Any, progress: LoadProgress | None = None) -> Any:
        assert self._conn is not None
        try:
            self._conn.send((command, args))
            while True:
                message = self._receive()
                if message[0] == "progress":
                    if progress is not None and not progress(message[1]):
                        self._load_cancel.set()
                elif message[0] == "result":
                    return message[1]
                elif message[0] == "error":
                    raise _ERRORS.get(message[1], LlamaDeskError)(message[2])
        except (_ChildDied, BrokenPipeError) as exc:
            self._forget_child()
            raise ModelLoadError(self._death_sentence("while loading the model")) from exc

    def _forget_child(self) -> None:
        if self._process is not None:
            self._process.join(5)
            self.exit_code = self._process.exitcode
            log.warning("The RPC engine process ended (exit code %s)", self.exit_code)
        self._process, self._conn, self._info = None, None, None

    def _death_sentence(self, when: str) -> str:
        """Which host went away: the child's connections are closed now, so the hosts answer a probe again."""
        down = [s for s in rpc.check_hosts(self._hosts, timeout=2.0) if not s.ok]
        if down:
            names = ", ".join(s.host for s in down)
            return (
                f"The RPC host {names} stopped answering {when}; start rpc-server there again, then load the model "
                "again (LlamaDesk itself is fine)."
            )
        return (
            f"The llama.cpp process serving the RPC hosts ended {when} (a host may have dropped the connection); "
            "load the model again."
        )

    def load(self, options: LoadOptions, progress: LoadProgress | None = None) -> ModelInfo:
        # Ask the hosts here first: a clear sentence, and no child started for a host that is down.
        for host in options.rpc_servers:
            try:
                rpc.query_host(host)
            except rpc.RpcError as exc:
                raise ModelLoadError(str(exc)) from exc
        self.unload()
        self._hosts = tuple(options.rpc_servers)
        self._start()
        self._load_cancel.clear()
        info: ModelInfo = self._call("load", options, progress=progress)
        self._info = info
        return info

    def unload(self) -> None:
        """Ends the child: its RPC connections close, so the hosts are free for the next load (or another app)."""
        if self._conn is not None:
            try:
                self._conn.send(("close", ()))
                self._receive()
            except (_ChildDied, OSError):
                pass
        self._stop_process()

    def close(self) -> None:
        self.unload()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        if self._conn is None:
            raise GenerationError("No model is loaded; choose a model first.")
        try:
            return int(self._call("count", [dict(m) for m in messages]))
        except ModelLoadError as exc:
            raise GenerationError(str(exc)) from exc

    def stream(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        **kwargs: Any,
    ) -> Iterator[StreamEvent]:
        """As LlamaCppEngine.stream (mode=, token_probs=, response_format= pass through). A host lost mid-reply ends
        the stream with Done(finish_reason ERROR) and then a GenerationError, like any failed reply, and the model is
        unloaded."""
        if self._conn is None or self._info is None:
            raise GenerationError("No model is loaded; choose a model first.")
        cancel = cancel or threading.Event()
        self._cancel.clear()
        self._conn.send(("stream", ([dict(m) for m in messages], params, kwargs)))
        pieces = 0  # Token events seen: the figure a lost reply can still report
        finished = False
        try:
            while True:
                try:
                    message = self._receive(cancel)
                except _ChildDied:
                    finished = True
                    self._forget_child()
                    sentence = self._death_sentence("during the reply")
                    stats = GenerationStats(
                        prompt_tokens=0, cached_tokens=0, generated_tokens=pieces, ttft_s=0.0, tokens_per_s=0.0,
                        total_s=0.0, finish_reason=FinishReason.ERROR, seed=params.seed or 0, error=sentence,
                    )  # fmt: skip
                    yield Done(stats, {"rpc_servers": list(self._hosts), "error": sentence})
                    raise GenerationError(sentence) from None
                if message[0] == "event":
                    event = message[1]
                    if isinstance(event, Token):
                        pieces += 1
                    yield event
                elif message[0] == "result":
                    finished = True
                    return
                elif message[0] == "error":
                    finished = True
                    raise _ERRORS.get(message[1], GenerationError)(message[2])
        finally:
            if not finished and self._conn is not None:
                # The caller stopped reading (closed the generator): stop the child and read up to its answer,
                # so the pipe is clean for the next command.
                self._cancel.set()
                try:
                    while self._receive()[0] == "event":
                        pass
                except _ChildDied:
                    self._forget_child()

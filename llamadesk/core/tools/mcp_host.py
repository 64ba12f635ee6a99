"""The MCP host: the user's MCP servers (mcp_config.py) connected with the official `mcp` SDK, their tools offered
to the model as ToolBox tools.

The SDK is asyncio: the host owns one event-loop thread, where every server's connection lives (a task per server
that enters the SDK's transport and session and leaves them when stopped; anyio wants both in one task), and gives
the turn's thread a synchronous API: start, wait, state, tools, call, close.

A server is untrusted: one that hangs (no answer within the timeout), crashes, floods its output or answers garbage
ends up `failed` with one sentence and the tail of its stderr, its calls give that sentence to the model, and the
chat goes on. A call's result is capped in size, and in time by the call's timeout (a 50 MB result over stdio takes
longer than any timeout: it is given up, not waited for).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from llamadesk.core.tools.mcp_config import ServerConfig
from llamadesk.core.tools.spec import MAX_DESCRIPTION_CHARS, Tool, ToolError, capped, clean_schema

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0  # to start, initialize and list the tools (npx may download a package first)
CALL_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
STDERR_TAIL_BYTES = 4096
CANCEL_POLL_S = 0.1  # how soon a call waiting on a server sees Stop (threading.Event has no callback to wait on)
MAX_TOOLS = 128  # a server listing more is cut here (each tool costs prompt tokens)
MAX_PAGES = 10
CONNECTION_CLOSED = -32000  # the JSON-RPC error code of the SDK's "Connection closed" (mcp_types.jsonrpc)
_TOOL_NAME = re.compile(r"[\w.\-]{1,64}")

STARTING, READY, FAILED, STOPPED = "starting", "ready", "failed", "stopped"


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ServerState:
    """What a front end shows of a server: its status (starting, ready, failed, stopped), its tools when ready, and
    when failed one sentence and the tail of what it wrote to stderr."""

    name: str
    status: str = STOPPED
    tools: tuple[ToolInfo, ...] = ()
    error: str = ""
    stderr_tail: str = ""


class _StderrTail:
    """A child's stderr: a pipe read by a thread that keeps only the last bytes (a server that floods stderr costs
    a thread's reads, never memory or disk)."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        self.file = os.fdopen(write_fd, "w", encoding="utf-8", errors="replace")
        self._read_fd = read_fd
        self._tail = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, name="mcp-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self._read_fd, 65536):
                with self._lock:
                    self._tail += chunk
                    del self._tail[:-STDERR_TAIL_BYTES]
        with contextlib.suppress(OSError):
            os.close(self._read_fd)

    def close_writer(self) -> None:
        """Our copy of the write end: closed once the child has its own, so the reader sees EOF when it exits."""
        with contextlib.suppress(OSError):
            self.file.close()

    def text(self) -> str:
        with self._lock:
            return bytes(self._tail).decode("utf-8", "replace").strip()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@dataclass
class _Server:
    config: ServerConfig
    state: ServerState
    session: Any = None
    stop: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None
    stderr: _StderrTail | None = None
    garbage: int = 0  # lines it wrote that are not JSON-RPC
    start_scope: Any = None  # the cancel scope of its start: garbage ends the start at once
    ready: threading.Event = field(default_factory=threading.Event)  # set when no longer starting


def _sentence(exc: BaseException) -> str:
    """A failure of the SDK, the transport or the server in one sentence (exception groups unwrapped)."""
    while isinstance(getattr(exc, "exceptions", None), tuple) and exc.exceptions:  # type: ignore[attr-defined]
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    if isinstance(exc, TimeoutError):
        return "it did not answer in time"
    if isinstance(exc, FileNotFoundError):
        return f"its command was not found ({exc.filename or exc})"
    if "Connection closed" in str(exc):
        return "it closed the connection (it may have exited)"
    if isinstance(exc, PermissionError):
        return "its command cannot be run (permission denied)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200].rstrip(".")


def result_text(result: Any) -> str:
    """The text of a CallToolResult: its text blocks, the others named, structured content as JSON."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(str(getattr(block, "text", "")))
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {getattr(block, 'mime_type', '')}]")
        elif kind == "resource_link" or kind == "resource":
            resource = getattr(block, "resource", block)
            text = getattr(resource, "text", None)
            parts.append(str(text) if isinstance(text, str) else f"[resource {getattr(resource, 'uri', '')}]")
        else:
            parts.append(f"[{kind or 'content'}]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        with contextlib.suppress(TypeError, ValueError):
            parts.append(json.dumps(structured, ensure_ascii=False))
    return "\n".join(parts)


class McpHost:
    """Connects the servers it is given, one event-loop thread for all. Thread-safe: every method may be called
    from any thread but the host's own; `on_change(state)` is called in the host's thread (a GUI queues it on)."""

    def __init__(
        self, servers: Iterable[ServerConfig], *, start_timeout: float = START_TIMEOUT_S,
        call_timeout: float = CALL_TIMEOUT_S, on_change: Callable[[ServerState], None] | None = None,
    ) -> None:  # fmt: skip
        self.start_timeout, self.call_timeout = start_timeout, call_timeout
        self.on_change = on_change
        self._servers = {c.name: _Server(c, ServerState(c.name)) for c in servers}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # The SDK logs each line a server writes that is not JSON-RPC with a traceback: a server flooding garbage
        # would flood our log. Its failure reaches the user as our sentence instead.
        logging.getLogger("mcp").setLevel(logging.CRITICAL)

    # -- the loop thread ---------------------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="mcp-host", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())

    # -- servers -----------------------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._servers)

    def _server(self, name: str) -> _Server:
        server = self._servers.get(name)
        if server is None:
            raise ToolError(f"There is no MCP server named {name!r} (llamadesk mcp list shows them).")
        return server

    def _set(self, server: _Server, **changes: Any) -> None:
        server.state = replace(server.state, **changes)
        if server.state.status != STARTING:
            server.ready.set()
        if self.on_change is not None:
            with contextlib.suppress(Exception):  # a front end's bug must not take the host down
                self.on_change(server.state)

    def state(self, name: str) -> ServerState:
        server = self._server(name)
        if server.stderr is not None:  # what a stdio server last wrote to stderr (its logs, a traceback)
            return replace(server.state, stderr_tail=server.stderr.text())
        return server.state

    def states(self) -> list[ServerState]:
        return [self.state(n) for n in self._servers]

    def start(self, names: Iterable[str] | None = None) -> None:
        """Starts the servers (all by default) that are not running; returns at once (status `starting`)."""
        for name in list(names) if names is not None else list(self._servers):
            server = self._server(name)
            if server.state.status in (STARTING, READY):
                continue
            server.ready.clear()
            self._set(server, status=STARTING, tools=(), error="", stderr_tail="")
            self._submit(self._begin(server))

    def wait(self, name: str, timeout: float | None = None) -> ServerState:
        """The server's state once it is no longer starting (or after `timeout`)."""
        server = self._server(name)
        server.ready.wait(self.start_timeout + STOP_TIMEOUT_S if timeout is None else timeout)
        return self.state(name)

    async def _begin(self, server: _Server) -> None:
        server.stop = asyncio.Event()
        server.task = asyncio.current_task()
        await self._serve(server)

    async def _serve(self, server: _Server) -> None:
        import anyio
        from mcp import ClientSession

        config = server.config
        assert server.stop is not None
        try:
            async with contextlib.AsyncExitStack() as stack:
                # The transport and the session open task groups: they are entered outside the timeout's cancel
                # scope, which must close before them (anyio's scopes nest); spawning or opening them is quick.
                read, write = await self._connect(server, stack)
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=lambda m: self._incoming(server, m))
                )
                with anyio.fail_after(self.start_timeout) as scope:
                    server.start_scope = scope
                    await session.initialize()
                    tools = await self._list_tools(session)
                server.start_scope = None
                if scope.cancelled_caught:
                    raise ConnectionError("it wrote text that is not MCP")
                server.session = session
                if server.stderr is not None:
                    server.stderr.close_writer()
                self._set(server, status=READY, tools=tuple(tools))
                await server.stop.wait()
                server.session = None
        except Exception as exc:  # the SDK, the transport, the server: all untrusted, all one sentence
            server.session = None
            reason = _sentence(exc)
            if server.garbage:
                reason = "it wrote text that is not MCP (JSON-RPC) where MCP messages go"
            if server.state.status != FAILED:
                self._set(server, status=FAILED, error=f"The MCP server {config.name} failed: {reason}.")
            return
        finally:
            if server.stderr is not None:
                server.stderr.close_writer()
        if server.state.status == READY:
            self._set(server, status=STOPPED, tools=())

    async def _incoming(self, server: _Server, message: Any) -> None:
        """Messages the session does not handle itself; an Exception is a line the transport could not read."""
        if isinstance(message, Exception):
            server.garbage += 1
            if server.start_scope is not None:
                server.start_scope.cancel()

    async def _connect(self, server: _Server, stack: contextlib.AsyncExitStack) -> tuple[Any, Any]:
        config = server.config
        if config.command:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            server.stderr = _StderrTail()
            params = StdioServerParameters(command=config.command, args=list(config.args), env=config.env or None,
                                           cwd=config.cwd)  # fmt: skip
            read, write = await stack.enter_async_context(stdio_client(params, errlog=server.stderr.file))
            return read, write
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        client = httpx2.AsyncClient(headers=config.headers or None,
                                    timeout=httpx2.Timeout(self.call_timeout, connect=self.start_timeout))  # fmt: skip
        await stack.enter_async_context(client)
        read, write = await stack.enter_async_context(streamable_http_client(config.url, http_client=client))
        return read, write

    async def _list_tools(self, session: Any) -> list[ToolInfo]:
        tools: list[ToolInfo] = []
        cursor = None
        for _page in range(MAX_PAGES):
            listed = await session.list_tools(params={"cursor": cursor} if cursor else None)
            for tool in listed.tools:
                if len(tools) >= MAX_TOOLS or not _TOOL_NAME.fullmatch(tool.name or ""):
                    continue
                description = (tool.description or "")[:MAX_DESCRIPTION_CHARS]
                tools.append(ToolInfo(tool.name, description, clean_schema(tool.input_schema)))
            cursor = getattr(listed, "next_cursor", None)
            if not cursor:
                break
        return tools

    # -- calls -------------------------------------------------------------------------------------------------

    def call(self, name: str, tool: str, arguments: dict[str, Any], cancel: threading.Event | None = None) -> str:
        """Calls a tool of a ready server and waits for its text; ToolError with one sentence when it cannot (the
        server is not ready, the call timed out, the server broke: then it is marked failed and stopped). `cancel`
        set (the reply's Stop) gives the call up: the SDK tells the server, which stays ready."""
        server = self._server(name)
        if server.state.status != READY or server.session is None:
            raise ToolError(server.state.error or f"The MCP server {name} is not running.")
        future = self._submit(self._call(server, tool, arguments))
        deadline = time.monotonic() + self.call_timeout + STOP_TIMEOUT_S
        while True:  # the host's own timeout ends the call in its loop; this wait only looks at Stop meanwhile
            try:
                return str(future.result(CANCEL_POLL_S if cancel is not None else None))
            except concurrent.futures.TimeoutError:
                if cancel is not None and cancel.is_set():
                    future.cancel()
                    raise ToolError(f"The call of {tool} was stopped.") from None
                if time.monotonic() > deadline:
                    future.cancel()
                    self._fail(server, f"The MCP server {name} did not answer within {self.call_timeout:g} s.")
                    raise ToolError(server.state.error) from None
            except concurrent.futures.CancelledError:
                raise ToolError(f"The call of {tool} was stopped.") from None

    async def _call(self, server: _Server, tool: str, arguments: dict[str, Any]) -> str:
        import anyio

        name = server.config.name
        try:
            with anyio.fail_after(self.call_timeout):
                result = await server.session.call_tool(tool, arguments)
        except TimeoutError:
            self._fail(server, f"The MCP server {name} did not answer within {self.call_timeout:g} s.")
            raise ToolError(server.state.error) from None
        except Exception as exc:
            if isinstance(exc, ToolError):
                raise
            closed = getattr(exc, "code", None) == CONNECTION_CLOSED
            if type(exc).__name__ == "MCPError" and not closed:  # it answered with a JSON-RPC error: it still works
                raise ToolError(f"The tool {tool} of {name} failed: {_sentence(exc)}.") from None
            self._fail(server, f"The MCP server {name} failed: {_sentence(exc)}.")
            raise ToolError(server.state.error) from None
        text, _cut = capped(result_text(result))
        if getattr(result, "is_error", False):
            raise ToolError(f"The tool {tool} of {name} reported an error: {text}" if text else
                            f"The tool {tool} of {name} reported an error.")  # fmt: skip
        return text

    def _fail(self, server: _Server, sentence: str) -> None:
        """Marks a server failed and stops it (its process is ended by the SDK's transport)."""
        if server.state.status != FAILED:
            self._set(server, status=FAILED, error=sentence, tools=())
        stop = server.stop
        if stop is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(stop.set)

    def tools(self, name: str) -> list[Tool]:
        """The ready server's tools as ToolBox tools (source "mcp:NAME")."""
        server = self._server(name)
        return [
            Tool(
                t.name,
                t.description,
                t.parameters,
                functools.partial(self.call, name, t.name),
                source=f"mcp:{name}",
                takes_cancel=True,
            )
            for t in server.state.tools
        ]

    # -- ending ------------------------------------------------------------------------------------------------

    def stop(self, name: str) -> None:
        server = self._server(name)
        task = server.task
        if server.stop is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(server.stop.set)
        if task is not None and self._loop is not None:
            future = self._submit(asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_S))
            with contextlib.suppress(Exception):
                future.result(STOP_TIMEOUT_S + 1)

    def close(self) -> None:
        """Stops every server (ending their processes) and the loop thread."""
        if self._loop is None:
            return
        for name in self._servers:
            self.stop(name)
        for server in self._servers.values():
            if server.stderr is not None:
                server.stderr.close_writer()
                server.stderr.join(STOP_TIMEOUT_S)
        loop, thread = self._loop, self._thread
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(STOP_TIMEOUT_S)
        if not loop.is_running():
            loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> McpHost:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

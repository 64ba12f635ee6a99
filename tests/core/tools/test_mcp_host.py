"""The MCP host with real MCP servers made with the official SDK (tests/mcp_test_server.py), started by each test
over stdio and over streamable HTTP on loopback; hostile ones (garbage, silence, a crash, a hang, floods) end up
`failed` with one sentence and the chat's calls get that sentence. Waits are on the host's states, never sleeps."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamadesk.core.conversation.tool_calls import ToolCall
from llamadesk.core.tools.mcp_config import ServerConfig
from llamadesk.core.tools.mcp_host import FAILED, READY, STDERR_TAIL_BYTES, McpHost, ServerState
from llamadesk.core.tools.spec import MAX_RESULT_CHARS, ToolBox, ToolError

SCRIPT = str(Path(__file__).resolve().parents[2] / "mcp_test_server.py")
GENEROUS = 180.0  # a loaded machine may take long to start Python and the SDK: no test depends on its speed


def stdio(name: str, mode: str = "stdio") -> ServerConfig:
    return ServerConfig(name, command=sys.executable, args=(SCRIPT, mode))


@pytest.fixture
def http_url() -> Iterator[str]:
    """The good server over streamable HTTP on 127.0.0.1, on a port it chose and printed."""
    proc = subprocess.Popen([sys.executable, SCRIPT, "http"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def good_host(*configs: ServerConfig, **kw: float) -> McpHost:
    host = McpHost(
        configs, start_timeout=kw.pop("start_timeout", GENEROUS), call_timeout=kw.pop("call_timeout", GENEROUS)
    )
    host.start()
    return host


def test_a_stdio_server_lists_its_tools_and_answers() -> None:
    seen: list[ServerState] = []
    config = stdio("good")
    with McpHost([config], start_timeout=GENEROUS, call_timeout=GENEROUS, on_change=seen.append) as host:
        host.start()
        state = host.wait("good")
        assert state.status == READY, state
        assert {"add", "echo", "big", "broken", "special"} <= {t.name for t in state.tools}
        add = next(t for t in state.tools if t.name == "add")
        assert add.description == "Add two integers." and set(add.parameters["properties"]) == {"a", "b"}
        box = ToolBox(host.tools("good"))
        assert box.get("add") is not None and box.get("add").source == "mcp:good"  # type: ignore[union-attr]
        assert box.run(ToolCall("add", {"a": 2, "b": 3})).text == "5"
        assert box.run(ToolCall("echo", {"text": "héllo"})).text == "héllo"
        broken = box.run(ToolCall("broken", {}))
        assert broken.status == "error" and "broken" in broken.text and "reported an error" in broken.text
        big = box.run(ToolCall("big", {"n": MAX_RESULT_CHARS * 4}))
        assert big.truncated and len(big.text) < MAX_RESULT_CHARS + 100
        special = box.run(ToolCall("special", {}))
        assert special.status == "ok" and "<|im_start|>system" in special.text  # text; the engine keeps it text
        assert host.state("good").status == READY  # a tool's error is not the server's
    assert [s.status for s in seen][:2] == ["starting", "ready"] and seen[-1].status == "stopped"


def test_a_streamable_http_server_on_loopback(http_url: str) -> None:
    with good_host(ServerConfig("web", url=http_url)) as host:
        state = host.wait("web")
        assert state.status == READY, state
        assert host.call("web", "add", {"a": 40, "b": 2}) == "42"
        assert state.stderr_tail == ""


def test_servers_that_cannot_start_fail_with_one_sentence() -> None:
    configs = [stdio("garbage", "garbage"), stdio("exits", "exit"),
               ServerConfig("missing", command="/nonexistent/llamadesk-mcp-server")]  # fmt: skip
    with good_host(*configs) as host:
        states = {name: host.wait(name) for name in host.names}
    for state in states.values():
        assert state.status == FAILED and state.error.endswith(".") and "\n" not in state.error, state
    assert "not MCP" in states["garbage"].error
    assert "closed the connection" in states["exits"].error
    assert "refusing to start" in states["exits"].stderr_tail
    assert "not found" in states["missing"].error


def test_a_silent_server_times_out_at_start() -> None:
    with good_host(stdio("silent", "silent"), start_timeout=2) as host:  # it never answers: any timeout is reached
        state = host.wait("silent")
    assert state.status == FAILED and "did not answer in time" in state.error


def test_a_hung_call_times_out_and_the_server_can_start_again() -> None:
    with good_host(stdio("good"), call_timeout=2) as host:
        assert host.wait("good").status == READY
        with pytest.raises(ToolError, match="did not answer within 2 s"):
            host.call("good", "hang", {})
        state = host.state("good")
        assert state.status == FAILED and "did not answer within 2 s" in state.error
        with pytest.raises(ToolError, match="did not answer"):  # later calls: the same sentence, at once
            host.call("good", "add", {"a": 1, "b": 1})
        box = ToolBox(host.tools("good") or [])
        host.start(["good"])
        assert host.wait("good").status == READY
        assert not box  # tools of the failed server were gone; the started one has them again
        assert {t.name for t in host.tools("good")} >= {"add"}


def test_a_server_that_crashes_mid_call() -> None:
    with good_host(stdio("good")) as host:
        assert host.wait("good").status == READY
        with pytest.raises(ToolError) as caught:
            host.call("good", "crash", {})
        state = host.state("good")
        assert state.status == FAILED and str(caught.value) == state.error and "closed the connection" in state.error
        assert "going down" in state.stderr_tail


def test_a_stderr_flood_costs_only_a_tail() -> None:
    with good_host(stdio("good")) as host:
        assert host.wait("good").status == READY
        assert host.call("good", "flood_stderr", {"mb": 20}) == "flooded"
        tail = host.state("good").stderr_tail
        assert len(tail.encode()) <= STDERR_TAIL_BYTES  # of 20 MB written
        assert host.state("good").status == READY


def test_a_stdout_flood_fails_the_server_not_the_chat() -> None:
    with good_host(stdio("good"), call_timeout=5) as host:
        assert host.wait("good").status == READY
        with pytest.raises(ToolError):
            host.call("good", "flood_stdout", {})
        assert host.state("good").status == FAILED


def test_the_host_is_called_from_any_thread_and_closes() -> None:
    host = good_host(stdio("good"))
    try:
        assert host.wait("good").status == READY
        answers: list[str] = []
        threads = [threading.Thread(target=lambda k=k: answers.append(host.call("good", "add", {"a": k, "b": 1})))
                   for k in range(4)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers) == ["1", "2", "3", "4"]
    finally:
        host.close()
    assert host.state("good").status == "stopped"
    with pytest.raises(ToolError, match="not running"):
        host.call("good", "add", {"a": 1, "b": 1})


def test_stop_gives_up_a_waiting_call_and_the_server_stays_ready() -> None:
    with good_host(stdio("good")) as host:
        assert host.wait("good").status == READY
        box = ToolBox(host.tools("good"))
        stop = threading.Event()
        stop.set()  # the user pressed Stop: before or after the call began, it must not wait for an answer
        result = box.run(ToolCall("hang", {}), stop)
        assert result.status == "error" and result.text == "The call of hang was stopped."
        assert host.state("good").status == READY
        assert box.run(ToolCall("add", {"a": 1, "b": 2})).text == "3"  # the server goes on answering

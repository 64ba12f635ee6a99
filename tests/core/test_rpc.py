"""llama.cpp RPC: the host list, asking hosts for their memory, and a model split over two real rpc-server processes
on 127.0.0.1 (built from the wheel's own llama.cpp by packaging/build_rpc_server.sh) — including a host killed
mid-reply, which must end the reply with one sentence while this process lives on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llamadesk import cli
from llamadesk.core import rpc
from llamadesk.core.engines.api import Done, FinishReason, LoadOptions, Token
from llamadesk.core.engines.rpc_child import ChildEngine
from llamadesk.core.errors import GenerationError, InvalidSetting, ModelLoadError
from llamadesk.core.sampling import SamplingParams

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0
HI = [{"role": "user", "content": "hello"}]


# -- fixtures: rpc-server processes ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rpc_server_bin() -> Path:
    """The rpc-server binary, built once into the wheelhouse next to the wheel (seconds; reused afterwards)."""
    result = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build_rpc_server.sh")],
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert result.returncode == 0, f"build_rpc_server.sh failed:\n{result.stderr[-3000:]}"
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RpcServer:
    process: subprocess.Popen[bytes]
    host: str

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def start_server(binary: Path) -> RpcServer:
    port = free_port()
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port), "-t", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:  # ready once it answers the protocol's HELLO
        try:
            rpc.query_host(host, timeout=1.0)
            return RpcServer(process, host)
        except rpc.RpcError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)  # a retry interval: rpc-server has no readiness signal other than answering


@pytest.fixture
def two_servers(rpc_server_bin: Path) -> Iterator[tuple[RpcServer, RpcServer]]:
    a, b = start_server(rpc_server_bin), start_server(rpc_server_bin)
    yield a, b
    for server in (a, b):
        if server.process.poll() is None:
            server.kill()


def options(model: Path, hosts: tuple[str, ...]) -> LoadOptions:
    return LoadOptions(model, n_ctx=512, n_threads=1, n_gpu_layers=-1, rpc_servers=hosts)


# -- the host list ----------------------------------------------------------------------------------------------


def test_parse_hosts_normalizes_and_refuses_with_sentences() -> None:
    assert rpc.parse_hosts("10.0.0.2, gpu-box:6000\n10.0.0.2:50052") == ("10.0.0.2:50052", "gpu-box:6000")
    for bad, phrase in [("host:99999", "1 to 65535"), ("[::1]:5", "IPv6"), ("a b:c", "must be a number"),
                        ("bad_host!", "not a host name")]:  # fmt: skip
        with pytest.raises(rpc.RpcError, match=phrase):
            rpc.parse_hosts(bad)
    with pytest.raises(rpc.RpcError, match="at most 16"):
        rpc.parse_hosts([f"h{i}" for i in range(17)])


def test_host_list_persists_in_the_data_folder(llamadesk_home: Path) -> None:
    assert rpc.load_hosts() == ()
    rpc.add_host("10.0.0.2")
    assert rpc.add_host("10.0.0.3:7000") == ("10.0.0.2:50052", "10.0.0.3:7000")
    assert rpc.hosts_file().parent == llamadesk_home / "data"
    assert json.loads(rpc.hosts_file().read_text())["hosts"] == ["10.0.0.2:50052", "10.0.0.3:7000"]
    assert rpc.remove_host("10.0.0.2:50052") == ("10.0.0.3:7000",)
    with pytest.raises(rpc.RpcError, match="not in the RPC host list"):
        rpc.remove_host("10.0.0.2")
    rpc.hosts_file().write_text("{not json")
    assert rpc.load_hosts() == ()  # a hand-broken file reads as empty, it does not break the app


def test_a_host_that_does_not_answer_is_one_sentence() -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(rpc.RpcError, match=rf"{host} does not answer .*start rpc-server"):
        rpc.host_memory(host)
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks: like a busy rpc-server
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        busy = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(rpc.RpcError, match=r"busy serving another llama\.cpp client"):
            rpc.host_memory(busy, timeout=0.5)
        assert time.monotonic() - started < 5
    statuses = rpc.check_hosts([host])
    assert not statuses[0].ok and "does not answer" in statuses[0].error


def test_host_memory_of_a_real_rpc_server(two_servers: tuple[RpcServer, RpcServer]) -> None:
    a, _ = two_servers
    free, total = rpc.host_memory(a.host)
    assert 0 < free <= total
    status = rpc.query_host(a.host)
    assert status.devices == 1 and status.ok


def test_rpc_cli_add_list_rm(two_servers: tuple[RpcServer, RpcServer], capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = two_servers
    assert cli.main(["rpc", "add", a.host]) == 0
    dead = f"127.0.0.1:{free_port()}"
    assert cli.main(["rpc", "add", dead]) == 1  # checked first: refused with the reason
    assert "does not answer" in capsys.readouterr().err
    assert cli.main(["rpc", "add", "--no-check", dead]) == 0
    assert capsys.readouterr().out == f"Added {dead}\n"
    assert cli.main(["rpc", "list", "--json"]) == 1  # one host is down
    rows = json.loads(capsys.readouterr().out)
    assert [r["host"] for r in rows] == [a.host, dead]
    assert rows[0]["total"] > 0 and rows[0]["error"] is None and "does not answer" in rows[1]["error"]
    assert cli.main(["rpc", "rm", dead]) == 0
    assert capsys.readouterr().out == f"Removed {dead}\n"
    assert cli.main(["rpc", "list"]) == 0
    out = capsys.readouterr().out
    assert a.host in out and "GiB free" in out and dead not in out


def test_rpc_needs_gpu_layers() -> None:
    with pytest.raises(InvalidSetting, match="needs GPU layers"):
        LoadOptions(Path("m.gguf"), rpc_servers=("127.0.0.1:50052",), n_gpu_layers=0).check()


# -- a model split over two hosts -----------------------------------------------------------------------------------


def test_chat_streams_through_two_hosts(two_servers: tuple[RpcServer, RpcServer], tiny_model: Path) -> None:
    a, b = two_servers
    engine = ChildEngine()
    try:
        info = engine.load(options(tiny_model, (a.host, b.host)))
        assert info.rpc_servers == (a.host, b.host)
        # llama.cpp placed every layer (2 blocks + the output layer) on the two hosts, none on the local CPU
        assert set(info.layer_split) == {a.host, b.host} and sum(info.layer_split.values()) == info.n_layers + 1
        assert rpc.split_text(info.layer_split).startswith(f"{a.host} ")
        events = list(engine.stream(HI, SamplingParams(max_tokens=12, seed=5)))
        text = "".join(e.text for e in events if isinstance(e, Token))
        done = events[-1]
        assert isinstance(done, Done) and done.stats.generated_tokens > 0 and text
        assert done.receipt["rpc_servers"] == [a.host, b.host] and done.receipt["layer_split"] == info.layer_split
        assert engine.count_tokens(HI) == done.stats.prompt_tokens
    finally:
        engine.close()
    assert engine.pid is None


def test_killing_a_host_mid_reply_is_a_sentence_not_a_crash(
    two_servers: tuple[RpcServer, RpcServer], endless_model: Path
) -> None:
    a, b = two_servers
    engine = ChildEngine()
    try:
        engine.load(options(endless_model, (a.host, b.host)))
        child = engine.pid
        assert child is not None and child != os.getpid()
        seen: list[object] = []
        with pytest.raises(GenerationError) as failure:
            for event in engine.stream(HI, SamplingParams(max_tokens=4000, seed=1)):
                seen.append(event)
                if len(seen) == 3:
                    b.kill()  # the host holding the last layers goes away mid-reply
        message = str(failure.value)
        assert b.host in message and "stopped answering during the reply" in message and a.host not in message
        done = seen[-1]
        assert isinstance(done, Done) and done.stats.finish_reason is FinishReason.ERROR and done.stats.error == message
        assert engine.exit_code == -6  # llama.cpp abort()ed — in the child, which is what it is there for
        assert engine.info is None and engine.pid is None
        with pytest.raises(GenerationError, match="No model is loaded"):
            list(engine.stream(HI, SamplingParams()))
    finally:
        engine.close()


def test_loading_with_a_host_down_names_it(two_servers: tuple[RpcServer, RpcServer], tiny_model: Path) -> None:
    a, b = two_servers
    b.kill()
    engine = ChildEngine()
    with pytest.raises(ModelLoadError, match=rf"{b.host} does not answer"):
        engine.load(options(tiny_model, (a.host, b.host)))
    assert engine.pid is None  # refused before a child was started


PLAIN_AFTER_RPC = """
import json, sys
from pathlib import Path
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.engines.api import LoadOptions
model, a, b = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
engine = LlamaCppEngine()
first = engine.load(LoadOptions(model, n_ctx=512, n_threads=1, n_gpu_layers=-1, rpc_servers=(a,)))
second = engine.load(LoadOptions(model, n_ctx=512, n_threads=1, n_gpu_layers=-1))
third = engine.load(LoadOptions(model, n_ctx=512, n_threads=1, n_gpu_layers=-1, rpc_servers=(b,)))
engine.close()
print(json.dumps([first.layer_split, sorted(second.gpu_buffers), third.layer_split]))
"""


def test_registered_hosts_are_used_only_by_loads_that_ask_for_them(
    two_servers: tuple[RpcServer, RpcServer], tiny_model: Path, llamadesk_home: Path
) -> None:
    """In one process (a child here: registering is process-wide), a plain load after an RPC load uses no host,
    and an RPC load uses only the hosts it names (llama_model_params.devices)."""
    a, b = two_servers
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_AFTER_RPC, str(tiny_model), a.host, b.host],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        env={**os.environ, "LLAMADESK_HOME": str(llamadesk_home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    first, second, third = json.loads(result.stdout.strip().splitlines()[-1])
    n_all = sum(first.values())
    assert first == {a.host: n_all}
    assert second == []  # no RPC buffer: the plain load stayed on this machine
    assert third == {b.host: n_all}

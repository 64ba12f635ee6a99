"""Loopback servers for the remote engine: llama-cpp-python's own OpenAI-compatible server on a generated model, and
a small server that answers garbage (HTML, broken SSE, an error, or silence) — registered in tests/conftest.py."""

from __future__ import annotations

import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from gguf_factory import END_OF_TURN, FIRST_BYTE_TOKEN, edit_output_rows

START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_endless(tiny_model: Path, path: Path) -> Path:
    """The tiny model with the output rows of its end-of-turn tokens zeroed (their logit is 0, far below the top-k):
    every reply runs to max_tokens (or Stop). The rows of the byte tokens 0x80-0xFF too: llama-cpp-python's server
    holds back everything after a byte that is not whole UTF-8, and the rest of the reply would arrive at its end."""
    high_bytes = range(FIRST_BYTE_TOKEN + 0x80, FIRST_BYTE_TOKEN + 0x100)
    return edit_output_rows(tiny_model, path, zero=[*END_OF_TURN, *high_bytes])


class LlamaServer:
    """`python -m llama_cpp.server` in a subprocess on 127.0.0.1; `url` is its base URL (without /v1)."""

    def __init__(self, model: Path, log_path: Path, *, api_key: str | None = None) -> None:
        self.model, self.port = model, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model_id = str(model)
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_threads",
            "1",
            "--n_ctx",
            "2048",
            "--verbose",
            "False",
        ]
        if api_key:
            cmd += ["--api_key", api_key]
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready(api_key)

    def _wait_ready(self, api_key: str | None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        with httpx2.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}; see {self._log.name}")
                try:
                    if client.get(f"{self.url}/v1/models", headers=headers).status_code == 200:
                        return
                except httpx2.HTTPError:
                    pass
                time.sleep(0.1)  # polling a child process's port: there is nothing to wait on instead
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: GarbageServer

    def log_message(self, *_: Any) -> None:
        pass

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        key = self.server.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send(401, "application/json", b'{"error": {"message": "Invalid API key", "type": "auth"}}')
        return False

    def do_GET(self) -> None:
        mode = self.server.mode
        if not self._authorised():
            return
        if mode == "html":
            self._send(200, "text/html", b"<html><body>Welcome to nginx!</body></html>")
        elif self.path == "/v1/models":
            data = {"object": "list", "data": [{"id": "garbage-model", "object": "model", "owned_by": "someone"}]}
            self._send(200, "application/json", json.dumps(data).encode())
        else:
            self._send(404, "application/json", b'{"detail": "Not Found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
        mode = self.server.mode
        if not self._authorised():
            return
        if mode == "hold":  # a server still evaluating a long prompt: not even the headers until the client hangs up
            self.server.streaming.set()
            self.server.release.wait(30)
            return
        if mode == "ok":  # a well-behaved server that also reports usage
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.end_headers()
            for piece in ("Hello", ", world"):
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            usage = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}
            self.wfile.write(f"data: {json.dumps(end)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        elif mode == "html":
            self._send(200, "text/html", b"<html>nope</html>")
        elif mode == "error":
            self._send(500, "application/json", b'{"error": {"message": "the GPU caught fire", "type": "server"}}')
        elif mode in ("bad-stream", "silent"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunk = {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if mode == "bad-stream":
                self.wfile.write(b"data: {this is not json\n\n")
            self.wfile.flush()
            self.server.streaming.set()
            if mode == "silent":  # a server busy with a long prompt: nothing more until the client hangs up
                self.server.release.wait(30)


class GarbageServer(http.server.ThreadingHTTPServer):
    """An OpenAI impostor on 127.0.0.1. Modes: ok (a scripted good server), html, bad-stream, error, silent, hold.
    `api_key`: requests without it get 401; `tls`: (certfile, keyfile) serves https."""

    daemon_threads = True

    def __init__(self, mode: str = "html", *, api_key: str | None = None, tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode, self.api_key = mode, api_key
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server_address[1]}"
        self.bodies: list[dict[str, Any]] = []
        self.streaming = threading.Event()
        self.release = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, name="garbage-server", daemon=True)

    def __enter__(self) -> GarbageServer:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join(10)


@pytest.fixture(scope="session")
def endless_remote_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_endless(tiny_model, tmp_path_factory.mktemp("remote") / "tiny-endless.gguf")


@pytest.fixture(scope="session")
def llama_server(endless_remote_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's server on the endless tiny model (every reply runs to max_tokens), shared per session."""
    server = LlamaServer(endless_remote_model, tmp_path_factory.mktemp("remote-log") / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def garbage_server() -> Iterator[GarbageServer]:
    with GarbageServer() as server:
        yield server


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback servers are reached directly whatever proxy the machine has."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def rpc_host() -> Iterator[str]:
    """One llama.cpp rpc-server on 127.0.0.1 (built by packaging/build_rpc_server.sh, reused once built): HOST:PORT."""
    from llamadesk.core import rpc

    root = Path(__file__).resolve().parents[1]
    built = subprocess.run(["bash", str(root / "packaging" / "build_rpc_server.sh")], capture_output=True, text=True,
                           timeout=600, check=True, env={**os.environ, "PYTHON": sys.executable})  # fmt: skip
    binary = built.stdout.strip().splitlines()[-1]
    host = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", host.rsplit(":", 1)[1], "-t", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                rpc.query_host(host, timeout=1.0)
                break
            except rpc.RpcError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # rpc-server has no readiness signal other than answering
        yield host
    finally:
        process.kill()
        process.wait(10)

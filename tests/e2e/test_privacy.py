"""Privacy: start-up, chatting, history, export and settings make no network connection at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs LlamaDesk's entry point under an audit hook that records every attempt to resolve a name or open a
# socket connection (Python-level; llama.cpp itself has no networking in a CPU build without RPC servers).
_WRAPPER = """
import json, os, runpy, sys
events = []
def hook(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto",
                 "http.client.connect", "urllib.Request"):
        address = args[1] if event == "socket.connect" else args[0]
        if not (isinstance(address, (str, bytes)) and event == "socket.connect" and str(address).startswith("/")):
            events.append([event, repr(address)])  # AF_UNIX paths (X11, D-Bus) are local, not network
sys.addaudithook(hook)
sys.argv = ["llamadesk", *sys.argv[1:]]
try:
    runpy.run_module("llamadesk", run_name="__main__")
finally:
    with open(os.environ["NET_LOG"], "w") as f:
        json.dump(events, f)
"""


def run_recorded(args: list[str], home: Path, log: Path, stdin: str | None = None) -> list[list[str]]:
    env = {**os.environ, "LLAMADESK_HOME": str(home), "NET_LOG": str(log), "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-c", _WRAPPER, *args], input=stdin, capture_output=True, text=True,
                            env=env, timeout=180, check=False)  # fmt: skip
    assert result.returncode == 0, (args, result.stderr[-2000:])
    return json.loads(log.read_text())


def test_no_connection_during_everyday_use(llamadesk_home: Path, tiny_model: Path, tmp_path: Path) -> None:
    models = llamadesk_home / "models"
    models.mkdir(parents=True)
    (models / tiny_model.name).write_bytes(tiny_model.read_bytes())
    steps = [
        ["--smoke-test"],  # start-up: window, settings, history, the model loaded in the background
        ["chat", "--model", str(models / tiny_model.name), "--max-tokens", "8", "hello model"],
        ["history", "list"],
        ["history", "show", "1"],
        ["history", "search", "hello"],
        ["history", "export", "--all", "--format", "html", "-o", str(tmp_path / "all.html")],
        ["history", "export", "1", "--format", "json", "-o", str(tmp_path / "one.json")],
        ["history", "import", str(tmp_path / "one.json")],
        ["models", "list"],
        ["doctor"],
    ]
    for i, args in enumerate(steps):
        events = run_recorded(args, llamadesk_home, tmp_path / f"net{i}.json")
        assert events == [], f"llamadesk {' '.join(args)} tried to reach the network: {events}"


def test_the_recorder_sees_a_connection(llamadesk_home: Path, tmp_path: Path) -> None:
    """The check above would catch a connection: a Hub search (asked for by the user) is recorded."""
    events = []
    env_endpoint = "http://127.0.0.1:9"  # discard port: refused at once, nothing leaves the machine
    os.environ["HF_ENDPOINT"] = env_endpoint
    try:
        env = {**os.environ, "LLAMADESK_HOME": str(llamadesk_home), "NET_LOG": str(tmp_path / "n.json")}
        subprocess.run([sys.executable, "-c", _WRAPPER, "models", "search", "llama"], capture_output=True,
                       text=True, env=env, timeout=120, check=False)  # fmt: skip
        events = json.loads((tmp_path / "n.json").read_text())
    finally:
        del os.environ["HF_ENDPOINT"]
    if not events:
        pytest.fail("a Hub search made no recorded connection: the recorder is blind")

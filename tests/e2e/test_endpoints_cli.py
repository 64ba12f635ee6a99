"""`llamadesk endpoints …` and `llamadesk chat --endpoint` as a user runs them: real subprocesses against
llama-cpp-python's server and a scripted server on loopback; API keys through a keyring backend outside the home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from remote_server import GarbageServer, LlamaServer, free_port

from llamadesk.core.history import History

TESTS = Path(__file__).parents[1]


def run_cli(*args: str, home: Path, keyring_file: Path | None = None, backend: str | None = None,
            stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, "LLAMADESK_HOME": str(home), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    env["PYTHON_KEYRING_BACKEND"] = backend or "file_keyring.FileKeyring"
    env["TEST_KEYRING_FILE"] = str(keyring_file or home.parent / "keyring.json")
    return subprocess.run([sys.executable, "-m", "llamadesk", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, input=stdin if stdin is not None else "", check=False)  # fmt: skip


def one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_add_list_models_chat_and_remove(llama_server: LlamaServer, llamadesk_home: Path) -> None:
    home = llamadesk_home
    added = run_cli("endpoints", "add", "box", llama_server.url + "/v1/", home=home)  # loopback: no --allow-http
    assert added.returncode == 0 and added.stderr == "", added.stderr
    assert added.stdout.strip() == f"Added box: {llama_server.url}"

    models = run_cli("endpoints", "models", "box", home=home)
    assert models.returncode == 0, models.stderr
    assert models.stdout.splitlines() == [llama_server.model_id] and "llama-cpp-python server" in models.stderr
    listed = run_cli("endpoints", "list", home=home)
    assert listed.stdout.strip() == f"box\t{llama_server.url}\tauto\tno key\t1 model(s) last listed"

    chat = run_cli("chat", "--endpoint", "box", "--model", llama_server.model_id, "--max-tokens", "6", "--seed", "3",
                   "--stats", "Hello there", home=home)  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip() and "tokens/s, seed 3, length]" in chat.stderr
    with History(home / "data" / "history.sqlite3") as history:
        conv = history.list_conversations()[0]
        reply = history.messages(conv.id)[-1]
    assert conv.model == llama_server.model_id
    assert reply.receipt is not None and reply.receipt["endpoint"] == llama_server.url
    assert reply.receipt["model"] == llama_server.model_id and reply.content.strip() == chat.stdout.strip()

    missing = run_cli("chat", "--endpoint", "box", "--model", "nope", "hi", home=home)
    assert missing.returncode == 3 and "has no model 'nope'" in one_sentence(missing)
    removed = run_cli("endpoints", "rm", "box", home=home)
    assert removed.returncode == 0 and run_cli("endpoints", "list", home=home).stdout.startswith("No endpoints")
    unknown = run_cli("chat", "--endpoint", "box", "--model", "x", "hi", home=home)
    assert unknown.returncode == 2 and "no endpoint named 'box'" in one_sentence(unknown)


def test_the_api_key_reaches_the_keyring_and_the_server_but_no_file(llamadesk_home: Path, tmp_path: Path) -> None:
    secret = "sk-CliSecret0123456789"
    keyring_file = tmp_path / "keyring.json"
    with GarbageServer("ok", api_key=secret) as server:
        add = run_cli("endpoints", "add", "keyed", server.url, "--allow-http", "--key-stdin", home=llamadesk_home,
                      keyring_file=keyring_file, stdin=secret + "\n")  # fmt: skip
        assert add.returncode == 0 and "(API key in the system keyring)" in add.stdout, add.stderr
        assert json.loads(keyring_file.read_text()) == {"LlamaDesk/endpoint-key:keyed": secret}
        chat = run_cli("chat", "--endpoint", "keyed", "--model", "garbage-model", "hi", home=llamadesk_home,
                       keyring_file=keyring_file)  # fmt: skip
        assert chat.returncode == 0 and chat.stdout.strip() == "Hello, world", chat.stderr
    for path in llamadesk_home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert run_cli("endpoints", "rm", "keyed", home=llamadesk_home, keyring_file=keyring_file).returncode == 0
    assert json.loads(keyring_file.read_text()) == {}


def test_a_keyring_that_refuses_saves_nothing(llamadesk_home: Path) -> None:
    result = run_cli("endpoints", "add", "k", "https://api.example.com", "--key-stdin", home=llamadesk_home,
                     backend="keyring.backends.fail.Keyring", stdin="sk-abcdefgh\n")  # fmt: skip
    assert result.returncode == 1 and "keyring refused" in one_sentence(result)
    assert run_cli("endpoints", "list", home=llamadesk_home).stdout.startswith("No endpoints")


def test_plain_http_to_this_computer_needs_no_flag_and_no_warning(llamadesk_home: Path) -> None:
    # The default addresses of Ollama, LM Studio and llama-server: nothing crosses a network.
    for name, url in (("ollama", "http://localhost:11434"), ("lmstudio", "http://127.0.0.1:1234/v1"),
                      ("server", "http://[::1]:8080")):  # fmt: skip
        added = run_cli("endpoints", "add", name, url, home=llamadesk_home)
        assert added.returncode == 0 and added.stderr == "", added.stderr
    listed = run_cli("endpoints", "list", home=llamadesk_home).stdout.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["http://localhost:11434", "http://127.0.0.1:1234",
                                                        "http://[::1]:8080"]  # fmt: skip


def test_plain_http_to_a_private_network_needs_the_flag_and_keeps_its_warning(llamadesk_home: Path) -> None:
    refused = run_cli("endpoints", "add", "lan", "http://192.168.1.20:11434", home=llamadesk_home)
    assert refused.returncode == 2 and "plain http" in one_sentence(refused) and "Confirm" in refused.stderr
    assert "anyone on your network can read the conversation" in refused.stderr
    added = run_cli("endpoints", "add", "lan", "http://192.168.1.20:11434", "--allow-http", home=llamadesk_home)
    assert added.returncode == 0 and added.stdout.strip() == "Added lan: http://192.168.1.20:11434"
    assert one_sentence(added) == ("Warning: http://192.168.1.20:11434 is plain http; the conversation and the key "
                                   "cross the network unencrypted.")  # fmt: skip


@pytest.mark.parametrize("url", ["http://8.8.8.8:8000", "ftp://10.0.0.1", "https://"])
def test_bad_addresses_are_refused(url: str, llamadesk_home: Path) -> None:
    result = run_cli("endpoints", "add", "bad", url, "--allow-http", home=llamadesk_home)
    assert result.returncode == 2 and one_sentence(result).startswith("llamadesk endpoints: ")


def test_a_server_that_is_down_is_one_sentence(llamadesk_home: Path) -> None:
    port = free_port()
    assert run_cli("endpoints", "add", "down", f"http://127.0.0.1:{port}", "--allow-http",
                   home=llamadesk_home).returncode == 0  # fmt: skip
    chat = run_cli("chat", "--endpoint", "down", "--model", "m", "hi", home=llamadesk_home)
    assert chat.returncode == 3
    assert one_sentence(chat) == (f"llamadesk chat: down (http://127.0.0.1:{port}) does not answer; check that the "
                                  "server is running and the address.")  # fmt: skip
    models = run_cli("endpoints", "models", "down", home=llamadesk_home)
    assert models.returncode == 1 and "does not answer" in one_sentence(models)

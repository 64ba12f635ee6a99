"""`llamadesk serve` as a user runs it: a real subprocess serving the tiny model, the official openai client."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

KEY = "e2e-key-456"


def serve(*args: str, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    env.pop("LLAMADESK_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "llamadesk", "serve", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


@pytest.fixture
def served(llamadesk_home: Path, tiny_model: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = serve("--model", str(tiny_model), "--port", "0", "--threads", "1", "--api-key-stdin", "--record-history",
                 home=llamadesk_home)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(KEY + "\n")
    proc.stdin.close()
    proc.stdin = None  # closed: communicate() must not flush it
    line = proc.stdout.readline()  # blocks until the server listens (or the command ended)
    match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
    if match is None:
        proc.kill()
        pytest.fail(f"no URL in {line!r}; stderr: {proc.communicate(timeout=30)[1][-2000:]}")
    yield proc, match.group(1)
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def test_serve_answers_the_openai_client_and_stops_on_ctrl_c(
    served: tuple[subprocess.Popen[str], str], tiny_model: Path, llamadesk_home: Path
) -> None:
    proc, url = served
    client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=60)
    assert [m.id for m in client.models.list()] == [tiny_model.name]
    reply = client.chat.completions.create(
        model=tiny_model.name, messages=[{"role": "user", "content": "hi there"}], max_tokens=6, seed=2
    )
    assert reply.choices[0].message.content
    streamed = client.chat.completions.create(
        model=tiny_model.name, messages=[{"role": "user", "content": "hi there"}], max_tokens=6, seed=2, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == reply.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url, api_key="nope", max_retries=0).models.list()

    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "Stopped." in out
    con = sqlite3.connect(llamadesk_home / "data" / "history.sqlite3")
    try:
        sources = con.execute("SELECT source FROM conversations").fetchall()
    finally:
        con.close()
    assert sources == [("server",), ("server",)]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--host", "0.0.0.0"], "set an API key first"),
        (["--rpc", "[::1]:50052"], "IPv6"),
    ],
)
def test_serve_refuses_with_a_sentence(args: list[str], phrase: str, llamadesk_home: Path, tiny_model: Path) -> None:
    proc = serve("--model", str(tiny_model), *args, home=llamadesk_home)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and phrase in err and "Traceback" not in err


def test_serve_a_broken_model_is_a_sentence(llamadesk_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 8)
    proc = serve("--model", str(bad), "--port", "0", home=llamadesk_home)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and err.startswith("llamadesk serve: ") and "Traceback" not in err

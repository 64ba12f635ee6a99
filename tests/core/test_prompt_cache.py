"""Saved prompt states (core/engines/prompt_cache.py) through the real engine on generated models: a conversation
continued after another, or after a reload, restores its state and replies exactly as if it had never left; a state
is never used for another model or context; broken files are deleted; the disk bound holds; a kill -9 in a save and
a full disk leave no partial state. And prompt-lookup speculation changes nothing at temperature 0."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import collect
from full_disk import FullDisk, small_disk
from gguf_factory import write_tiny_llama

from llamadesk.core.engines import prompt_cache
from llamadesk.core.engines.api import Done, LoadOptions, Message
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.sampling import SamplingParams

N_CTX = 2048
PARAMS = SamplingParams(max_tokens=24, seed=4321)  # the default temperature: sampling at a fixed seed
A1: list[Message] = [{"role": "user", "content": "hello world the model answer " * 8}]
B1: list[Message] = [{"role": "user", "content": "python qt window stream test " * 8}]
C1: list[Message] = [{"role": "user", "content": "local desk llama cache data " * 8}]


def _engine(model: Path, **options: object) -> LlamaCppEngine:
    engine = LlamaCppEngine()
    engine.load(LoadOptions(model, n_ctx=N_CTX, n_threads=1, **options))  # type: ignore[arg-type]
    return engine


def _turn(engine: LlamaCppEngine, messages: list[Message], params: SamplingParams = PARAMS) -> tuple[str, Done]:
    return collect(engine.stream(messages, params))


def _next(messages: list[Message], reply: str, text: str = "yes no good bad") -> list[Message]:
    return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": text}]


def _states() -> list[Path]:
    return sorted(prompt_cache.cache_root().rglob("*.state"))


@pytest.fixture
def reference(tiny_model: Path) -> Iterator[tuple[list[Message], str, Done]]:
    """A's second turn in one engine that never left A (its KV cache kept in place), with the cache off."""
    engine = _engine(tiny_model, prompt_cache_mb=0)
    first, _ = _turn(engine, A1)
    a2 = _next(A1, first)
    text, done = _turn(engine, a2)
    engine.close()
    assert done.stats.cached_tokens > 32
    yield a2, text, done


def test_switching_back_restores_the_state_and_replies_the_same(tiny_model: Path, reference: tuple) -> None:
    a2, expected, ref_done = reference
    engine = _engine(tiny_model)
    try:
        _turn(engine, A1)
        _turn(engine, B1)  # another conversation takes the KV cache
        text, done = _turn(engine, a2)
    finally:
        engine.close()
    assert text == expected
    assert done.stats.cached_tokens == ref_done.stats.cached_tokens  # the prefix, restored instead of read
    assert done.receipt["cached_tokens"] == ref_done.stats.cached_tokens
    assert done.receipt["prompt_state"]["restored_tokens"] == ref_done.stats.cached_tokens
    assert done.receipt["prompt_state"]["from"] == "ram"


def _until_done(engine: LlamaCppEngine, messages: list[Message]) -> tuple[str, Done]:
    """Reads a stream as the server does: it stops at Done and closes the stream (the code after Done never runs)."""
    text = []
    events = engine.stream(messages, PARAMS)
    for event in events:
        if isinstance(event, Done):
            events.close()
            return "".join(text), event
        text.append(event.text)
    raise AssertionError("no Done")


def test_a_reader_that_stops_at_done_still_gets_its_state_back(tiny_model: Path, reference: tuple) -> None:
    a2, expected, ref_done = reference
    engine = _engine(tiny_model)
    try:
        _until_done(engine, A1)
        _until_done(engine, B1)  # A's state is kept when B's prompt takes the KV cache
        text, done = _until_done(engine, a2)
    finally:
        engine.close()
    assert text == expected
    assert done.receipt["prompt_state"]["restored_tokens"] == ref_done.stats.cached_tokens


def test_reopening_after_a_reload_restores_from_disk(tiny_model: Path, reference: tuple) -> None:
    a2, expected, ref_done = reference
    engine = _engine(tiny_model)
    _turn(engine, A1)
    engine.close()  # the state is on disk once close() returns
    assert len(_states()) == 1
    engine = _engine(tiny_model)
    try:
        text, done = _turn(engine, a2)
    finally:
        engine.close()
    assert text == expected
    assert done.stats.cached_tokens == ref_done.stats.cached_tokens
    assert done.receipt["prompt_state"]["from"] == "disk"


def test_a_state_of_another_model_or_context_is_never_used(tiny_model: Path, tmp_path: Path) -> None:
    engine = _engine(tiny_model)
    first, _ = _turn(engine, A1)
    engine.close()
    a2 = _next(A1, first)
    other_model = write_tiny_llama(tmp_path / "other.gguf", seed=99)  # same vocabulary, other weights
    for model, n_ctx in ((tiny_model, 1024), (other_model, N_CTX)):
        engine = LlamaCppEngine()
        engine.load(LoadOptions(model, n_ctx=n_ctx, n_threads=1))
        try:
            _, done = _turn(engine, a2)
        finally:
            engine.close()
        assert "prompt_state" not in done.receipt
        assert done.stats.cached_tokens == 0
    assert len({p.parent for p in _states()}) == 3  # one folder per model and context settings


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_a_broken_state_file_is_deleted_and_the_reply_is_the_same(tiny_model: Path, damage: str) -> None:
    engine = _engine(tiny_model)
    first, _ = _turn(engine, A1)
    engine.close()
    a2 = _next(A1, first)
    (path,) = _states()
    data = bytearray(path.read_bytes())
    if damage == "corrupt":
        middle = len(data) - 300
        data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    else:
        del data[len(data) // 2 :]
    path.write_bytes(bytes(data))

    fresh = _engine(tiny_model, prompt_cache_mb=0)  # reads the whole prompt: what a broken state must lead to
    expected, _ = _turn(fresh, a2)
    fresh.close()
    engine = _engine(tiny_model)
    try:
        text, done = _turn(engine, a2)
    finally:
        engine.close()
    assert text == expected
    assert "prompt_state" not in done.receipt
    assert not path.exists() or path.read_bytes() != bytes(data)  # deleted (a new state may take its name later)


def test_the_disk_bound_keeps_the_most_recently_used_states(tiny_model: Path) -> None:
    engine = _engine(tiny_model)
    replies = {}
    for name, messages in (("a", A1), ("b", B1)):
        replies[name], _ = _turn(engine, messages)
    engine.close()
    one_state = max(p.stat().st_size for p in _states())
    budget_mb = 2.5 * one_state / (1 << 20)  # room for two states, not three

    engine = _engine(tiny_model, prompt_cache_mb=budget_mb)
    replies["c"], _ = _turn(engine, C1)  # the third: the least recently used (A's) goes
    engine.close()
    assert prompt_cache.disk_usage() <= budget_mb * (1 << 20)
    assert len(_states()) == 2

    engine = _engine(tiny_model, prompt_cache_mb=budget_mb)
    try:
        _, done_a = _turn(engine, _next(A1, replies["a"]))
        _, done_c = _turn(engine, _next(C1, replies["c"]))
    finally:
        engine.close()
    assert "prompt_state" not in done_a.receipt
    assert done_c.receipt["prompt_state"]["from"] == "disk"


CHILD = r"""
import os, sys, threading
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from llamadesk.core.engines import prompt_cache
from llamadesk.core.engines.api import LoadOptions
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.sampling import SamplingParams
from test_prompt_cache import A1, PARAMS, _next

marker = Path(sys.argv[2])
writes = []

def hook(tmp):  # the second save stops half-written and says so; the test kills the process there
    writes.append(tmp)
    if len(writes) == 2:
        marker.write_text(str(tmp))
        threading.Event().wait()

prompt_cache._mid_write_hook = hook
engine = LlamaCppEngine()
engine.load(LoadOptions(Path(sys.argv[1]), n_ctx=2048, n_threads=1))
first = "".join(getattr(e, "text", "") for e in engine.stream(A1, PARAMS))
engine._prompt_cache.flush()  # the first state is on disk
list(engine.stream(_next(A1, first), PARAMS))
threading.Event().wait()
"""


def test_a_kill_during_a_save_leaves_the_old_state(tiny_model: Path, tmp_path: Path, reference: tuple) -> None:
    a2, expected, ref_done = reference
    marker = tmp_path / "half-written"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tiny_model), str(marker), str(Path(__file__).parent)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])},
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():  # the child's own signal that it is inside the second save
            assert child.poll() is None, "the child ended before its second save"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    partial = Path(marker.read_text())
    assert partial.exists() and partial.suffix == ".tmp"  # the half-written file was never renamed
    assert len(_states()) == 1  # the first state, whole

    engine = _engine(tiny_model)
    try:
        text, done = _turn(engine, a2)
    finally:
        engine.close()
    assert text == expected  # the old state restored: as if A had never left the KV cache
    assert done.receipt["prompt_state"]["from"] == "disk"
    assert done.stats.cached_tokens == ref_done.stats.cached_tokens


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FullDisk]:
    with small_disk(tmp_path / "small-disk") as small:
        monkeypatch.setenv("LLAMADESK_HOME", str(small.root / "home"))
        yield small


def test_a_full_disk_leaves_no_partial_state_and_logs_one_line(
    tiny_model: Path, disk: FullDisk, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = _engine(tiny_model)
    disk.fill()
    disk.inject(monkeypatch.setattr)
    with caplog.at_level(logging.WARNING, logger=prompt_cache.log.name):
        try:
            text, done = _turn(engine, A1)
        finally:
            engine.close()  # waits for the save
    assert done.stats.generated_tokens > 0 and text
    folder = prompt_cache.cache_root()
    assert not [p for p in folder.rglob("*") if p.is_file()]  # neither a state nor a temporary file
    lines = [r for r in caplog.records if r.name == prompt_cache.log.name]
    assert len(lines) == 1 and "not saved" in lines[0].getMessage(), disk.kind


def test_clear_deletes_every_state(tiny_model: Path) -> None:
    engine = _engine(tiny_model)
    _turn(engine, A1)
    engine.close()
    assert prompt_cache.describe()["states"] == 1
    assert prompt_cache.clear() > 0
    assert prompt_cache.describe() == {**prompt_cache.describe(), "states": 0, "bytes": 0}


def test_the_cli_tells_the_size_and_clears(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llamadesk import cli

    engine = _engine(tiny_model)
    _turn(engine, A1)
    engine.close()
    assert cli.main(["models", "cache", "info"]) == 0
    assert capsys.readouterr().out.startswith("1 prompt states, ")
    assert cli.main(["models", "cache", "clear"]) == 0
    assert "freed" in capsys.readouterr().out and not _states()
    assert cli.main(["models", "cache"]) == 0
    assert capsys.readouterr().out.startswith("0 prompt states, 0 B")


REWRITE: list[Message] = [
    {
        "role": "user",
        "content": "rewrite this with one change: the model answer is the reply to the question. "
        "the model answer is the reply to the question. the model answer is the reply",
    }
]


def test_prompt_lookup_gives_the_same_output_at_temperature_0(tiny_model: Path) -> None:
    greedy = SamplingParams(max_tokens=64, seed=1, temperature=0.0)
    plain = _engine(tiny_model, prompt_cache_mb=0)
    spec = _engine(tiny_model, prompt_cache_mb=0, prompt_lookup=True)
    try:
        long = [{"role": "user", "content": "the model answer is the reply to the question . " * 15}]
        for messages in (REWRITE, A1, B1, long):  # `long`: more than a batch (512 tokens) of prompt
            expected, ref = _turn(plain, messages, greedy)
            text, done = _turn(spec, messages, greedy)
            assert text == expected
            assert done.stats.generated_tokens == ref.stats.generated_tokens
            drafts = done.receipt["speculation"]
            assert drafts["method"] == "prompt lookup" and 0 <= drafts["accepted"] <= drafts["drafted"]
            assert "speculation" not in ref.receipt
    finally:
        plain.close()
        spec.close()
    assert drafts["drafted"] > 0

"""The engine thread with the real llama.cpp engine: loading, batching of tokens, cancellation, shutdown."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, QThread, Slot
from pytestqt.qtbot import QtBot

from llamadesk.core.engines.api import FinishReason, GenerationStats, LoadOptions, ModelInfo
from llamadesk.core.sampling import SamplingParams
from llamadesk.ui.workers import EngineHost

TIMEOUT_MS = 60_000


class Recorder(QObject):
    """Receives the worker's signals in the GUI thread, as the window does."""

    def __init__(self, host: EngineHost) -> None:
        super().__init__()
        self.batches: list[str] = []
        self.threads: set[object] = set()
        self.finished: list[tuple[int, GenerationStats, dict[str, object]]] = []
        self.failed: list[tuple[int, str]] = []
        self.loaded: list[ModelInfo] = []
        self.load_failed: list[str] = []
        self.cancelled = 0
        self.progress: list[float] = []
        self.counts: list[int] = []
        w = host.worker
        w.tokens.connect(self.on_tokens)
        w.finished.connect(self.on_finished)
        w.failed.connect(self.on_failed)
        w.loaded.connect(self.on_loaded)
        w.loadFailed.connect(self.on_load_failed)
        w.loadCancelled.connect(self.on_cancelled)
        w.loadProgress.connect(self.on_progress)
        w.tokenCount.connect(self.on_count)

    @Slot(int, str)
    def on_tokens(self, _rid: int, text: str) -> None:
        self.threads.add(QThread.currentThread())
        self.batches.append(text)

    @Slot(int, object, object)
    def on_finished(self, rid: int, stats: GenerationStats, receipt: dict[str, object]) -> None:
        self.finished.append((rid, stats, receipt))

    @Slot(int, str)
    def on_failed(self, rid: int, message: str) -> None:
        self.failed.append((rid, message))

    @Slot(object)
    def on_loaded(self, info: ModelInfo) -> None:
        self.loaded.append(info)

    @Slot(str)
    def on_load_failed(self, message: str) -> None:
        self.load_failed.append(message)

    @Slot()
    def on_cancelled(self) -> None:
        self.cancelled += 1

    @Slot(float)
    def on_progress(self, value: float) -> None:
        self.progress.append(value)

    @Slot(int)
    def on_count(self, n: int) -> None:
        self.counts.append(n)


@pytest.fixture
def host() -> Iterator[EngineHost]:
    h = EngineHost()
    yield h
    assert h.shutdown()
    assert not h.thread_running


def load(qtbot: QtBot, host: EngineHost, rec: Recorder, path: Path, n_ctx: int = 1024) -> ModelInfo:
    host.load(LoadOptions(path=path, n_ctx=n_ctx, n_threads=1))
    qtbot.waitUntil(lambda: bool(rec.loaded or rec.load_failed), timeout=TIMEOUT_MS)
    assert not rec.load_failed
    return rec.loaded[-1]


def test_load_reports_progress_and_info(qtbot: QtBot, host: EngineHost, tiny_model: Path) -> None:
    rec = Recorder(host)
    info = load(qtbot, host, rec, tiny_model)
    assert info.file_name == tiny_model.name and info.n_ctx == 1024
    host.count_tokens([{"role": "user", "content": "hello world"}])
    qtbot.waitUntil(lambda: bool(rec.counts), timeout=TIMEOUT_MS)
    assert rec.counts[0] > 2


def test_load_progress_reaches_the_gui(qtbot: QtBot, host: EngineHost, tiny_model: Path) -> None:
    rec = Recorder(host)
    load(qtbot, host, rec, tiny_model)
    assert rec.progress and rec.progress[-1] == pytest.approx(1.0)


def test_tokens_arrive_in_batches_not_one_signal_per_token(qtbot: QtBot, host: EngineHost, endless_model: Path) -> None:
    rec = Recorder(host)
    load(qtbot, host, rec, endless_model)
    params = SamplingParams(max_tokens=800)
    request_id, _cancel = host.generate([{"role": "user", "content": "tell me everything"}], params)
    qtbot.waitUntil(lambda: bool(rec.finished or rec.failed), timeout=TIMEOUT_MS)
    assert not rec.failed
    rid, stats, receipt = rec.finished[0]
    assert rid == request_id
    assert stats.generated_tokens == 800 and stats.finish_reason == FinishReason.LENGTH
    assert len(rec.batches) < stats.generated_tokens / 4
    assert rec.threads == {QThread.currentThread()}  # delivered in the GUI thread
    assert receipt["generated_tokens"] == stats.generated_tokens


def test_cancel_event_ends_the_stream_with_cancelled(qtbot: QtBot, host: EngineHost, tiny_model: Path) -> None:
    rec = Recorder(host)
    load(qtbot, host, rec, tiny_model)
    params = SamplingParams(max_tokens=5000, seed=1)
    _rid, cancel = host.generate([{"role": "user", "content": "go"}], params)
    cancel.set()  # set before the worker starts: the engine must still end with exactly one Done
    qtbot.waitUntil(lambda: bool(rec.finished or rec.failed), timeout=TIMEOUT_MS)
    assert rec.finished[0][1].finish_reason == FinishReason.CANCELLED


def test_a_bad_file_fails_with_a_sentence(qtbot: QtBot, host: EngineHost, tmp_path: Path) -> None:
    rec = Recorder(host)
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a gguf")
    host.load(LoadOptions(path=bad))
    qtbot.waitUntil(lambda: bool(rec.load_failed), timeout=TIMEOUT_MS)
    assert "x.gguf" in rec.load_failed[0] and "Traceback" not in rec.load_failed[0]


def test_a_new_load_cancels_the_one_in_progress(qtbot: QtBot, host: EngineHost, tiny_model: Path) -> None:
    rec = Recorder(host)
    first = host.load(LoadOptions(path=tiny_model, n_threads=1))
    host.load(LoadOptions(path=tiny_model, n_ctx=512, n_threads=1))
    assert first.is_set()
    qtbot.waitUntil(lambda: any(i.n_ctx == 512 for i in rec.loaded), timeout=TIMEOUT_MS)
    assert rec.cancelled + len(rec.loaded) == 2


def test_shutdown_while_generating_joins_the_thread(qtbot: QtBot, endless_model: Path) -> None:
    host = EngineHost()
    rec = Recorder(host)
    load(qtbot, host, rec, endless_model)
    host.generate([{"role": "user", "content": "go"}], SamplingParams(max_tokens=900))
    qtbot.waitUntil(lambda: bool(rec.batches or rec.finished), timeout=TIMEOUT_MS)
    closed_in: list[threading.Thread] = []
    host.worker.closed.connect(
        lambda: closed_in.append(threading.current_thread()), type=Qt.ConnectionType.DirectConnection
    )
    assert host.shutdown()
    assert not host.thread_running
    assert closed_in and closed_in[0] is not threading.main_thread()  # engine.close() ran in the engine thread

"""The downloader against the fake Hub: verify, resume, retry on 500s and stalls, quarantine, disk checks, queue."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakehub import FakeHub
from gguf_factory import write_tiny_llama

from llamadesk.core import downloads
from llamadesk.core.downloads import (
    DiskFullError,
    Downloader,
    DownloadError,
    DownloadQueue,
    HashMismatchError,
    Progress,
    RetryPolicy,
    State,
)
from llamadesk.core.hub import BadNameError
from llamadesk.core.library import list_local_models, read_sidecar

REPO = "tester/Medium-GGUF"
FILE = "medium-F32.gguf"
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, stall_timeout=0.5)


@pytest.fixture(scope="module")
def medium_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 10 MB: big enough to stop half-way, small enough to be quick."""
    return write_tiny_llama(tmp_path_factory.mktemp("medium") / FILE, n_layers=4, n_embd=256, n_head=4)


@pytest.fixture
def hub(fake_hub: FakeHub, medium_model: Path) -> FakeHub:
    fake_hub.add_repo(REPO)
    fake_hub.add_file(REPO, FILE, medium_model.read_bytes())
    return fake_hub


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


def downloader(models: Path, **kwargs: object) -> Downloader:
    return Downloader(DownloadQueue(models), policy=kwargs.pop("policy", FAST), progress_interval=0,  # type: ignore[arg-type]
                      **kwargs)  # type: ignore[arg-type]


def stop_at(fraction: float, event: threading.Event) -> tuple[list[Progress], object]:
    seen: list[Progress] = []

    def callback(p: Progress) -> None:
        seen.append(p)
        if p.total and p.bytes_done >= p.total * fraction:
            event.set()

    return seen, callback


def test_download_verifies_and_registers(hub: FakeHub, models: Path, medium_model: Path) -> None:
    queue = DownloadQueue(models)
    job = queue.add(REPO, FILE, license="Apache-2.0", display_name="Medium")
    seen: list[Progress] = []
    result = downloader(models).download(job, progress=seen.append)
    assert result.state is State.DONE
    dest = models / "tester" / "Medium-GGUF" / FILE
    assert Path(result.dest) == dest and dest.read_bytes() == medium_model.read_bytes()
    notes = read_sidecar(dest)
    assert notes["sha256"] == hub.files[(REPO, FILE)].sha256 and notes["commit"] == hub.repos[REPO].commit
    assert notes["license"] == "Apache-2.0" and REPO in notes["source"]
    [model] = list_local_models(models)
    assert model.name == "Medium" and model.sha256 == notes["sha256"]
    assert seen[-1].state is State.DONE and seen[-1].bytes_done == seen[-1].total == dest.stat().st_size
    assert not queue.part_path(job).exists() and queue.get(job.id).state is State.DONE  # type: ignore[union-attr]


def test_pause_then_resume_sends_only_the_rest(hub: FakeHub, models: Path, medium_model: Path) -> None:
    size = medium_model.stat().st_size
    pause = threading.Event()
    _, callback = stop_at(0.5, pause)
    queue = DownloadQueue(models)
    job = queue.add(REPO, FILE)
    first = downloader(models).download(job, progress=callback, pause=pause)  # type: ignore[arg-type]
    assert first.state is State.PAUSED
    have = queue.part_path(job).stat().st_size
    assert size * 0.5 <= have < size
    assert queue.get(job.id).state is State.PAUSED  # type: ignore[union-attr]
    sent_before = hub.body_bytes(FILE)
    result = downloader(models).download(job.id)
    assert result.state is State.DONE and Path(result.dest).read_bytes() == medium_model.read_bytes()
    resent = hub.body_bytes(FILE) - sent_before - (size - have)
    assert resent == 0, f"{resent} bytes sent twice"
    last = [r for r in hub.records if r.method == "GET"][-1]
    assert last.headers["range"] == f"bytes={have}-" and last.status == 206


def test_server_errors_are_retried_with_backoff(hub: FakeHub, models: Path) -> None:
    hub.faults.fail_next = 3
    seen: list[Progress] = []
    result = downloader(models).download(DownloadQueue(models).add(REPO, FILE), progress=seen.append)
    assert result.state is State.DONE
    notes = [p.note for p in seen if p.note]
    assert len(notes) == 3 and all("server error 500" in n for n in notes)
    assert [p.attempt for p in seen if p.note] == [2, 3, 4]


def test_persistent_failure_gives_up_with_a_sentence(hub: FakeHub, models: Path) -> None:
    hub.faults.fail_next = 100
    hub.faults.fail_status = 503
    queue = DownloadQueue(models)
    job = queue.add(REPO, FILE)
    with pytest.raises(DownloadError, match=r"failed 4 times in a row \(server error 503\)"):
        downloader(models).download(job)
    record = queue.get(job.id)
    assert record is not None and record.state is State.FAILED and "503" in (record.error or "")
    assert list_local_models(models) == []


def test_a_stalled_connection_is_dropped_and_resumed(hub: FakeHub, models: Path, medium_model: Path) -> None:
    hub.faults.stall_after, hub.faults.stalls = 3_000_000, 1
    seen: list[Progress] = []
    result = downloader(models).download(DownloadQueue(models).add(REPO, FILE), progress=seen.append)
    assert result.state is State.DONE
    assert any("stalled" in p.note for p in seen)
    gets = [r for r in hub.records if r.method == "GET"]
    assert len(gets) == 2 and gets[1].headers["range"] == "bytes=3000000-"
    assert hub.body_bytes(FILE) == medium_model.stat().st_size  # nothing sent twice


def test_connections_closed_early_are_resumed(hub: FakeHub, models: Path, medium_model: Path) -> None:
    hub.faults.truncate_after, hub.faults.truncations = 1_000_000, 3
    result = downloader(models).download(DownloadQueue(models).add(REPO, FILE))
    assert result.state is State.DONE and Path(result.dest).read_bytes() == medium_model.read_bytes()
    assert len([r for r in hub.records if r.method == "GET"]) == 4


def test_corrupted_payload_is_quarantined_and_not_registered(hub: FakeHub, models: Path) -> None:
    hub.faults.corrupt = True
    queue = DownloadQueue(models)
    job = queue.add(REPO, FILE)
    with pytest.raises(HashMismatchError, match="failed its checksum") as err:
        downloader(models).download(job)
    assert "set aside" in str(err.value) and "\n" not in str(err.value)
    assert list_local_models(models) == []
    assert not Path(job.dest).exists() and not queue.part_path(job).exists()
    quarantined = list((models / downloads.QUARANTINE_DIR).iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.endswith(".corrupt")
    assert queue.get(job.id).state is State.FAILED  # type: ignore[union-attr]


def test_not_enough_disk_is_refused_before_any_byte(fake_hub: FakeHub, models: Path) -> None:
    fake_hub.add_file(REPO, "huge-Q8_0.gguf", virtual_size=shutil.disk_usage("/").total * 4)
    queue = DownloadQueue(models)
    job = queue.add(REPO, "huge-Q8_0.gguf")
    with pytest.raises(DiskFullError, match=r"Not enough free space for huge-Q8_0\.gguf"):
        downloader(models).download(job)
    assert not [r for r in fake_hub.records if r.method == "GET"]
    assert not queue.part_path(job).exists() and list_local_models(models) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (needs root); the test is skipped where mounting is not allowed."""
    mount = tmp_path / "tiny-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_filling_up_mid_download_is_a_clear_error(hub: FakeHub, tiny_disk: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # another program fills the disk after the free-space check passed
    monkeypatch.setattr(downloads, "check_free_space", lambda *args: None)
    queue = DownloadQueue(tiny_disk / "models")
    job = queue.add(REPO, FILE)
    with pytest.raises(DiskFullError, match="disk filled up"):
        downloader(tiny_disk / "models").download(job)
    assert list_local_models(tiny_disk / "models") == [] and not Path(job.dest).exists()


@pytest.mark.parametrize("name", ["../evil.gguf", "/abs/path.gguf", "a/../../b.gguf", "x;rm -rf.gguf", "\x1b[2J.gguf"])
def test_bad_remote_names_are_refused_before_anything_is_written(models: Path, name: str) -> None:
    with pytest.raises(BadNameError):
        DownloadQueue(models).add(REPO, name)
    assert not models.exists()


def test_cancel_removes_the_partial_file(hub: FakeHub, models: Path) -> None:
    cancel = threading.Event()
    _, callback = stop_at(0.3, cancel)
    queue = DownloadQueue(models)
    job = queue.add(REPO, FILE)
    result = downloader(models).download(job, progress=callback, cancel=cancel)  # type: ignore[arg-type]
    assert result.state is State.CANCELLED
    assert not queue.part_path(job).exists() and not Path(job.dest).exists()
    assert queue.get(job.id).state is State.CANCELLED  # type: ignore[union-attr]


def test_the_queue_survives_a_restart(hub: FakeHub, models: Path) -> None:
    pause = threading.Event()
    _, callback = stop_at(0.4, pause)
    queue = DownloadQueue(models)
    paused = queue.add(REPO, FILE)
    downloader(models).download(paused, progress=callback, pause=pause)  # type: ignore[arg-type]
    # a second job whose process died mid-download: state "downloading", lock held by a dead pid
    crashed = queue.add(REPO, "other-Q4_0.gguf")
    crashed.state = State.DOWNLOADING
    queue.save(crashed)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (queue.state_dir / f"{crashed.id}.lock").write_text(dead, encoding="ascii")
    later = DownloadQueue(models)  # as after an app restart
    states = {j.filename: (j.state, j.bytes_done) for j in later.jobs()}
    assert states[FILE][0] is State.PAUSED and states[FILE][1] > 0
    assert states["other-Q4_0.gguf"] == (State.INTERRUPTED, 0)
    assert [j.filename for j in later.pending()] == ["other-Q4_0.gguf"]


def test_a_server_that_ignores_range_restarts_cleanly(hub: FakeHub, models: Path, medium_model: Path) -> None:
    pause = threading.Event()
    _, callback = stop_at(0.5, pause)
    queue = DownloadQueue(models)
    job = queue.add(REPO, FILE)
    downloader(models).download(job, progress=callback, pause=pause)  # type: ignore[arg-type]
    hub.faults.ignore_range = True
    result = downloader(models).download(job.id)
    assert result.state is State.DONE and Path(result.dest).read_bytes() == medium_model.read_bytes()


def test_the_token_goes_to_the_hub_only_and_is_never_written(hub: FakeHub, models: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    token = "hf_TopSecretToken42"
    hub.add_repo(REPO, gated_token=token)
    hub.faults.redirect_to_cdn = True
    caplog.set_level(logging.DEBUG)
    queue = DownloadQueue(models)
    with pytest.raises(DownloadError, match="gated"):
        downloader(models).download(queue.add(REPO, FILE))
    result = downloader(models, token=token).download(queue.add(REPO, FILE))
    assert result.state is State.DONE
    cdn = hub.requests_to("cdn")
    assert cdn and all("authorization" not in r.headers for r in cdn)
    assert any(r.headers.get("authorization") == f"Bearer {token}" for r in hub.requests_to("hub"))
    assert token not in caplog.text
    for path in models.rglob("*"):
        if path.is_file() and path.stat().st_size < 1_000_000:
            assert token.encode() not in path.read_bytes(), path


def test_another_process_downloading_the_same_file_is_detected(hub: FakeHub, models: Path) -> None:
    queue = DownloadQueue(models)
    job = queue.add(REPO, FILE)
    queue.state_dir.mkdir(parents=True, exist_ok=True)
    (queue.state_dir / f"{job.id}.lock").write_text(str(os.getppid()), encoding="ascii")  # a live process
    with pytest.raises(downloads.DownloadBusyError, match="already being downloaded"):
        downloader(models).download(job)
    assert json.loads((queue.state_dir / f"{job.id}.json").read_text())["state"] == "queued"


def test_run_pending_works_through_the_queue(hub: FakeHub, models: Path, medium_model: Path) -> None:
    hub.add_file(REPO, "second-F32.gguf", medium_model.read_bytes())
    queue = DownloadQueue(models)
    queue.add(REPO, FILE)
    queue.add(REPO, "missing-Q2_K.gguf")
    queue.add(REPO, "second-F32.gguf")
    finished = downloader(models).run_pending()
    assert [j.filename for j in finished] == [FILE, "second-F32.gguf"]
    assert {j.filename: j.state for j in queue.jobs()}["missing-Q2_K.gguf"] is State.FAILED


@pytest.mark.parametrize("stop", ["pause", "cancel"])
def test_pause_and_cancel_answer_at_once_while_the_server_is_silent(
    hub: FakeHub, models: Path, medium_model: Path, stop: str
) -> None:
    """The server goes silent after 3 MB; the stall timeout is 30 s, yet Pause/Cancel end the download within
    about a second (the writer thread shuts the waiting socket down)."""
    stall = 3_000_000
    hub.faults.stall_after, hub.faults.stalls = stall, 1
    queue = DownloadQueue(models)
    job = queue.add(REPO, FILE)
    pause, cancel = threading.Event(), threading.Event()
    reached = threading.Event()
    outcome: list[object] = []

    def progress(p: Progress) -> None:
        if p.bytes_done >= stall:
            reached.set()

    slow = RetryPolicy(max_attempts=2, stall_timeout=30.0)

    def run() -> None:
        try:
            outcome.append(downloader(models, policy=slow).download(job, progress=progress, pause=pause,
                                                                     cancel=cancel))
        except Exception as exc:  # recorded for the assertion below
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert reached.wait(30), "the first 3 MB never arrived"
        started = time.monotonic()
        (pause if stop == "pause" else cancel).set()
        worker.join(10)
        elapsed = time.monotonic() - started
    finally:
        hub.release()
        worker.join(30)
    assert not worker.is_alive() and elapsed < 2.0, f"took {elapsed:.1f} s"
    [result] = outcome
    assert isinstance(result, downloads.DownloadJob), result
    part = queue.part_path(job)
    if stop == "pause":
        assert result.state is State.PAUSED
        assert part.stat().st_size == stall  # every byte received before the silence was kept
        resumed = downloader(models).download(job.id)
        assert resumed.state is State.DONE and Path(resumed.dest).read_bytes() == medium_model.read_bytes()
        assert [r for r in hub.records if r.method == "GET"][-1].headers["range"] == f"bytes={stall}-"
    else:
        assert result.state is State.CANCELLED and not part.exists()


@pytest.mark.parametrize("method", ["HEAD", "GET"])
@pytest.mark.parametrize("stop", ["pause", "cancel"])
def test_pause_and_cancel_answer_at_once_while_the_server_holds_the_headers(
    hub: FakeHub, models: Path, medium_model: Path, stop: str, method: str
) -> None:
    """The Hub answers the metadata HEAD (or the file's GET) with nothing at all, not even headers; the stall
    timeout is 30 s (huggingface_hub's HEAD waits 10 s), yet Pause/Cancel end the download within 2 s, and the
    download later runs to the end."""
    hub.faults.hold_headers = (method,)
    queue = DownloadQueue(models)
    job = queue.add(REPO, FILE)
    pause, cancel = threading.Event(), threading.Event()
    outcome: list[object] = []
    slow = RetryPolicy(max_attempts=2, stall_timeout=30.0)

    def run() -> None:
        try:
            outcome.append(downloader(models, policy=slow).download(job, pause=pause, cancel=cancel))
        except Exception as exc:  # recorded for the assertion below
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert hub.held.wait(30), f"the {method} never reached the server"
        started = time.monotonic()
        (pause if stop == "pause" else cancel).set()
        worker.join(10)
        elapsed = time.monotonic() - started
    finally:
        hub.faults.hold_headers = ()
        hub.release()
        worker.join(30)
    assert not worker.is_alive() and elapsed < 2.0, f"took {elapsed:.1f} s"
    [result] = outcome
    assert isinstance(result, downloads.DownloadJob), result
    assert result.state is (State.PAUSED if stop == "pause" else State.CANCELLED)
    assert [r.method for r in hub.records].count(method) == 1  # stopped, not retried
    resumed = downloader(models).download(job.id)
    assert resumed.state is State.DONE and Path(resumed.dest).read_bytes() == medium_model.read_bytes()

"""Offline, in plain words (issue 20, defect 5): a Hub search against a closed port says so in one sentence after
one connection attempt (no retry loop), and a download that cannot reach the Hub ends with one sentence and is
marked offline, so a window can word it for its Retry button."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from fakehub import FakeHub

from llamadesk.core import hub
from llamadesk.core.downloads import OFFLINE, Downloader, DownloadQueue, HubUnreachableError, RetryPolicy, State


@pytest.fixture
def closed_port(monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[Any]]:
    """A loopback Hub address nothing listens on, and the list of connection attempts made to it."""
    with FakeHub() as dead:
        url = dead.url
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def counted(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == port:
            attempts.append(address)
        elif isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network traffic beyond loopback: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counted)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return url, attempts


def test_an_offline_search_says_so_in_one_sentence_without_retrying(closed_port: tuple[str, list[Any]]) -> None:
    _url, attempts = closed_port
    with pytest.raises(hub.HubUnreachable) as caught:
        hub.search_models("qwen")
    assert str(caught.value) == hub.UNREACHABLE
    assert "Error" not in str(caught.value) and str(caught.value).count(".") == 1
    assert len(attempts) == 1, f"the search tried {len(attempts)} times"


def test_an_offline_download_ends_with_one_sentence_marked_offline(
    closed_port: tuple[str, list[Any]], tmp_path: Path
) -> None:
    _url, attempts = closed_port
    queue = DownloadQueue(tmp_path / "models")
    job = queue.add("owner/repo", "model-Q4_K_M.gguf")
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    notes: list[str] = []
    with pytest.raises(HubUnreachableError) as caught:
        Downloader(queue, policy=policy, progress_interval=0).download(job, progress=lambda p: notes.append(p.note))
    assert str(caught.value) == OFFLINE
    record = queue.get(job.id)
    assert record is not None and record.state is State.FAILED
    assert record.error == OFFLINE and record.error_kind == "offline"
    assert [n for n in notes if n] and all("ConnectError" not in n for n in notes if n)
    assert attempts  # it did try, a bounded number of times (the policy's three, each the Hub's own tries)

"""Offline, in plain words (issue 20, defect 5): a Hub search against a closed port says so in one sentence after
one connection attempt (no retry loop), and a download that cannot reach the Hub ends with one sentence and is
marked offline, so a window can word it for its Retry button."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llamadesk.core import hub
from llamadesk.core.downloads import OFFLINE, Downloader, DownloadQueue, HubUnreachableError, RetryPolicy, State


def test_an_offline_search_says_so_in_one_sentence_without_retrying(offline_hub: tuple[str, list[Any]]) -> None:
    _url, attempts = offline_hub
    with pytest.raises(hub.HubUnreachable) as caught:
        hub.search_models("qwen")
    assert str(caught.value) == hub.UNREACHABLE
    assert "Error" not in str(caught.value) and str(caught.value).count(".") == 1
    assert len(attempts) == 1, f"the search tried {len(attempts)} times"


def test_an_offline_download_ends_with_one_sentence_marked_offline(
    offline_hub: tuple[str, list[Any]], tmp_path: Path
) -> None:
    _url, attempts = offline_hub
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

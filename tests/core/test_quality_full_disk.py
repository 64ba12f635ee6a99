"""A disk that fills up while llama.cpp writes a quant: one sentence, the partial file removed, nothing registered.

The free-space check passes (the target disk had room when quantizing began), then the disk fills: on a small
tmpfs (tests/full_disk.py, where mounting is allowed, as in CI) the rest of it is taken as soon as the quantizer
reports its first progress; where no tmpfs can be mounted the partial file is /dev/full, so llama.cpp's own writes
fail with ENOSPC from the kernel (the injected full disk of tests/full_disk.py only reaches Python's writes, and
these are C++'s)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from full_disk import FullDisk, small_disk
from gguf_factory import write_tiny_llama

from llamadesk.core import download_queue, library
from llamadesk.core.quantize import PARTIAL_SUFFIX, QuantizeError, QuantizeProgress, quantize
from llamadesk.paths import get_paths


@pytest.fixture(scope="module")
def medium_f32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 MB of F32 that makes a ~1.5 MB Q8_0: fits the 16 MB tmpfs until the tmpfs is filled."""
    return write_tiny_llama(tmp_path_factory.mktemp("fulldisk") / "medium-F32.gguf", n_embd=256, n_head=8, n_layers=4)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[FullDisk]:
    with small_disk(tmp_path / "small-disk") as small:
        print(f"full disk: {small.kind}")
        yield small


def test_a_disk_filling_up_mid_quantize_removes_the_partial_file(
    disk: FullDisk, medium_f32: Path, llamadesk_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app keeps 64 MiB free on any disk it writes a model to; the 16 MB test disk could never pass that check,
    # and this test is about the disk filling *after* the check.
    monkeypatch.setattr(download_queue, "DISK_MARGIN", 0)
    target = disk.root / "medium-Q8_0.gguf"
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    stages: list[str] = []

    def progress(p: QuantizeProgress) -> None:
        stages.append(p.stage)
        if disk.mounted and p.stage == "quantizing" and not disk.full:
            disk.fill()  # another program takes the rest of the disk while llama.cpp writes
        elif not disk.mounted and p.stage == "checking" and not partial.is_symlink():
            os.symlink("/dev/full", partial)  # every write llama.cpp makes to the partial file fails with ENOSPC

    with pytest.raises(QuantizeError) as err:
        quantize(medium_f32, "Q8_0", target, progress=progress, threads=1)
    message = str(err.value)
    print(message)
    if disk.mounted:
        assert disk.full and message == (
            f"The disk holding {disk.root} filled up while quantizing medium-F32.gguf; the partial file was removed, "
            "so free some space and try again."
        )
    else:
        assert message.startswith("llama.cpp could not quantize medium-F32.gguf")
    assert "Traceback" not in message and "quantizing" in stages and "done" not in stages
    assert not partial.exists() and not partial.is_symlink() and not target.exists()
    assert not multiprocessing.active_children()
    assert not library.list_local_models(get_paths().models)

    disk.free()  # with room again, the same quant is made
    if disk.mounted:
        made = quantize(medium_f32, "Q8_0", target, threads=1)
        assert made.path == target and target.stat().st_size == made.size_bytes

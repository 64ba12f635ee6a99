"""A folder of 100,000 tiny files in the Documents pane of the real window: the run starts, reports progress to the
GUI thread while it goes on (the window handles events meanwhile), and Cancel ends it keeping what was read. That such
a run completes, and how fast, is a bench figure (bench/bench_docs.py, docs_index_100k_*), not a test: here only what
does not depend on the machine's speed is checked."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from llamadesk.core.documents import store
from llamadesk.core.documents.index import IndexReport, Progress
from llamadesk.ui.documents.pane import DocumentsPane
from llamadesk.ui.main_window import MainWindow

FILES = 100_000
PER_FOLDER = 100
TIMEOUT_MS = 300_000  # listing 100,000 files on a loaded two-core machine takes seconds; this only bounds a hang


@pytest.fixture
def pane(make_window: Callable[..., MainWindow]) -> DocumentsPane:
    window = make_window(auto_load=False)
    window.documents.toggle_action.trigger()
    return window.documents.pane


def tiny_files(root: Path, count: int) -> None:
    for folder in range(count // PER_FOLDER):
        path = root / f"d{folder:04}"
        path.mkdir(parents=True)
        for i in range(PER_FOLDER):
            fd = os.open(path / f"n{i:03}.txt", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, f"note {folder} {i} on topic {folder * PER_FOLDER + i}\n".encode())
            os.close(fd)


def test_a_folder_of_100k_files_indexes_in_the_background_and_cancels(
    pane: DocumentsPane, tmp_path: Path, qtbot: QtBot
) -> None:
    root = tmp_path / "huge"
    tiny_files(root, FILES)
    pane.create_collection("Huge")
    qtbot.waitUntil(lambda: pane.view("Huge") is not None and pane.selected() == "Huge", timeout=TIMEOUT_MS)

    handled: list[tuple[int, bool, int]] = []  # (thread, run still going, files done) per progress the GUI handled

    def on_progress(_name: str, progress: object) -> None:
        if isinstance(progress, Progress):
            handled.append((threading.get_ident(), pane.indexer.running is not None, progress.files_done))
            if len(handled) == 1:
                pane.cancel()

    pane.indexer.progressed.connect(on_progress)
    with qtbot.waitSignal(pane.indexFinished, timeout=TIMEOUT_MS) as finished:
        pane.add_paths([root])
    report = finished.args[1]
    assert isinstance(report, IndexReport)

    # The GUI thread took the run's progress while the run went on: the window was not waiting for it.
    assert handled and handled[0][0] == threading.get_ident() and handled[0][1]
    assert handled[0][2] >= 1
    # Cancel ended it (or, on a machine fast enough to finish first, it finished): what was read stays, consistent.
    assert report.cancelled == (report.read < FILES)
    with store.open_collection("Huge") as collection:
        assert collection.stats().files == report.read
    qtbot.waitUntil(lambda: pane.indexer.running is None, timeout=TIMEOUT_MS)
    assert not pane.progress.isVisible()

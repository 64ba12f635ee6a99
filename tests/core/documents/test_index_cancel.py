"""Cancel reaches an indexing run while it still lists the folders (100,000 files take seconds to list), and a run
cancelled then changes nothing: a partial listing never makes the files it did not reach look deleted."""

from __future__ import annotations

import threading
from pathlib import Path

from llamadesk.core.documents import store
from llamadesk.core.documents.index import index_collection, walk


def test_a_run_cancelled_while_listing_keeps_every_file(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    for folder in range(5):
        (root / f"d{folder}").mkdir(parents=True)
        for i in range(3):
            (root / f"d{folder}" / f"n{i}.txt").write_text(f"note {folder} {i}\n")
    collection = store.create_collection("c", tmp_path / "collections")
    try:
        collection.add_roots([root])
        assert index_collection(collection).read == 15
        cancel = threading.Event()
        cancel.set()
        assert walk([root], cancel) == ([], [])  # the listing stops before its first folder
        report = index_collection(collection, cancel=cancel)
        assert report.cancelled and (report.read, report.removed) == (0, 0)
        assert collection.stats().files == 15
    finally:
        collection.close()

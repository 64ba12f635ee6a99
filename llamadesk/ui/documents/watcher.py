"""Watches the roots of the collections while the app runs; a change asks, a moment later, for that collection's
incremental index."""

from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

DEBOUNCE_MS = 2000  # an editor's save, a copied folder: one burst of events, one index run after it
MAX_WAIT_S = 10.0  # a file written without pause (a log) still gets indexed this often
WATCH_CAP = 2000  # paths watched over all collections: inotify's watches are shared by every program of the user


class RootWatcher(QObject):
    """A QFileSystemWatcher over the folders (and, room permitting, the files) of every collection's roots.

    `watch(name, paths)` replaces a collection's paths (the pane gives those a background job listed); `changed`
    names a collection DEBOUNCE_MS after the last change under its paths (at most MAX_WAIT_S after the first)."""

    changed = Signal(str)  # a collection whose files changed

    def __init__(self, parent: QObject | None = None, *, debounce_ms: int = DEBOUNCE_MS, cap: int = WATCH_CAP) -> None:
        super().__init__(parent)
        self.cap = cap
        self._fs = QFileSystemWatcher(self)
        self._fs.directoryChanged.connect(self._on_change)
        self._fs.fileChanged.connect(self._on_change)
        self._wanted: dict[str, tuple[str, ...]] = {}  # collection → its paths, in the order they matter
        self._owners: dict[str, set[str]] = {}  # watched path → the collections under whose roots it is
        self._pending: set[str] = set()
        self._first_change = 0.0
        self._timer = QTimer(self, singleShot=True, interval=debounce_ms)
        self._timer.timeout.connect(self._flush)
        self.capped = False  # some collection's paths did not all fit under the cap

    def watch(self, name: str, paths: Sequence[str]) -> None:
        self._wanted[name] = tuple(paths)
        self._apply()

    def forget(self, name: str) -> None:
        self._pending.discard(name)
        if self._wanted.pop(name, None) is not None:
            self._apply()

    def watched(self) -> set[str]:
        return set(self._fs.files()) | set(self._fs.directories())

    def stop(self) -> None:
        self._timer.stop()
        self._pending.clear()
        self._wanted.clear()
        self._apply()

    def _apply(self) -> None:
        """Watches the wanted paths, each collection's first ones first (its roots' top folders), up to the cap."""
        owners: dict[str, set[str]] = {}
        for name, paths in self._wanted.items():
            for path in paths:
                if path in owners or len(owners) < self.cap:
                    owners.setdefault(path, set()).add(name)
        self.capped = sum(len(p) for p in self._wanted.values()) > len(owners)
        self._owners = owners
        current = self.watched()
        gone = sorted(current - owners.keys())
        new = [p for p in owners if p not in current]
        if gone:
            self._fs.removePaths(gone)
        if new:
            self._fs.addPaths(new)  # paths that vanished meanwhile are refused quietly; the next listing drops them

    def _on_change(self, path: str) -> None:
        names = self._owners.get(path)
        if not names:
            return
        now = time.monotonic()
        if not self._timer.isActive():
            self._first_change = now
            self._timer.start()
        elif now - self._first_change < MAX_WAIT_S:
            self._timer.start()  # restarts: the burst goes on
        self._pending |= names

    def _flush(self) -> None:
        pending, self._pending = sorted(self._pending), set()
        for name in pending:
            self.changed.emit(name)

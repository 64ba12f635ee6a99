"""The Documents pane's widgets, which know nothing of files or indexes: the list of collections with their figures
and "use" checkboxes, and the progress of a run (indexing, or embedding passages) with Pause and Cancel."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.documents.index import Progress
from llamadesk.ui.documents.jobs import CollectionView, EmbedProgress

NameRole = Qt.ItemDataRole.UserRole
USE_TIP = "Use in this conversation: its replies draw on this collection's passages"


def duration_text(seconds: float) -> str:
    """`under a second`, `12 s`, `3 min 5 s`, `2 h 10 min`."""
    s = round(seconds)
    if seconds < 1:
        return "under a second"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def meaning_text(view: CollectionView) -> str:
    """How the collection is searched, in one line."""
    if not view.embedding:
        return "Searched by its words alone (BM25)."
    missing = max(view.passages - view.vectors, 0)
    left = f"; {missing:,} passage(s) have no vector yet" if missing else ""
    return f"Searched by its words and by meaning ({view.embedding}: {view.vectors:,} passage(s) embedded{left})."


def progress_text(p: Progress) -> str:
    """`45 files/s, about 12 s left`."""
    rate = f"{p.files_per_s:.1f}" if p.files_per_s < 10 else f"{p.files_per_s:.0f}"
    left = f", about {duration_text(p.eta_s)} left" if p.eta_s is not None and p.files_done < p.files_total else ""
    return f"{rate} files/s{left}"


class CollectionList(QTreeWidget):
    """One row per collection: its name (with the "use in this conversation" checkbox), files, passages, problems,
    and whether it is searched by meaning (it has an embedding model). Rows of collections the conversation names
    but that no longer exist are shown greyed, ticked, to untick."""

    useToggled = Signal(str, bool)  # a checkbox the user clicked: collection, ticked

    COLUMNS = ("Collection", "Files", "Passages", "Problems", "Meaning")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(len(self.COLUMNS))
        self.setHeaderLabels(list(self.COLUMNS))
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAllColumnsShowFocus(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAccessibleName("Collections")
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(self.COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
            self.headerItem().setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.headerItem().setToolTip(0, "Tick a collection to use it in the conversation shown")
        self._filling = False
        self.itemChanged.connect(self._on_item_changed)

    def fill(
        self, views: Sequence[CollectionView], used: Sequence[str], *, can_use: bool, indexing: str | None
    ) -> None:
        """Shows the collections (keeping the selection), ticking those `used`; `can_use`: a conversation is shown."""
        selected = self.selected_name()
        self._filling = True
        try:
            self.clear()
            known = {v.name for v in views}
            for view in views:
                figures = (f"{view.files:,}", f"{view.passages:,}", f"{view.problems:,}")
                item = QTreeWidgetItem([view.name, *figures, "Yes" if view.embedding else "No"])
                for column in range(1, len(self.COLUMNS)):
                    item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip(4, meaning_text(view))
                tip = f"{view.name}: {view.files:,} file(s), {view.passages:,} passage(s), {view.problems:,} problem(s)"
                item.setToolTip(0, tip + (" — indexing now" if view.name == indexing else "") + f"\n{USE_TIP}")
                self._add(item, view.name, view.name in used, can_use)
            for name in used:
                if name not in known:  # deleted elsewhere (the CLI): the conversation would refuse to send
                    item = QTreeWidgetItem([f"{name} (deleted)", "", "", "", ""])
                    item.setToolTip(0, f"{name} no longer exists; untick it to send without it.")
                    item.setForeground(0, self.palette().placeholderText())
                    self._add(item, name, True, can_use)
        finally:
            self._filling = False
        if selected is not None:
            self.select(selected)
        first = self.topLevelItem(0)
        if self.currentItem() is None and first is not None:
            self.setCurrentItem(first)

    def _add(self, item: QTreeWidgetItem, name: str, ticked: bool, can_use: bool) -> None:
        item.setData(0, NameRole, name)
        flags = item.flags() | Qt.ItemFlag.ItemIsUserCheckable
        item.setFlags(flags)
        item.setCheckState(0, Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
        if not can_use:
            item.setFlags(flags & ~Qt.ItemFlag.ItemIsUserCheckable)
        self.addTopLevelItem(item)

    def items(self) -> list[QTreeWidgetItem]:
        return [item for i in range(self.topLevelItemCount()) if (item := self.topLevelItem(i)) is not None]

    def names(self) -> list[str]:
        return [str(item.data(0, NameRole)) for item in self.items()]

    def item_of(self, name: str) -> QTreeWidgetItem | None:
        return next((item for item in self.items() if item.data(0, NameRole) == name), None)

    def is_used(self, name: str) -> bool:
        item = self.item_of(name)
        return item is not None and item.checkState(0) == Qt.CheckState.Checked

    def selected_name(self) -> str | None:
        item = self.currentItem()
        return None if item is None else str(item.data(0, NameRole))

    def select(self, name: str) -> None:
        item = self.item_of(name)
        if item is not None:
            self.setCurrentItem(item)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if not self._filling and column == 0:
            self.useToggled.emit(str(item.data(0, NameRole)), item.checkState(0) == Qt.CheckState.Checked)


class IndexProgress(QWidget):
    """`Indexing “Manuals”…`, a bar of files done of files found, the speed and time left, Pause/Resume, Cancel; then
    (or for a run that embeds) a bar of passages embedded."""

    pauseToggled = Signal(bool)
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Indexing progress")
        self.bar.setFormat("%v / %m files")
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Hold the indexing between two files; Resume goes on from there")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop indexing; what was indexed is kept, and Re-index goes on from there")
        buttons = QHBoxLayout()
        buttons.addWidget(self.detail, 1)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        layout.addLayout(buttons)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.cancel_button.clicked.connect(self.cancelRequested)

    def begin(self, name: str, model: str = "") -> None:
        """An indexing run of the collection; with `model`, a run that embeds its passages with that model."""
        self.title.setText(f"Embedding the passages of “{name}” with {model}…" if model else f"Indexing “{name}”…")
        self.bar.setRange(0, 0)  # busy until the walk has counted the files (or the model is loaded)
        self.bar.setFormat("%v / %m files")
        self.detail.setText("Loading the model…" if model else "Looking for files…")
        self.cancel_button.setEnabled(True)

    def show_progress(self, p: Progress | EmbedProgress) -> None:
        if isinstance(p, EmbedProgress):
            self.bar.setFormat("%v / %m passages")
            self.bar.setRange(0, max(p.total, 1))
            self.bar.setValue(p.done)
            if not self.pause_button.isChecked():
                self.detail.setText("Embedding passages: search by meaning finds them once they have a vector.")
            return
        self.bar.setFormat("%v / %m files")
        self.bar.setRange(0, max(p.files_total, 1))
        self.bar.setValue(p.files_done)
        if not self.pause_button.isChecked():
            self.detail.setText(progress_text(p))

    def set_paused(self, on: bool) -> None:
        """Mirrors the indexer (which unpauses itself when its queue runs dry)."""
        if on != self.pause_button.isChecked():
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(on)
            self.pause_button.blockSignals(False)
        self._label_pause(on)

    def _on_pause_toggled(self, on: bool) -> None:
        self._label_pause(on)
        self.pauseToggled.emit(on)

    def _label_pause(self, on: bool) -> None:
        self.pause_button.setText("Resume" if on else "Pause")
        if on:
            self.detail.setText("Paused; Resume goes on from here.")

    def stopping(self) -> None:
        self.detail.setText("Stopping after these passages…" if "passages" in self.bar.format() else
                            "Stopping after this file…")  # fmt: skip
        self.cancel_button.setEnabled(False)

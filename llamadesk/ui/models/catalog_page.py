"""The Catalog tab: family → size → quantization, each with its file size and whether it fits this machine."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.catalog import Catalog, Family, Quantization, Size, recommended_quant
from llamadesk.core.fit import FitEstimate, Verdict
from llamadesk.core.quant_codes import explain
from llamadesk.ui.models.common import (
    SUBTITLE_ROLE,
    MachineState,
    MessageLine,
    TwoLineDelegate,
    context_text,
    fit_text,
    human_size,
    right_aligned,
    verdict_color,
)
from llamadesk.ui.models.download_manager import DownloadManager
from llamadesk.ui.models.quality_notes import catalog_sha256, measured_note

COLUMNS = ("Quantization", "File size", "Fit", "Largest context", "")
STATUS_WORDS = {
    "downloaded": "Downloaded",
    "downloading": "Downloading…",
    "queued": "Queued",
    "paused": "Paused",
    "failed": "Failed — see Downloads",
}


def size_summary(size: Size, machine: MachineState) -> str:
    """The second line of a size: the largest quantization that fits, parameters, context."""
    params = f"{size.params / 1e9:.1f}B" if size.params >= 1e9 else f"{size.params / 1e6:.0f}M"
    fits = size.fits(machine.n_ctx, ram_free=machine.ram_free, vram_free=machine.vram_free)
    best = [q.name for q, e in fits if e.verdict is not Verdict.TOO_LARGE]
    verdict = f"✓ up to {best[-1]}" if best else "✗ too large here"
    return f"{verdict} · {params} · {context_text(size.context_length)} context"


class CatalogPage(QWidget):
    """Families on the left, their sizes in the middle, the quantizations of the chosen size on the right."""

    downloadRequested = Signal(object, object, object)  # Family, Size, Quantization

    def __init__(
        self, catalog: Catalog, machine: MachineState, manager: DownloadManager, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.catalog, self.machine, self.manager = catalog, machine, manager
        self._fits: list[tuple[Quantization, FitEstimate]] = []
        self.shown_families = catalog.browse_order()  # chat models first, the 2023 base models last

        self.families = QListWidget()
        self.families.setObjectName("catalogFamilies")
        self.families.setAccessibleName("Model families")
        for family in self.shown_families:
            item = QListWidgetItem(family.name)
            # A base family says so first on its second line, where a narrow list does not cut it off.
            base = "Base, not for chat · " if family.is_base_only else ""
            item.setData(SUBTITLE_ROLE, f"{base}{family.publisher} · {family.license}")
            item.setData(Qt.ItemDataRole.AccessibleTextRole, family.list_name)
            item.setData(Qt.ItemDataRole.UserRole, family.id)
            item.setToolTip(f"{family.description}\nLicense: {family.license}")
            self.families.addItem(item)
        self.sizes = QListWidget()
        self.sizes.setObjectName("catalogSizes")
        self.sizes.setAccessibleName("Sizes")
        for view in (self.families, self.sizes):
            view.setItemDelegate(TwoLineDelegate(view))
            view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("catalogQuantizations")
        self.table.setAccessibleName("Quantizations")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        # What each code in the table means, one line each (core/quant_codes.py), under the table.
        self.quant_help = QLabel()
        self.quant_help.setObjectName("quantHelp")
        self.quant_help.setAccessibleName("What the quantization codes mean")
        self.quant_help.setWordWrap(True)
        self.quant_help.setTextFormat(Qt.TextFormat.PlainText)
        small = QFont(self.quant_help.font())
        small.setPointSizeF(max(small.pointSizeF() * 0.9, 7.0))
        self.quant_help.setFont(small)
        self.note = QLabel(
            "≈ sizes are approximate: the exact size and checksum come from the Hub when the download starts."
        )
        self.note.setWordWrap(True)
        self.note.setEnabled(False)
        self.download_button = QPushButton("Download")
        self.download_button.setDefault(True)
        self.message = MessageLine()

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.details)
        right_layout.addWidget(self.table, 1)
        right_layout.addWidget(self.quant_help)
        right_layout.addWidget(self.note)
        buttons = QHBoxLayout()
        buttons.addWidget(self.message, 1)
        buttons.addStretch(0)
        buttons.addWidget(self.download_button)
        right_layout.addLayout(buttons)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.families)
        splitter.addWidget(self.sizes)
        splitter.addWidget(right)
        splitter.setStretchFactor(2, 1)
        splitter.setSizes([220, 230, 650])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

        self.families.currentRowChanged.connect(self._family_chosen)
        self.sizes.currentRowChanged.connect(self._size_chosen)
        self.table.itemSelectionChanged.connect(self._update_button)
        self.table.itemDoubleClicked.connect(lambda _item: self._download())
        self.download_button.clicked.connect(self._download)
        machine.changed.connect(self._refresh_fits)
        manager.jobsChanged.connect(self._refresh_status)
        manager.jobChanged.connect(lambda _id: self._refresh_status())
        if self.shown_families:
            self.families.setCurrentRow(0)

    # -- what is chosen -----------------------------------------------------------------------------------------
    def current_family(self) -> Family | None:
        row = self.families.currentRow()
        return self.shown_families[row] if 0 <= row < len(self.shown_families) else None

    def current_size(self) -> Size | None:
        family = self.current_family()
        row = self.sizes.currentRow()
        return family.sizes[row] if family is not None and 0 <= row < len(family.sizes) else None

    def current_quantization(self) -> tuple[Quantization, FitEstimate] | None:
        rows = self.table.selectionModel().selectedRows()
        return self._fits[rows[0].row()] if rows and rows[0].row() < len(self._fits) else None

    def select(self, family_id: str, size_id: str | None = None, quant: str | None = None) -> None:
        """Chooses a family (and a size, and a quantization) as a click would."""
        ids = [f.id for f in self.shown_families]
        self.families.setCurrentRow(ids.index(family_id))
        family = self.shown_families[ids.index(family_id)]
        if size_id is not None:
            self.sizes.setCurrentRow([s.id for s in family.sizes].index(size_id))
        if quant is not None:
            self.table.selectRow([q.name for q, _ in self._fits].index(quant))

    # -- filling ------------------------------------------------------------------------------------------------
    def _family_chosen(self, row: int) -> None:
        family = self.current_family()
        self.sizes.clear()
        if family is None:
            return
        for size in family.sizes:
            item = QListWidgetItem(f"{size.label} · {size.kind_label}")
            item.setData(SUBTITLE_ROLE, size_summary(size, self.machine))
            item.setData(Qt.ItemDataRole.UserRole, size.id)
            self.sizes.addItem(item)
        self.sizes.setCurrentRow(0)

    def _size_chosen(self, _row: int) -> None:
        self._fill_table()

    def _refresh_fits(self) -> None:
        family = self.current_family()
        if family is not None:
            for i, size in enumerate(family.sizes):
                item = self.sizes.item(i)
                if item is not None:
                    item.setData(SUBTITLE_ROLE, size_summary(size, self.machine))
        self._fill_table()

    def _fill_table(self) -> None:
        family, size = self.current_family(), self.current_size()
        selected = self.current_quantization()
        keep = selected[0].name if selected else None
        self.table.setRowCount(0)
        self._fits = []
        if family is None or size is None:
            self.details.clear()
            self.quant_help.clear()
            self._update_button()
            return
        m = self.machine
        n_ctx = min(m.n_ctx, size.context_length)
        self._fits = size.fits(m.n_ctx, ram_free=m.ram_free, vram_free=m.vram_free)
        capped = " (its trained maximum)" if n_ctx < m.n_ctx else ""
        self.table.setHorizontalHeaderItem(2, QTableWidgetItem(f"Fit at {context_text(n_ctx)} context{capped}"))
        self.details.setText(
            f"{family.name} {size.label} — {size.kind_label}, {size.architecture}, "
            f"{size.params / 1e9:.2f} B parameters, trained context {size.context_length:,} tokens, "
            f"license {size.license}.\n{family.description}"
        )
        best = recommended_quant(size, self._fits)
        self.quant_help.setText("\n".join(explain(q.name) for q, _ in self._fits))
        self.table.setRowCount(len(self._fits))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for row, (quant, est) in enumerate(self._fits):
            name = QTableWidgetItem(f"{quant.name}  ★ recommended" if quant.name == best else quant.name)
            name.setToolTip(explain(quant.name))
            if quant.name == best:
                name.setFont(bold)
                name.setToolTip(f"{explain(quant.name)}; it runs on this machine")
            measured = measured_note(catalog_sha256(quant, self.manager.jobs()))
            if measured:  # the Compare tab measured this very file (same SHA-256) before
                name.setText(f"{name.text()}  · measured")
                name.setToolTip(f"{name.toolTip()}\n{measured}".strip())
            size_item = right_aligned(("≈ " if quant.size_approx else "") + human_size(quant.size_bytes))
            verdict = QTableWidgetItem(fit_text(est))
            verdict.setForeground(verdict_color(est.verdict))
            verdict.setToolTip(
                f"Weights {human_size(est.weights_bytes)} + KV cache {human_size(est.kv_bytes)} + compute "
                f"{human_size(est.compute_bytes)}: RAM {human_size(est.ram_needed)}, VRAM "
                f"{human_size(est.vram_needed)}"
            )
            largest = right_aligned(context_text(est.max_ctx))
            largest.setToolTip(f"{est.max_ctx:,} tokens")
            for col, item in enumerate((name, size_item, verdict, largest, QTableWidgetItem())):
                self.table.setItem(row, col, item)
        self._refresh_status()
        names = [q.name for q, _ in self._fits]
        pick = keep if keep in names else best
        if pick in names:
            self.table.selectRow(names.index(pick))
        self._update_button()

    def _refresh_status(self) -> None:
        for row, (quant, _est) in enumerate(self._fits):
            state = self.manager.state_of(quant.repo, quant.files[0])
            item = self.table.item(row, 4)
            if item is not None:
                item.setText(STATUS_WORDS.get(state or "", ""))
        self._update_button()

    def _update_button(self) -> None:
        chosen = self.current_quantization()
        if chosen is None:
            self.download_button.setEnabled(False)
            self.download_button.setText("Download")
            return
        quant, est = chosen
        state = self.manager.state_of(quant.repo, quant.files[0])
        busy = state in ("downloaded", "downloading", "queued")
        self.download_button.setEnabled(not busy)
        approx = "≈ " if quant.size_approx else ""
        self.download_button.setText(f"Download {quant.name} ({approx}{human_size(quant.size_bytes)})")
        if est.verdict is Verdict.TOO_LARGE and not busy:
            self.message.show_note(
                f"{quant.name} is too large for the free memory at this context; a smaller "
                "quantization or context would fit better."
            )
        else:
            self.message.clear_message()

    def _download(self) -> None:
        family, size, chosen = self.current_family(), self.current_size(), self.current_quantization()
        if family is None or size is None or chosen is None or not self.download_button.isEnabled():
            return
        self.downloadRequested.emit(family, size, chosen[0])

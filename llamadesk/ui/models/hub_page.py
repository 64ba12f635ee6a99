"""The Hub tab: search GGUF repositories, open one, see its files by quantization, check the fit, download."""

from __future__ import annotations

import re

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core import fit, hub, remote, secrets
from llamadesk.core.gguf_header import GGUFHeader
from llamadesk.core.hub import GGUFGroup, RepoSummary
from llamadesk.ui.models.common import (
    MachineState,
    MessageLine,
    context_text,
    count_text,
    fit_text,
    human_size,
    make_table,
    right_aligned,
    set_row,
    verdict_color,
)
from llamadesk.ui.models.download_manager import DownloadManager
from llamadesk.ui.models.quality_notes import measured_note
from llamadesk.ui.workers import Task, TaskContext, TaskRunner

PAGE_SIZE = 30
SORTS = (("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "recent"))
# owner/name, owner/name:FILE, owner/name@rev:FILE, or a URL: opened directly instead of searched for.
_REF_RE = re.compile(r"^(https?://\S+|[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?(:\S+)?)$")


class HubPage(QWidget):
    """Nothing here touches the network until the user searches, opens a repository or asks for a fit."""

    downloadRequested = Signal(str, str, object)  # repo id, revision, GGUFGroup

    def __init__(
        self,
        runner: TaskRunner,
        machine: MachineState,
        manager: DownloadManager,
        *,
        endpoint: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner, self.machine, self.manager, self.endpoint = runner, machine, manager, endpoint
        self.results: list[RepoSummary] = []
        self.groups: list[GGUFGroup] = []
        self.repo_id: str | None = None
        self.revision = "main"
        self.headers: dict[tuple[str, str], GGUFHeader] = {}
        self._limit = PAGE_SIZE
        self._query = ""
        self._want_file: str | None = None
        self._search_if_missing: str | None = None
        self._search_task: Task[list[RepoSummary]] | None = None
        self._repo_task: Task[list[GGUFGroup]] | None = None
        self._fit_task: Task[GGUFHeader] | None = None

        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search GGUF models — or paste a repo id (owner/name) or a Hub URL")
        self.search_box.setClearButtonEnabled(True)
        self.sort = QComboBox()
        for label, key in SORTS:
            self.sort.addItem(label, key)
        self.search_button = QPushButton("Search")
        self.results_table = make_table(("Repository", "Downloads", "Likes", "Updated"), "hubResults", 0)
        self.more_button = QPushButton("More results")
        self.more_button.hide()
        self.repo_title = QLabel("Search, then choose a repository to see its files.")
        self.repo_title.setWordWrap(True)
        self.repo_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.files_table = make_table(("Quantization", "Size", "File", ""), "hubFiles", 2)
        self.fit_info = QLabel()
        self.fit_info.setWordWrap(True)
        self.fit_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verdict = QLabel()
        self.check_button = QPushButton("Check fit")
        self.check_button.setToolTip("Reads the file's GGUF header from the Hub (a few MB, not the weights)")
        self.download_button = QPushButton("Download")
        self.message = MessageLine()

        search_row = QHBoxLayout()
        search_row.addWidget(self.search_box, 1)
        search_row.addWidget(self.sort)
        search_row.addWidget(self.search_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.results_table, 1)
        left_layout.addWidget(self.more_button)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.repo_title)
        right_layout.addWidget(self.files_table, 1)
        right_layout.addWidget(self.fit_info)
        right_layout.addWidget(self.verdict)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.download_button)
        right_layout.addLayout(buttons)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([420, 680])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(search_row)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.message)

        # Enter searches and stops here: QLineEdit passes it on, and the dialog would click its default button
        # (a tab's Download, or Close), hiding the window while the search goes on unseen.
        self.search_box.installEventFilter(self)
        self.search_button.clicked.connect(self.search)
        self.sort.currentIndexChanged.connect(lambda _i: self._query_again())
        self.more_button.clicked.connect(self._more)
        self.results_table.itemSelectionChanged.connect(self._result_chosen)
        self.files_table.itemSelectionChanged.connect(self._file_chosen)
        self.check_button.clicked.connect(self.check_fit)
        self.download_button.clicked.connect(self._download)
        machine.changed.connect(self._show_fit)
        manager.jobsChanged.connect(self._refresh_status)
        manager.jobChanged.connect(lambda _id: self._refresh_status())
        self._file_chosen()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.search_box
            and isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            self.search()
            return True
        return super().eventFilter(watched, event)

    # -- search -------------------------------------------------------------------------------------------------
    def search(self) -> None:
        text = self.search_box.text().strip()
        if text and _REF_RE.match(text):
            try:
                ref = hub.parse_model_ref(text)
            except hub.BadNameError as exc:
                if text.startswith(("http://", "https://")):
                    self.message.show_error(str(exc))
                    return
            else:
                is_url = text.startswith(("http://", "https://"))
                self.open_repo(
                    ref.repo_id, ref.revision, select_file=ref.filename, search_if_missing=None if is_url else text
                )
                return
        self._query, self._limit = text, PAGE_SIZE
        self._run_search()

    def _query_again(self) -> None:
        if self._search_task is not None or self.results:
            self._run_search()

    def _more(self) -> None:
        self._limit += PAGE_SIZE
        self._run_search()

    def _run_search(self) -> None:
        if self._search_task is not None:
            self._search_task.discard()
        query, sort, limit, endpoint = self._query, self.sort.currentData(), self._limit, self.endpoint
        self.message.show_note(f"Searching the Hub for '{query}'…" if query else "Listing popular GGUF models…")
        self.search_button.setEnabled(False)

        def work(_ctx: TaskContext) -> list[RepoSummary]:
            return hub.search_models(query, sort=sort, limit=limit, endpoint=endpoint, token=secrets.get_hf_token())

        self._search_task = self.runner.run_in_background(
            work, self._show_results, self._search_failed, name="hub search"
        )

    def _search_failed(self, message: str) -> None:
        self._search_task = None
        self.search_button.setEnabled(True)
        self.message.show_error(message)

    def _show_results(self, results: list[RepoSummary]) -> None:
        self._search_task = None
        self.search_button.setEnabled(True)
        keep = self.repo_id
        self.results = results
        self.results_table.blockSignals(True)
        self.results_table.setRowCount(len(results))
        for row, repo in enumerate(results):
            name = QTableWidgetItem(f"🔒 {repo.repo_id}" if repo.gated else repo.repo_id)
            if repo.gated:
                name.setToolTip("Gated: accept the license on the Hub and store your token in Settings")
            updated = repo.last_modified.strftime("%Y-%m-%d") if repo.last_modified else ""
            downloads, likes = right_aligned(count_text(repo.downloads)), right_aligned(count_text(repo.likes))
            set_row(self.results_table, row, name, downloads, likes, updated)
            if repo.repo_id == keep:
                self.results_table.selectRow(row)
        self.results_table.blockSignals(False)
        self.more_button.setVisible(len(results) >= self._limit)
        self.message.show_note("" if results else "No GGUF repositories match; try fewer or other words.")

    def _result_chosen(self) -> None:
        rows = self.results_table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.results):
            repo = self.results[rows[0].row()].repo_id
            if repo != self.repo_id:
                self.open_repo(repo)

    # -- one repository -----------------------------------------------------------------------------------------
    def open_repo(
        self,
        repo_id: str,
        revision: str = "main",
        *,
        select_file: str | None = None,
        search_if_missing: str | None = None,
    ) -> None:
        """Lists the repo's GGUF files; `search_if_missing` (the typed text) is searched for if no such repo exists."""
        if self._repo_task is not None:
            self._repo_task.discard()
        self.repo_id, self.revision, self._want_file = repo_id, revision, select_file
        self._search_if_missing = search_if_missing
        self.groups = []
        self.files_table.setRowCount(0)
        self.repo_title.setText(f"{repo_id} — reading the file list…")
        endpoint = self.endpoint

        def work(_ctx: TaskContext) -> list[GGUFGroup]:
            return hub.list_gguf_groups(repo_id, revision=revision, endpoint=endpoint, token=secrets.get_hf_token())

        self._repo_task = self.runner.run_in_background(work, self._show_groups, self._repo_failed, name="hub files")
        self._file_chosen()

    def _repo_failed(self, message: str) -> None:
        self._repo_task = None
        if self._search_if_missing and "not found" in message:  # "owner/part" typed as a search, not an id
            self.repo_id, self._query, self._limit = None, self._search_if_missing, PAGE_SIZE
            self.repo_title.setText("")
            self._run_search()
            return
        self.repo_title.setText(self.repo_id or "")
        self.message.show_error(message)

    def _show_groups(self, groups: list[GGUFGroup]) -> None:
        self._repo_task = None
        self.groups = groups
        total = sum(g.size for g in groups if not g.is_projector)
        rev = f" @ {self.revision}" if self.revision != "main" else ""
        self.repo_title.setText(
            f"{self.repo_id}{rev} — {len(groups)} GGUF model{'s' if len(groups) != 1 else ''}"
            f" ({human_size(total)} in all)"
            if groups
            else f"{self.repo_id} holds no .gguf files."
        )
        self.files_table.blockSignals(True)
        self.files_table.setRowCount(len(groups))
        pick = 0
        for row, group in enumerate(groups):
            quant = "vision projector" if group.is_projector else group.quantization
            parts = f" ({len(group.files)} parts)" if len(group.files) > 1 else ""
            incomplete = "" if group.complete else " — incomplete split"
            file_cell = QTableWidgetItem(f"{group.name}{parts}{incomplete}")
            file_cell.setToolTip("\n".join(f.path for f in group.files))
            measured = measured_note(group.files[0].sha256 if len(group.files) == 1 else None)
            if measured:  # the Compare tab measured this very file (same SHA-256) before
                file_cell.setText(f"{file_cell.text()}  · measured")
                file_cell.setToolTip(f"{file_cell.toolTip()}\n{measured}")
            set_row(self.files_table, row, quant, right_aligned(human_size(group.size)), file_cell, "")
            wanted = self._want_file or ""
            if wanted in [f.path for f in group.files] or wanted.lower() == group.quantization.lower():
                pick = row
        self.files_table.blockSignals(False)
        self._refresh_status()
        if groups:
            self.files_table.selectRow(pick)
        self.message.clear_message()
        self._file_chosen()

    def _refresh_status(self) -> None:
        if self.repo_id is None:
            return
        words = {
            "downloaded": "Downloaded",
            "downloading": "Downloading…",
            "queued": "Queued",
            "paused": "Paused",
            "failed": "Failed",
        }
        for row, group in enumerate(self.groups):
            item = self.files_table.item(row, 3)
            if item is not None:
                item.setText(words.get(self.manager.state_of(self.repo_id, group.first.path) or "", ""))
        self._update_buttons()

    def current_group(self) -> GGUFGroup | None:
        rows = self.files_table.selectionModel().selectedRows()
        return self.groups[rows[0].row()] if rows and rows[0].row() < len(self.groups) else None

    def _file_chosen(self) -> None:
        if self._fit_task is not None:
            self._fit_task.discard()
            self._fit_task = None
        if self.message.is_error and self._repo_task is None:  # an old file's error says nothing about this one
            self.message.clear_message()
        self._show_fit()
        self._update_buttons()

    def _update_buttons(self) -> None:
        group = self.current_group()
        state = self.manager.state_of(self.repo_id, group.first.path) if group and self.repo_id else None
        self.check_button.setEnabled(group is not None and not group.is_projector and self._fit_task is None)
        self.download_button.setEnabled(
            group is not None and group.complete and state not in ("downloaded", "downloading", "queued")
        )
        self.download_button.setText(f"Download ({human_size(group.size)})" if group else "Download")

    # -- fit ----------------------------------------------------------------------------------------------------
    def check_fit(self) -> None:
        group, repo_id, revision, endpoint = self.current_group(), self.repo_id, self.revision, self.endpoint
        if group is None or repo_id is None:
            return
        if (repo_id, group.first.path) in self.headers:
            self._show_fit()
            return
        filename = group.first.path

        def work(_ctx: TaskContext) -> GGUFHeader:
            return remote.read_remote_header(
                repo_id, filename, revision=revision, endpoint=endpoint, token=secrets.get_hf_token()
            )

        self.fit_info.setText(f"Reading the header of {group.name} from the Hub…")
        self.verdict.clear()
        self._fit_task = self.runner.run_in_background(
            work, lambda h: self._header_read(repo_id, filename, h), self._fit_failed, name="remote header"
        )
        self._update_buttons()

    def _header_read(self, repo_id: str, filename: str, header: GGUFHeader) -> None:
        self._fit_task = None
        self.headers[(repo_id, filename)] = header
        self._show_fit()
        self._update_buttons()

    def _fit_failed(self, message: str) -> None:
        self._fit_task = None
        self.fit_info.clear()
        self.message.show_error(message)
        self._update_buttons()

    def _show_fit(self) -> None:
        group, header, est = self.current_group(), self.current_header(), self.last_estimate()
        if group is None or header is None or est is None:
            if self._fit_task is None:
                runnable = group is not None and not group.is_projector
                self.fit_info.setText(
                    "Check fit reads the file's header (a few MB) to tell whether it runs here." if runnable else ""
                )
                self.verdict.clear()
            return
        h = header
        self.fit_info.setText(
            f"Architecture {h.architecture or 'unknown'} · {h.quantization} · {h.n_layers} layers · embedding "
            f"{h.n_embd} · {h.n_head} heads ({h.n_head_kv} KV) · head dims {h.head_dim_k}/{h.head_dim_v}\n"
            f"Trained context {h.n_ctx_train or 0:,} tokens · chat template: "
            f"{'yes' if h.chat_template else 'no (a built-in one will be chosen)'}\n"
            f"Header read: {human_size(h.bytes_read)} of {human_size(group.size)}"
        )
        largest = f"largest context that fits: {context_text(est.max_ctx)}"
        self.verdict.setText(f"{fit_text(est)} at {context_text(est.n_ctx)} context — {largest}")
        palette = self.verdict.palette()
        palette.setColor(self.verdict.foregroundRole(), verdict_color(est.verdict))
        self.verdict.setPalette(palette)
        self.verdict.setToolTip(
            f"Weights {human_size(est.weights_bytes)} + KV cache {human_size(est.kv_bytes)} + "
            f"compute {human_size(est.compute_bytes)}"
        )

    def current_header(self) -> GGUFHeader | None:
        group = self.current_group()
        return self.headers.get((self.repo_id or "", group.first.path)) if group else None

    def last_estimate(self) -> fit.FitEstimate | None:
        """The verdict for the chosen file at the chosen context (capped at its trained one); None before Check fit."""
        group, header = self.current_group(), self.current_header()
        if group is None or header is None:
            return None
        shape = fit.ModelShape.from_header(header, total_weights=max(0, group.size - header.data_offset))
        n_ctx = min(self.machine.n_ctx, header.n_ctx_train or self.machine.n_ctx)
        return fit.estimate(shape, n_ctx, ram_free=self.machine.ram_free, vram_free=self.machine.vram_free)

    def _download(self) -> None:
        group = self.current_group()
        if group is not None and self.repo_id is not None and self.download_button.isEnabled():
            self.downloadRequested.emit(self.repo_id, self.revision, group)

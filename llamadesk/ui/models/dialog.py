"""The model manager window: Catalog, Hub, Downloads, Library, Compare and Settings tabs over one background task
runner."""

from __future__ import annotations

import logging

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core import hardware
from llamadesk.core.catalog import Catalog, Family, Quantization, Size, load_catalog
from llamadesk.core.downloads import DownloadJob, State
from llamadesk.core.hub import GGUFGroup
from llamadesk.paths import Paths
from llamadesk.ui.models.catalog_page import CatalogPage
from llamadesk.ui.models.common import ContextSpinBox, MachineState
from llamadesk.ui.models.download_manager import DownloadManager
from llamadesk.ui.models.downloads_page import DownloadsPage, error_text, job_title
from llamadesk.ui.models.hub_page import HubPage
from llamadesk.ui.models.library_page import LibraryPage
from llamadesk.ui.models.quality_page import QualityPage
from llamadesk.ui.models.settings_page import SettingsPage
from llamadesk.ui.workers import TaskContext, TaskRunner

log = logging.getLogger(__name__)

MAX_THREADS = 6  # two downloads, a search, a header read, the library and a spare


def _read_hardware(_ctx: TaskContext) -> hardware.HardwareSnapshot:
    """Free RAM and the GPUs' free VRAM; without llama.cpp's devices (a broken build) RAM alone."""
    try:
        return hardware.snapshot(with_devices=True)
    except Exception as exc:
        log.warning("GPU devices could not be listed (%s); judging the fit against RAM alone", exc)
        return hardware.snapshot(with_devices=False)


class ModelManagerDialog(QDialog):
    """Non-modal: downloads go on while the window is closed; `shutdown()` pauses them and joins every thread.

    `modelsChanged` fires when a download finished, a model was imported or used in place, or one was deleted."""

    modelsChanged = Signal()

    def __init__(
        self,
        paths: Paths,
        parent: QWidget | None = None,
        *,
        endpoint: str | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models — LlamaDesk")
        self.setModal(False)
        self.setWindowFlag(Qt.WindowType.WindowMaximizeButtonHint, True)
        self.resize(1180, 720)
        self.paths = paths.ensure()
        self._closed = False
        self.runner = TaskRunner(self, max_threads=MAX_THREADS)
        self.machine = MachineState(self)
        self.downloads = DownloadManager(self.paths.models, self.runner, endpoint=endpoint, parent=self)
        self.catalog = catalog or load_catalog()  # parsed once per process; a small file shipped with the app

        self.memory_label = QLabel()
        self.memory_label.setToolTip("Free memory now; the fit verdicts are judged against it")
        self.context_spin = ContextSpinBox()
        self.context_spin.setValue(self.machine.n_ctx)
        self.catalog_page = CatalogPage(self.catalog, self.machine, self.downloads)
        self.hub_page = HubPage(self.runner, self.machine, self.downloads, endpoint=endpoint)
        self.downloads_page = DownloadsPage(self.downloads)
        self.library_page = LibraryPage(self.paths.models, self.runner)
        self.settings_page = SettingsPage(self.paths.models, self.runner, endpoint=endpoint)
        self.quality_page = QualityPage(self.paths.models, self.runner)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.catalog_page, "Catalog")
        self.tabs.addTab(self.hub_page, "Hub")
        self.tabs.addTab(self.downloads_page, "Downloads")
        self.tabs.addTab(self.library_page, "Library")
        self.tabs.addTab(self.quality_page, "Compare")
        self.tabs.addTab(self.settings_page, "Settings")
        self.status = QLabel()
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close_button = buttons.button(QDialogButtonBox.StandardButton.Close)
        close_button.setAutoDefault(False)  # Enter in a field never closes the window; Esc and a click do
        buttons.rejected.connect(self.close)

        header = QHBoxLayout()
        header.addWidget(self.memory_label, 1)
        header.addWidget(QLabel("Fit at context:"))
        header.addWidget(self.context_spin)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(bottom)

        self.context_spin.valueChanged.connect(self.machine.set_n_ctx)
        self.machine.changed.connect(self._show_memory)
        self.catalog_page.downloadRequested.connect(self.download_from_catalog)
        self.hub_page.downloadRequested.connect(self.download_from_hub)
        self.downloads.jobFinished.connect(self._download_finished)
        self.downloads.jobsChanged.connect(self._update_downloads_tab)
        self.downloads.jobChanged.connect(self._job_changed)
        self.library_page.modelsChanged.connect(self.modelsChanged)
        self.library_page.modelsChanged.connect(self.quality_page.refresh)
        self.quality_page.modelsChanged.connect(self.library_page.refresh)
        self.quality_page.modelsChanged.connect(self.modelsChanged)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)  # a safety net: the main window calls shutdown() itself

        quick = hardware.snapshot(with_devices=False)  # psutil only: instant; the GPUs follow in the background
        self.machine.set_memory(quick.ram_available, 0, ram_total=quick.ram_total, known=False)
        self.runner.run_in_background(
            _read_hardware, self._hardware_read, self._hardware_failed, name="hardware snapshot"
        )
        self.downloads.reload()
        self.library_page.refresh()
        self.quality_page.refresh()

    # -- machine ------------------------------------------------------------------------------------------------
    def _hardware_read(self, snap: hardware.HardwareSnapshot) -> None:
        self.machine.set_memory(
            snap.ram_available,
            snap.vram_free,
            ram_total=snap.ram_total,
            gpu_names=[g.description or g.name for g in snap.gpus],
        )

    def _hardware_failed(self, message: str) -> None:
        log.warning("Reading the hardware failed: %s", message)
        self.machine.set_memory(self.machine.ram_free, 0, ram_total=self.machine.ram_total)

    def _show_memory(self) -> None:
        self.memory_label.setText(self.machine.summary())

    # -- downloads ----------------------------------------------------------------------------------------------
    def download_from_catalog(self, family: Family, size: Size, quant: Quantization) -> None:
        name = f"{family.name} {size.label} · {quant.name}"
        self.downloads.enqueue(quant.repo, quant.files, license=size.license, display_name=name)
        self.status.setText(f"{name} is queued; the Downloads tab shows its progress.")

    def download_from_hub(self, repo_id: str, revision: str, group: GGUFGroup) -> None:
        files = [f.path for f in group.files]
        entry = self.catalog.find_file(repo_id, files[0])
        license, name = (entry[1].license, f"{entry[0].name} {entry[1].label} · {entry[2].name}") if entry else ("", "")
        self.downloads.enqueue(repo_id, files, revision=revision, license=license, display_name=name)
        self.status.setText(f"{name or group.name} is queued; the Downloads tab shows its progress.")

    def _download_finished(self, job: DownloadJob) -> None:
        self.status.setText(f"{job_title(job)} is downloaded and verified; it is in your library now.")
        self.library_page.refresh()
        self.quality_page.refresh()
        self.modelsChanged.emit()

    def _update_downloads_tab(self) -> None:
        active = self.downloads.active_count()
        index = self.tabs.indexOf(self.downloads_page)
        self.tabs.setTabText(index, f"Downloads ({active})" if active else "Downloads")

    def _job_changed(self, job_id: str) -> None:
        """The footer never says a download "is queued" after it failed: it says why, in the Downloads tab's words."""
        self._update_downloads_tab()
        job = self.downloads.job(job_id)
        busy = self.downloads.is_running(job_id) or self.downloads.is_waiting(job_id)
        if job is not None and job.state is State.FAILED and not busy:
            self.status.setText(f"{job_title(job)}: {error_text(job)}")

    # -- closing ------------------------------------------------------------------------------------------------
    def show_tab(self, name: str) -> None:
        """ "catalog", "hub", "downloads", "library", "compare" or "settings"."""
        pages = {
            "catalog": self.catalog_page,
            "hub": self.hub_page,
            "downloads": self.downloads_page,
            "library": self.library_page,
            "compare": self.quality_page,
            "settings": self.settings_page,
        }
        self.tabs.setCurrentWidget(pages[name])

    def shutdown(self) -> bool:
        """Pauses the downloads (their partial files stay for the next start) and waits for every thread."""
        if self._closed:
            return True
        self._closed = True
        self.downloads.shutdown()
        self.quality_page.shutdown()
        return self.runner.shutdown()

"""The welcome page: shown above an empty chat while the starter model is the only model. It says what the starter
can and cannot do and offers three catalog chat models that fit this machine (core.catalog.welcome_picks), each
with one Download button that queues it as the catalog does. Offline, it says so once; the starter stays ready."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.starter import STARTER
from llamadesk.ui.model_choice import human_size

if TYPE_CHECKING:
    from llamadesk.core.catalog import Catalog, Pick
    from llamadesk.core.library import LocalModel
    from llamadesk.ui.chat.model import MessageListModel
    from llamadesk.ui.model_picker import ModelPicker
    from llamadesk.ui.navigation import Navigation
    from llamadesk.ui.window_state import WindowState

log = logging.getLogger(__name__)

STARTER_WORDS = (
    "The starter model, SmolLM2 135M, is ready now: it chats, answers simple questions and rewrites or summarises "
    "short texts on any computer. It is too small to trust with facts, arithmetic, code or long conversations; "
    "each model below does all of that far better."
)
OFFLINE_WORDS = (
    "You are offline, so the download waits: press Retry under File → Models… → Downloads when you are back "
    "online. The starter model is ready to chat meanwhile."
)


def only_starter(models: list[LocalModel]) -> bool:
    """Whether the starter model is the only local model (the welcome page's moment)."""
    return len(models) == 1 and models[0].path.name == STARTER.file_name


class WelcomePage(QFrame):
    """Two sentences on the starter, then one row per suggestion: its label, name, size and a Download button."""

    downloadRequested = Signal(object)  # Pick

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomePage")
        self.setAccessibleName("Welcome")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel("Welcome to LlamaDesk")
        font = QFont(self.title.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.title.setFont(font)
        self.about = QLabel(STARTER_WORDS)
        self.about.setObjectName("welcomeStarter")
        self.about.setWordWrap(True)
        self.heading = QLabel("Chat models that fit this computer:")
        self.offline = QLabel(OFFLINE_WORDS)
        self.offline.setObjectName("welcomeOffline")
        self.offline.setWordWrap(True)
        self.offline.hide()
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(12)
        self.grid.setColumnStretch(1, 1)
        self.buttons: list[QPushButton] = []
        self.picks: list[Pick] = []
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.about)
        layout.addWidget(self.heading)
        layout.addLayout(self.grid)
        layout.addWidget(self.offline)

    def set_picks(self, picks: list[Pick]) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item is not None and (widget := item.widget()) is not None:
                widget.hide()  # at once: deleteLater waits for the event loop, and the old row would show till then
                widget.deleteLater()
        self.picks, self.buttons = list(picks), []
        bold = QFont(self.font())
        bold.setBold(True)
        for row, pick in enumerate(picks):
            label = QLabel(pick.label.capitalize())
            label.setFont(bold)
            approx = "≈ " if pick.quant.size_approx else ""
            name = QLabel(f"{pick.name} · {approx}{human_size(pick.quant.size_bytes)}")
            name.setWordWrap(True)
            name.setToolTip(f"{pick.family.description}\nLicense: {pick.size.license}")
            button = QPushButton("Download")
            button.setObjectName(f"welcomeDownload{row}")
            button.setAccessibleName(f"Download {pick.name} ({pick.label})")
            button.setToolTip(f"Download {pick.name} {pick.quant.name}, {approx}{human_size(pick.quant.size_bytes)}")
            button.clicked.connect(lambda _=False, pick=pick, button=button: self._download(pick, button))
            self.grid.addWidget(label, row, 0)
            self.grid.addWidget(name, row, 1)
            self.grid.addWidget(button, row, 2)
            self.buttons.append(button)
        self.heading.setVisible(bool(picks))

    def _download(self, pick: Pick, button: QPushButton) -> None:
        button.setEnabled(False)
        button.setText("Queued")
        self.downloadRequested.emit(pick)

    def show_offline(self) -> None:
        """Once: the line appears and stays; asking again changes nothing."""
        self.offline.show()


class WelcomeController(QObject):
    """Shows the page above the chat while the starter is the only model and the chat is empty; its Download
    buttons queue the model in the model manager (opened on its Downloads tab), as the catalog page does."""

    def __init__(
        self, state: WindowState, *, column: QVBoxLayout, above: QWidget, picker: ModelPicker,
        chat_model: MessageListModel, navigation: Navigation, catalog: Callable[[], Catalog] | None = None,
        parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.state, self.picker, self.chat_model, self.navigation = state, picker, chat_model, navigation
        self._catalog = catalog
        self.page = WelcomePage()
        self.page.hide()
        column.insertWidget(max(0, column.indexOf(above)), self.page)  # right above the (empty) chat
        self.ram_free, self.vram_free = 0, 0
        self._picks_for: tuple[int, int] | None = None
        self._watched: set[int] = set()
        self.page.downloadRequested.connect(self.download)
        state.conversationChanged.connect(self.update)
        state.modelChanged.connect(self.update)
        for signal in (chat_model.rowsInserted, chat_model.rowsRemoved, chat_model.modelReset):
            signal.connect(self.update)
        combo = picker.combo.model()  # the picker lists again (a download finished, Refresh)
        for signal in (combo.rowsInserted, combo.rowsRemoved, combo.modelReset):
            signal.connect(self.update)

    def set_memory(self, ram_free: int, vram_free: int = 0) -> None:
        """The free memory the suggestions must fit (read from the machine when first shown)."""
        self.ram_free, self.vram_free = ram_free, vram_free
        self._picks_for = None
        self.update()

    def update(self, *_: object) -> None:
        wanted = only_starter(self.picker.models()) and self.chat_model.rowCount() == 0 and not self.state.closed
        if wanted and self._picks_for != (self.ram_free, self.vram_free):
            # Imported when first shown: the catalog's fit reads GGUF headers (numpy) and the window starts without.
            from llamadesk.core import hardware
            from llamadesk.core.catalog import CatalogError, load_catalog, welcome_picks

            if self.ram_free <= 0:
                self.ram_free = hardware.snapshot(with_devices=False).ram_available  # psutil only: instant
            try:
                catalog = self._catalog() if self._catalog is not None else load_catalog()
                picks = welcome_picks(catalog, ram_free=self.ram_free, vram_free=self.vram_free)
            except CatalogError as exc:
                log.warning("No suggestions on the welcome page: %s", exc)
                picks = []
            self.page.set_picks(picks)
            self._picks_for = (self.ram_free, self.vram_free)
        self.page.setVisible(wanted)

    def download(self, pick: Pick) -> None:
        self.navigation.show_model_manager()
        manager = self.navigation.model_manager
        if manager is None:
            return
        if id(manager) not in self._watched:
            self._watched.add(id(manager))
            manager.downloads.jobChanged.connect(self._job_changed)
        manager.download_from_catalog(pick.family, pick.size, pick.quant)
        manager.show_tab("downloads")

    def _job_changed(self, job_id: str) -> None:
        manager = self.navigation.model_manager
        job = manager.downloads.job(job_id) if manager is not None else None
        if job is not None and job.error_kind == "offline":
            self.page.show_offline()

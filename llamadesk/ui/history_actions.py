"""The window's history actions: File → Export…/Import…, a title from the model, Help → Open log folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QAction, QDesktopServices

from llamadesk.ui.export_dialog import HistoryTransfer
from llamadesk.ui.shortcuts import MenuId
from llamadesk.ui.title_suggester import TitleSuggester
from llamadesk.ui.workers import BackgroundQueries

if TYPE_CHECKING:
    from llamadesk.ui.main_window import MainWindow

ASKING = "Asking the model for a title… (the conversation's menu can stop it)"


class HistoryActions(QObject):
    """Wires export, import, suggested titles and the log folder into one MainWindow."""

    def __init__(self, window: MainWindow, queries: BackgroundQueries) -> None:
        super().__init__(window)
        self.window = window
        self.transfer = HistoryTransfer(window.history, queries, window, window.sidebar.selected_ids)
        self.titles = TitleSuggester(window.history, window.host, self)

        self.export_action = QAction("Export…", window)
        self.export_action.setStatusTip("Save the selected conversations, or all, as Markdown, HTML or JSON")
        self.import_action = QAction("Import…", window)
        self.import_action.setStatusTip("Add the conversations of a LlamaDesk JSON export")
        self.log_folder_action = QAction("Open log folder", window)
        self.log_folder_action.setStatusTip("Show LlamaDesk's log files (to attach to a bug report)")
        file_menu = window.menus[MenuId.FILE]
        existing = file_menu.actions()
        quit_at = next((a for a in existing if a is window.quit_action), None)
        if quit_at is not None:  # before the separator above Quit
            i = existing.index(quit_at)
            before = existing[i - 1] if i > 0 and existing[i - 1].isSeparator() else quit_at
            file_menu.insertActions(before, [self.export_action, self.import_action])
        else:
            file_menu.addActions([self.export_action, self.import_action])
        window.menus[MenuId.HELP].addAction(self.log_folder_action)

        self.export_action.triggered.connect(self.transfer.export)
        self.import_action.triggered.connect(self.transfer.import_conversations)
        self.log_folder_action.triggered.connect(self.open_log_folder)
        window.sidebar.exportRequested.connect(self.transfer.export)
        window.sidebar.titleRequested.connect(self.suggest_title)
        self.transfer.problem.connect(window.warn)
        self.transfer.exported.connect(self._on_exported)
        self.transfer.imported.connect(self._on_imported)
        self.titles.started.connect(lambda _cid: self._set_suggesting(True))
        self.titles.ended.connect(lambda: self._set_suggesting(False))
        self.titles.suggested.connect(self._on_title)
        self.titles.failed.connect(lambda sentence: window.warn("No title suggested", sentence))

    # --- the log folder -------------------------------------------------------------------------------------
    def open_log_folder(self) -> bool:
        """Opens the log folder in the file manager (made first if it is not there yet)."""
        folder = self.window.paths.logs
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.window.warn("Log folder not opened", f"The log folder {folder} could not be made ({exc.strerror}).")
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.window.warn("Log folder not opened", f"No program opened the folder; the logs are in {folder}.")
            return False
        return True

    # --- export and import ----------------------------------------------------------------------------------
    def _on_exported(self, path: str, count: int) -> None:
        what = "1 conversation" if count == 1 else f"{count} conversations"
        self.window.statusBar().showMessage(f"Exported {what} to {path}.", 10000)

    def _on_imported(self, ids: list[int]) -> None:
        what = "1 conversation" if len(ids) == 1 else f"{len(ids)} conversations"
        self.window.refresh_conversations()
        if ids:
            self.window.sidebar.select(ids[0])
        self.window.statusBar().showMessage(f"Imported {what}.", 10000)

    # --- a title from the model -----------------------------------------------------------------------------
    def suggest_title(self, cid: int) -> None:
        """Asks the loaded model for a title of `cid`; while it is asked, the same menu entry stops it."""
        if self.titles.is_running:
            self.titles.cancel()
            return
        w = self.window
        self.titles.suggest(cid, model_loaded=w.model_info is not None and not w.is_loading, busy=w.is_generating)

    def _set_suggesting(self, running: bool) -> None:
        self.window.sidebar.suggesting_title = running
        bar = self.window.statusBar()
        if running:
            bar.showMessage(ASKING)
        elif bar.currentMessage() == ASKING:
            bar.clearMessage()

    def _on_title(self, cid: int, title: str) -> None:
        self.window.refresh_conversations()
        self.window.statusBar().showMessage(f"Renamed to “{title}”.", 5000)
        self.window.sidebar.conversationRenamed.emit(cid, title)

    def shutdown(self) -> None:
        self.titles.shutdown()

"""The window's history actions: File → Export…/Import…, a title from the model, Help → Open log folder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QMainWindow, QMenu

from llamadesk.ui.export_dialog import HistoryTransfer
from llamadesk.ui.icons import icon
from llamadesk.ui.shortcuts import MenuId
from llamadesk.ui.title_suggester import TitleSuggester
from llamadesk.ui.workers import BackgroundQueries

if TYPE_CHECKING:
    from llamadesk.core.history import History
    from llamadesk.paths import Paths
    from llamadesk.ui.sidebar import Sidebar
    from llamadesk.ui.window_state import WindowState
    from llamadesk.ui.workers import EngineHost

ASKING = "Asking the model for a title… (the conversation's menu can stop it)"


class HistoryActions(QObject):
    """Wires export, import, suggested titles and the log folder into one main window: its File and Help menus
    (export and import go above the separator over `quit_action`), its sidebar and its status line."""

    def __init__(
        self,
        state: WindowState,
        window: QMainWindow,
        queries: BackgroundQueries,
        *,
        history: History,
        host: EngineHost,
        sidebar: Sidebar,
        menus: Mapping[MenuId, QMenu],
        paths: Paths,
        quit_action: QAction | None,
    ) -> None:
        super().__init__(window)
        self.state, self._window, self.sidebar, self.paths = state, window, sidebar, paths
        self.transfer = HistoryTransfer(history, queries, window, sidebar.selected_ids)
        self.titles = TitleSuggester(history, host, self)

        self.export_action = QAction(icon("export"), "Export…", window)
        self.export_action.setStatusTip("Save the selected conversations, or all, as Markdown, HTML or JSON")
        self.import_action = QAction(icon("open"), "Import…", window)
        self.import_action.setStatusTip("Add the conversations of a LlamaDesk JSON export")
        self.log_folder_action = QAction("Open log folder", window)
        self.log_folder_action.setStatusTip("Show LlamaDesk's log files (to attach to a bug report)")
        file_menu = menus[MenuId.FILE]
        existing = file_menu.actions()
        quit_at = next((a for a in existing if a is quit_action), None)
        if quit_at is not None:  # before the separator above Quit
            i = existing.index(quit_at)
            before = existing[i - 1] if i > 0 and existing[i - 1].isSeparator() else quit_at
            file_menu.insertActions(before, [self.export_action, self.import_action])
        else:
            file_menu.addActions([self.export_action, self.import_action])
        menus[MenuId.HELP].addAction(self.log_folder_action)

        self.export_action.triggered.connect(self.transfer.export)
        self.import_action.triggered.connect(self.transfer.import_conversations)
        self.log_folder_action.triggered.connect(self.open_log_folder)
        sidebar.exportRequested.connect(self.transfer.export)
        sidebar.titleRequested.connect(self.suggest_title)
        self.transfer.problem.connect(state.warn)
        self.transfer.exported.connect(self._on_exported)
        self.transfer.imported.connect(self._on_imported)
        self.titles.started.connect(lambda _cid: self._set_suggesting(True))
        self.titles.ended.connect(lambda: self._set_suggesting(False))
        self.titles.suggested.connect(self._on_title)
        self.titles.failed.connect(lambda sentence: state.warn("No title suggested", sentence))

    # --- the log folder -------------------------------------------------------------------------------------
    def open_log_folder(self) -> bool:
        """Opens the log folder in the file manager (made first if it is not there yet)."""
        folder = self.paths.logs
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.state.warn("Log folder not opened", f"The log folder {folder} could not be made ({exc.strerror}).")
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.state.warn("Log folder not opened", f"No program opened the folder; the logs are in {folder}.")
            return False
        return True

    # --- export and import ----------------------------------------------------------------------------------
    def _on_exported(self, path: str, count: int) -> None:
        what = "1 conversation" if count == 1 else f"{count} conversations"
        self.state.show_notice(f"Exported {what} to {path}.", 10000)

    def _on_imported(self, ids: list[int]) -> None:
        what = "1 conversation" if len(ids) == 1 else f"{len(ids)} conversations"
        self.state.conversations_changed()
        if ids:
            self.sidebar.select(ids[0])
        self.state.show_notice(f"Imported {what}.", 10000)

    # --- a title from the model -----------------------------------------------------------------------------
    def suggest_title(self, cid: int) -> None:
        """Asks the loaded model for a title of `cid`; while it is asked, the same menu entry stops it."""
        if self.titles.is_running:
            self.titles.cancel()
            return
        s = self.state
        self.titles.suggest(cid, model_loaded=s.model_info is not None and not s.is_loading, busy=s.is_generating)

    def _set_suggesting(self, running: bool) -> None:
        self.sidebar.suggesting_title = running
        if running:
            self.state.show_notice(ASKING)
        elif self._window.statusBar().currentMessage() == ASKING:  # cleared only if no other line replaced it
            self.state.show_notice("")

    def _on_title(self, cid: int, title: str) -> None:
        self.state.conversations_changed()
        self.state.show_notice(f"Renamed to “{title}”.", 5000)
        self.sidebar.conversationRenamed.emit(cid, title)

    def shutdown(self) -> None:
        self.titles.shutdown()

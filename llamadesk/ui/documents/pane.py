"""The Documents pane (View → Documents): collections of your files to chat with — make one, add files and folders,
index them in the background (pause, cancel), see what could not be read, choose which ones the conversation shown
uses; the roots are watched and a change is indexed a moment later. "Search by meaning" chooses a collection's
embedding model among the models folder's files that can embed: its passages are embedded in the same queue of runs.

Every file and index access runs in a background function (jobs.py) that opens the collection in its own thread; the
GUI thread keeps only snapshots. Names, not Collection objects, cross threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.documents.context import DOCS_KEY, collections_of
from llamadesk.core.documents.extract import HTML_SUFFIXES, READERS, TEXT_SUFFIXES
from llamadesk.core.documents.index import IndexReport
from llamadesk.core.documents.text import size_text
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.library import LocalModel
from llamadesk.ui.documents import jobs
from llamadesk.ui.documents.indexer import Indexer
from llamadesk.ui.documents.jobs import CollectionView, IndexResult
from llamadesk.ui.documents.watcher import RootWatcher
from llamadesk.ui.documents.widgets import CollectionList, IndexProgress, duration_text, meaning_text
from llamadesk.ui.workers import TaskContext, TaskRunner

if TYPE_CHECKING:
    from llamadesk.core.history import History
    from llamadesk.ui.window_state import WindowState

SHORTCUT = "Ctrl+Shift+D"
FILE_FILTER = (
    "Documents (" + " ".join(f"*{s}" for s in sorted(TEXT_SUFFIXES | HTML_SUFFIXES | set(READERS))) + ");;All files (*)"
)


def outcome_text(name: str, report: IndexReport) -> str:
    """One line on what a run did."""
    if report.cancelled:
        return f"Stopped indexing “{name}”; what was indexed is kept, and Re-index goes on from there."
    changed = [f"{report.read:,} file(s) read"] if report.read or not report.removed else []
    changed += [f"{report.removed:,} removed"] if report.removed else []
    problems = f", {report.problems:,} could not be read" if report.problems else ""
    embedded = f", {report.embedded:,} passage(s) embedded" if report.embedded else ""
    lost = f" Search by meaning: {report.embedding_problem}" if report.embedding_problem else ""
    return f"“{name}” is up to date: {', '.join(changed)}{problems}{embedded} ({duration_text(report.seconds)}).{lost}"


def embed_outcome_text(name: str, result: IndexResult) -> str:
    """One line on what a run that embeds did."""
    if result.report.cancelled:
        return (f"Stopped embedding “{name}”; the passages embedded are kept, and choosing {result.embedded_with} "
                "again goes on from there.")  # fmt: skip
    return (f"“{name}” is searched by meaning too: {result.report.embedded:,} passage(s) embedded with "
            f"{result.embedded_with} ({duration_text(result.report.seconds)}).")  # fmt: skip


class DocumentsPane(QWidget):
    """The collections and what they hold; the runs, the watcher and the conversation's choice of collections."""

    collectionsChanged = Signal()  # the list shows the collections as they are on disk now
    indexStarted = Signal(str)  # a run of this collection began (indexing it, or embedding its passages)
    indexFinished = Signal(str, object)  # the collection, its IndexReport (cancelled too), or None when it failed
    embeddingModelsChanged = Signal()  # the models folder's embedding models were read
    usageChanged = Signal(object, list)  # the conversation, the collections it uses now

    def __init__(
        self, state: WindowState, *, history: History, folder: Path | None = None, models_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self._state, self._history, self.folder, self.models_dir = state, history, folder, models_dir
        self.embedding_models: list[LocalModel] = []  # the models folder's files that can embed
        self.runner = TaskRunner(self, max_threads=1)  # quick jobs, one at a time in the order asked: create, add…
        self.indexer = Indexer(folder, self)
        self.watcher = RootWatcher(self)
        self._views: dict[str, CollectionView] = {}
        self._used: list[str] = []  # the shown conversation's collections
        self._asked: set[str] = set()  # runs the user asked for: their failure is a dialog, not a line
        self._closed = False
        self._build()
        self._connect()
        self._on_conversation(state.current_cid)
        self.refresh()

    # --- construction --------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.new_action = self._action("New collection…", "Make a collection: a named set of files and folders",
                                       self.ask_new_collection)  # fmt: skip
        self.add_files_action = self._action("Add files…", "Add files to the collection", self.ask_add_files)
        self.add_folder_action = self._action("Add folder…", "Add a folder and everything in it", self.ask_add_folder)
        self.remove_root_action = self._action("Remove", "Remove the chosen folders or files from the collection "
                                               "(the files themselves stay)", self.remove_selected_roots)  # fmt: skip
        self.reindex_action = self._action("Re-index", "Read what changed since the last time", self.reindex)
        self.delete_action = self._action("Delete…", "Delete the collection and its index (never your files)",
                                          self.delete_collection)  # fmt: skip

        self.list = CollectionList()
        self.use_hint = QLabel("Tick the collections this conversation's replies should draw on.")
        self.use_hint.setWordWrap(True)
        self.meaning_combo = QComboBox()
        self.meaning_combo.setAccessibleName("Search by meaning")
        self.meaning_combo.setToolTip("Search the collection by meaning too, with an embedding model of the models "
                                      "folder (its passages are embedded now), or by its words alone")  # fmt: skip
        self.meaning_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.meaning_combo.setMinimumContentsLength(16)
        self.meaning_label = QLabel()
        self.meaning_label.setWordWrap(True)
        self.roots_label = QLabel()
        self.roots = QListWidget()
        self.roots.setAccessibleName("Folders and files of the collection")
        self.roots.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.watch_label = QLabel()
        self.watch_label.setWordWrap(True)
        self.progress = IndexProgress()
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.hide()
        self.problems_label = QLabel()
        self.problems = QListWidget()
        self.problems.setAccessibleName("Files that could not be read")
        self.problems.setWordWrap(True)
        self.problems.setTextElideMode(Qt.TextElideMode.ElideMiddle)

        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.use_hint)
        layout.addLayout(self._buttons(self.new_action, self.reindex_action, self.delete_action))
        meaning = QHBoxLayout()
        meaning_title = QLabel("Search by meaning:")
        meaning_title.setBuddy(self.meaning_combo)
        meaning.addWidget(meaning_title)
        meaning.addWidget(self.meaning_combo, 1)
        layout.addLayout(meaning)
        layout.addWidget(self.meaning_label)
        layout.addWidget(self.roots_label)
        layout.addWidget(self.roots, 1)
        layout.addLayout(self._buttons(self.add_files_action, self.add_folder_action, self.remove_root_action))
        layout.addWidget(self.watch_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.problems, 1)

    def _action(self, text: str, tip: str, slot: Callable[[], object]) -> QAction:
        action = QAction(text, self)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    @staticmethod
    def _buttons(*actions: QAction) -> QHBoxLayout:
        row = QHBoxLayout()
        for action in actions:
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            row.addWidget(button)
        row.addStretch(1)
        return row

    def _connect(self) -> None:
        self._state.conversationChanged.connect(self._on_conversation)
        self.list.currentItemChanged.connect(lambda *_: self._show_selected())
        self.list.useToggled.connect(self._on_use_toggled)
        self.roots.itemSelectionChanged.connect(self._update_actions)
        self.indexer.started.connect(self._on_started)
        self.indexer.progressed.connect(lambda _name, p: self.progress.show_progress(p))
        self.indexer.finished.connect(self._on_finished)
        self.indexer.failed.connect(self._on_failed)
        self.indexer.embedFailed.connect(self._on_embed_failed)
        self.meaning_combo.activated.connect(self._on_meaning_chosen)
        self.indexer.pausedChanged.connect(self.progress.set_paused)
        self.progress.pauseToggled.connect(self.indexer.set_paused)
        self.progress.cancelRequested.connect(self.cancel)
        self.watcher.changed.connect(self._on_watched_change)

    # --- what it shows ---------------------------------------------------------------------------------------------
    @property
    def views(self) -> list[CollectionView]:
        return [self._views[n] for n in sorted(self._views, key=str.casefold)]

    def view(self, name: str) -> CollectionView | None:
        return self._views.get(name)

    def selected(self) -> str | None:
        name = self.list.selected_name()
        return name if name in self._views else None

    def used(self) -> list[str]:
        """The collections the conversation shown uses."""
        return list(self._used)

    def _fill(self) -> None:
        self.list.fill(self.views, self._used, can_use=not self._state.closed, indexing=self.indexer.running)
        self._show_selected()

    def _show_selected(self) -> None:
        view = self._views.get(self.selected() or "")
        self.roots.clear()
        self.problems.clear()
        if view is None:
            self.roots_label.setText("Make a collection, then add files and folders to it." if not self._views
                                     else "Choose a collection.")  # fmt: skip
            self.watch_label.clear()
            self.meaning_label.clear()
            self.problems_label.clear()
        else:
            self.roots_label.setText(f"Folders and files in “{view.name}” ({size_text(view.bytes_on_disk)} index):")
            for root in view.roots:
                item = QListWidgetItem(str(root))
                item.setData(Qt.ItemDataRole.UserRole, str(root))
                item.setToolTip(str(root))
                self.roots.addItem(item)
            self.watch_label.setText(self._watch_text(view))
            self.meaning_label.setText(meaning_text(view))
            shown = len(view.problem_list)
            more = f", the first {shown:,} shown" if shown < view.problems else ""
            read_all = "Every file found could be read." if view.files else ""
            self.problems_label.setText(f"Could not be read ({view.problems:,}{more}):" if view.problems
                                        else read_all)  # fmt: skip
            for problem in view.problem_list:
                item = QListWidgetItem(problem.sentence or Path(problem.path).name)
                item.setToolTip(problem.path)
                item.setData(Qt.ItemDataRole.UserRole, problem.path)
                self.problems.addItem(item)
        self.problems.setVisible(bool(view and view.problems))
        self._fill_meaning(view)
        self._update_actions()

    def _fill_meaning(self, view: CollectionView | None) -> None:
        """Words only, then the models that can embed; the collection's own model selected (listed even when it is
        not in the models folder)."""
        combo = self.meaning_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("Words only (BM25)", "")
        combo.setItemData(0, "Search by the words of the passages alone; no model", Qt.ItemDataRole.ToolTipRole)
        for model in self.embedding_models:
            combo.addItem(model.name, str(model.path))
            combo.setItemData(combo.count() - 1, str(model.path), Qt.ItemDataRole.ToolTipRole)
        if view is not None and view.embedding_path:
            row = combo.findData(view.embedding_path)
            if row < 0:
                combo.addItem(f"{view.embedding} (not in the models folder)", view.embedding_path)
                row = combo.count() - 1
            combo.setCurrentIndex(row)
        combo.blockSignals(False)

    def _watch_text(self, view: CollectionView) -> str:
        if not view.roots:
            return ""
        if not view.watch_complete or (self.watcher.capped and not set(view.watch) <= self.watcher.watched()):
            return "Too many folders to watch them all: press Re-index after changing files."
        return "Changes to these files are indexed a moment after they happen."

    def _update_actions(self) -> None:
        name = self.selected()
        has = name is not None and not self._closed
        self.new_action.setEnabled(not self._closed)
        for action in (self.add_files_action, self.add_folder_action, self.delete_action):
            action.setEnabled(has)
        self.meaning_combo.setEnabled(has)
        view = self._views.get(name or "")
        self.reindex_action.setEnabled(has and view is not None and bool(view.roots) and name != self.indexer.running)
        self.remove_root_action.setEnabled(has and bool(self.roots.selectedItems()))

    def _put(self, view: CollectionView) -> None:
        self._views[view.name] = view
        self.watcher.watch(view.name, view.watch)
        self._fill()
        self.collectionsChanged.emit()

    # --- background jobs --------------------------------------------------------------------------------------------
    def _job(self, fn: Callable[[], Any], done: Callable[[Any], None], title: str) -> None:
        """Runs `fn` off the GUI thread, after the jobs asked before it; its error is a dialog titled `title`."""

        def work(_ctx: TaskContext) -> Any:
            return fn()

        self.runner.run_in_background(work, done, lambda sentence: self._state.warn(title, sentence), name=title)

    def refresh(self) -> None:
        """Reads every collection again (in the background)."""
        folder, models_dir = self.folder, self.models_dir
        self._job(lambda: jobs.read_all(folder), self._on_listed, "Collections not read")
        self._job(lambda: jobs.embedding_models(models_dir), self._on_embedding_models, "Models not read")

    def _on_embedding_models(self, models: list[LocalModel]) -> None:
        self.embedding_models = models
        self._fill_meaning(self._views.get(self.selected() or ""))
        self.embeddingModelsChanged.emit()

    def _on_listed(self, views: list[CollectionView]) -> None:
        for gone in set(self._views) - {v.name for v in views}:
            self.watcher.forget(gone)
        self._views = {}
        for view in views:
            self._views[view.name] = view
            self.watcher.watch(view.name, view.watch)
        self._fill()
        self.collectionsChanged.emit()

    def create_collection(self, name: str) -> None:
        """Makes the collection (a sentence when the name is taken or not allowed) and selects it."""
        folder = self.folder

        def made(view: CollectionView) -> None:
            self._put(view)
            self.list.select(view.name)

        self._job(lambda: jobs.create(name, folder), made, "Collection not made")

    def add_paths(self, paths: Sequence[Path], name: str | None = None) -> None:
        """Adds files and folders to the collection (the one selected by default), then indexes it."""
        name = name or self.selected()
        if name is None or not paths:
            return
        chosen, folder = list(paths), self.folder

        def added(view: CollectionView) -> None:
            self._put(view)
            self.reindex(view.name)

        self._job(lambda: jobs.add_roots(name, chosen, folder), added, "Not added")

    def remove_roots(self, paths: Sequence[Path], name: str | None = None) -> None:
        """Forgets these roots of the collection; its next run (started now) takes their files out of the index."""
        name = name or self.selected()
        if name is None or not paths:
            return
        chosen, folder = list(paths), self.folder

        def removed(view: CollectionView) -> None:
            self._put(view)
            self.reindex(view.name)

        self._job(lambda: jobs.remove_roots(name, chosen, folder), removed, "Not removed")

    def remove_selected_roots(self) -> None:
        self.remove_roots([Path(str(i.data(Qt.ItemDataRole.UserRole))) for i in self.roots.selectedItems()])

    def reindex(self, name: str | None = None) -> None:
        """Indexes the collection (the one selected by default) now, or after the run in flight."""
        name = name or self.selected()
        if name is not None and name in self._views:
            self._asked.add(name)
            self.indexer.request(name)

    def delete_collection(self, name: str | None = None, *, confirm: bool = True) -> bool:
        """Deletes the collection's index file once asked (your files are never touched); False when not asked to."""
        name = name or self.selected()
        if name is None:
            return False
        if confirm:
            answer = QMessageBox.question(
                self, "Delete collection",
                f"Delete the collection “{name}”?\n\nIts index is deleted. Your files themselves are not touched.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel,
            )  # fmt: skip
            if answer != QMessageBox.StandardButton.Yes:
                return False
        self.watcher.forget(name)
        self.indexer.forget(name)  # its run stops between files; the file is deleted once it has
        folder = self.folder
        self.indexer.after(name, lambda: self._job(lambda: jobs.delete(name, folder), self._on_deleted,
                                                   "Collection not deleted"))  # fmt: skip
        return True

    def _on_deleted(self, name: str) -> None:
        self._views.pop(name, None)
        if name in self._used:
            self.set_used(name, False)  # the conversation shown would refuse to send with it
        self._fill()
        self.collectionsChanged.emit()
        self._state.show_notice(f"Deleted the collection “{name}” and its index; your files are untouched.", 6000)

    # --- search by meaning --------------------------------------------------------------------------------------------
    def _on_meaning_chosen(self, row: int) -> None:
        path = str(self.meaning_combo.itemData(row) or "")
        view = self._views.get(self.selected() or "")
        if view is not None and path != view.embedding_path:
            self.set_embedding_model(Path(path) if path else None, view.name)

    def set_embedding_model(self, model: Path | None, name: str | None = None) -> None:
        """Searches the collection (the one selected by default) by meaning with `model`: its passages are embedded
        in the background, after the run in flight; None: by its words alone, its vectors deleted. A model that
        cannot embed is one sentence, and the collection keeps what it had."""
        name = name or self.selected()
        if name is None or name not in self._views or self._closed:
            return
        if model is not None:
            self._asked.add(name)
            self.indexer.embed(name, model)
            return
        self.indexer.drop_embedding(name)  # an embedding run of it stops between batches; then the model goes
        folder = self.folder

        def removed(view: CollectionView) -> None:
            if view.name in self._views:
                self._put(view)
            self._set_status(f"“{view.name}” is searched by its words alone (BM25); its vectors were deleted.")

        self.indexer.after(name, lambda: self._job(lambda: jobs.unembed(name, folder), removed, "Not changed"))

    def _on_embed_failed(self, name: str, sentence: str) -> None:
        self._asked.discard(name)
        self.progress.hide()
        self._set_status(f"“{name}” was not embedded: {sentence}")
        self._show_selected()  # the choice goes back to what the collection has
        self._state.warn("Not searched by meaning", sentence)
        self.indexFinished.emit(name, None)

    # --- indexing ---------------------------------------------------------------------------------------------------
    def pause(self) -> None:
        self.indexer.set_paused(True)

    def resume(self) -> None:
        self.indexer.set_paused(False)

    def cancel(self) -> None:
        if self.indexer.running is not None:
            self.progress.stopping()
        self.indexer.cancel()

    def _on_started(self, name: str) -> None:
        model = self.indexer.embedding
        self.progress.begin(name, model.name if model is not None else "")
        self.progress.set_paused(self.indexer.paused)
        self.progress.show()
        self._set_status("")
        self._update_actions()
        self.indexStarted.emit(name)

    def _on_finished(self, name: str, result: IndexResult) -> None:
        self._asked.discard(name)
        self.progress.hide()
        self._set_status(
            embed_outcome_text(name, result) if result.embedded_with else outcome_text(name, result.report)
        )
        if name in self._views:  # not deleted meanwhile
            self._put(result.view)
        self.indexFinished.emit(name, result.report)

    def _on_failed(self, name: str, sentence: str) -> None:
        self.progress.hide()
        self._set_status(f"“{name}” was not indexed: {sentence}")
        if name in self._asked:
            self._asked.discard(name)
            self._state.warn("Not indexed", sentence)
        self._update_actions()
        self.indexFinished.emit(name, None)

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _on_watched_change(self, name: str) -> None:
        if name in self._views and not self._closed:
            self.indexer.request(name)

    # --- the conversation's collections -----------------------------------------------------------------------------
    def _on_conversation(self, cid: int | None) -> None:
        self._used = []
        if cid is not None:
            try:
                self._used = collections_of(self._history.get_conversation(cid).sampling)
            except LlamaDeskError:
                self._used = []
        self._fill()

    def _on_use_toggled(self, name: str, on: bool) -> None:
        # Later: making a conversation (none shown) shows it, which fills the list again, under this item's signal.
        QTimer.singleShot(0, self, lambda: self.set_used(name, on))

    def set_used(self, name: str, on: bool) -> None:
        """Ticks or unticks the collection for the conversation shown (one is made when none is), stored in its
        sampling JSON under "docs"."""
        try:
            cid = self._state.current_cid
            if cid is None:
                if not on:
                    return
                cid = self._state.ensure_conversation()
            sampling = dict(self._history.get_conversation(cid).sampling)
            names = [n for n in collections_of(sampling) if n != name] + ([name] if on else [])
            sampling[DOCS_KEY] = names
            self._history.update_conversation(cid, sampling=sampling)
        except LlamaDeskError as exc:
            self._state.warn("Collection not used", str(exc))
            self._fill()
            return
        if cid == self._state.current_cid:
            self._used = names
        self._fill()
        self.usageChanged.emit(cid, names)

    # --- choosing with dialogs -------------------------------------------------------------------------------------
    def ask_new_collection(self) -> None:
        name, ok = QInputDialog.getText(self, "New collection", "Name of the new collection:")
        if ok and name.strip():
            self.create_collection(name)

    def ask_add_files(self) -> None:
        name = self.selected()
        if name is None:
            return
        files, _ = QFileDialog.getOpenFileNames(self, f"Add files to “{name}”", str(Path.home()), FILE_FILTER)
        self.add_paths([Path(f) for f in files], name)

    def ask_add_folder(self) -> None:
        name = self.selected()
        if name is None:
            return
        folder = QFileDialog.getExistingDirectory(self, f"Add a folder to “{name}”", str(Path.home()))
        if folder:
            self.add_paths([Path(folder)], name)

    # --- closing -----------------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stops watching, cancels the run in flight (a paused one too) and waits for the background threads."""
        if self._closed:
            return
        self._closed = True
        self.watcher.stop()
        self.indexer.shutdown()
        self.runner.shutdown()
        self._update_actions()


class DocumentsDock(QDockWidget):
    """The pane in a closable dock, tabbed with `beside` (the settings) when given; View → Documents shows it."""

    def __init__(
        self, state: WindowState, window: QMainWindow, *, history: History, view_menu: QMenu,
        beside: QDockWidget | None = None, folder: Path | None = None,
    ) -> None:  # fmt: skip
        super().__init__("Documents", window)
        self.setObjectName("documentsDock")
        self.pane = DocumentsPane(state, history=history, folder=folder, parent=self)
        self.setWidget(self.pane)
        self.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetClosable | QDockWidget.DockWidgetFeature.DockWidgetMovable
        )
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self)
        if beside is not None:
            window.tabifyDockWidget(beside, self)
        self.hide()
        self._window = window
        self._name_tab_bars()
        self.visibilityChanged.connect(self._on_visibility)
        action = self.toggle_action = self.toggleViewAction()
        action.setText("Documents")
        action.setShortcut(SHORTCUT)
        action.setToolTip(f"Show or hide your document collections ({SHORTCUT})")
        action.setStatusTip("Collections of your files that a conversation's replies can draw on")
        action.toggled.connect(self._on_toggled)
        existing = view_menu.actions()
        if len(existing) > 1:
            view_menu.insertAction(existing[1], action)  # after Settings
        else:
            view_menu.addAction(action)

    def _on_visibility(self, visible: bool) -> None:
        self._name_tab_bars()
        if visible:  # read again: `llamadesk docs` may have made, indexed or deleted collections meanwhile
            self.pane.refresh()

    def _on_toggled(self, on: bool) -> None:
        if on:  # shown beside the settings: its tab comes to the front once the layout has placed it
            QTimer.singleShot(0, self, self._bring_forward)

    def _bring_forward(self) -> None:
        if self.isVisible():
            self.raise_()
            self.pane.list.setFocus()

    def _name_tab_bars(self) -> None:
        """The tabs Qt makes for docks sharing a place have no name a screen reader could say: give them one."""
        for bar in self._window.findChildren(QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly):
            if not bar.accessibleName():
                bar.setAccessibleName("Docked panels")

    def shutdown(self) -> None:
        self.pane.shutdown()

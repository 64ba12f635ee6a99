"""The main window: conversations on the left, the chat in the middle, sampling on the right, model on top."""

from __future__ import annotations

import logging

from PySide6.QtCore import QCoreApplication, QEvent, Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QMainWindow,
    QMessageBox,
    QSplitter,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.conversation.lifecycle import NEW_TITLE
from llamadesk.core.engines.api import LoadOptions, ModelInfo
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history import History
from llamadesk.core.library import LocalModel, projector_for
from llamadesk.core.presets import PresetStore
from llamadesk.core.settings import AppSettings, load_settings
from llamadesk.paths import Paths
from llamadesk.ui.about_dialog import AboutAction
from llamadesk.ui.chat.appearance import ChatAppearance
from llamadesk.ui.chat.composer import Composer
from llamadesk.ui.chat.context_meter import ReplyFigures
from llamadesk.ui.chat.controller import ChatController
from llamadesk.ui.chat.model import MessageListModel
from llamadesk.ui.chat.notebook import NotebookController
from llamadesk.ui.chat.prefill import PromptPrefill
from llamadesk.ui.chat.session import ChatSession
from llamadesk.ui.chat.view import ChatView
from llamadesk.ui.documents.pane import DocumentsDock
from llamadesk.ui.endpoints_dialog import EndpointsAction
from llamadesk.ui.file_drop import FileDrop
from llamadesk.ui.icons import icon
from llamadesk.ui.idle_gc import IdleCollector
from llamadesk.ui.model_picker import ModelPicker
from llamadesk.ui.navigation import Navigation
from llamadesk.ui.panel_fit import PanelFit, sidebar_toggle
from llamadesk.ui.rpc_dialog import RpcHostsAction
from llamadesk.ui.settings.advanced_menu import AdvancedSettings
from llamadesk.ui.settings.keeper import SettingsKeeper, safe_params
from llamadesk.ui.settings.mcp_page import McpServersAction
from llamadesk.ui.settings.response_format import ResponseFormatKeeper
from llamadesk.ui.settings.sampling_panel import SamplingPanel, SettingsDock
from llamadesk.ui.settings.server_page import ServerControl
from llamadesk.ui.settings.tools_box import ToolsKeeper
from llamadesk.ui.shortcuts import MenuId, build_menus
from llamadesk.ui.sidebar import Sidebar
from llamadesk.ui.theme import ThemeManager, UiPrefs
from llamadesk.ui.welcome import WelcomeController
from llamadesk.ui.window_state import WindowState
from llamadesk.ui.workers import EngineFactory, EngineHost

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Composes the widgets and moves requests between them, the history and the engine thread."""

    find_requested = Signal()  # Ctrl+F: the find bar (built elsewhere) connects here

    def __init__(
        self, paths: Paths, history: History, *, engine_factory: EngineFactory | None = None, auto_load: bool = True
    ) -> None:
        super().__init__()
        self.paths, self.history = paths, history
        self.settings: AppSettings = load_settings(paths.settings_file)
        self.prefs = UiPrefs(paths.config / "ui.ini")
        self.theme = ThemeManager(self.prefs.theme, self)
        self.host = EngineHost(engine_factory, self)
        self._build()
        self._connect()
        self._restore_settings()
        self.picker.refresh()
        self.refresh_conversations(select_first=True)
        self._update_state()
        if auto_load:
            self._auto_load()

    # --- construction ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.setWindowTitle("LlamaDesk")
        self.resize(1280, 800)
        self.chat_model = MessageListModel(self)
        self.session = ChatSession(self.history, self.host, self.chat_model, self)
        # Full garbage collections wait for a moment without a reply streaming or a model loading.
        self.idle_gc = IdleCollector(lambda: self.closed or self.is_generating or self.is_loading, self)
        self.chat_view = ChatView(self.chat_model)
        self.composer = Composer()
        self.sidebar = Sidebar(history=self.history)  # reads its pages lazily; pin, rename and trash itself
        self.picker = ModelPicker(self.host, self.paths.models, self.load_options)
        # What the parts below share instead of this window: the shown conversation, the model, busy or not.
        self.state = WindowState(self.session, self.picker, self.ensure_conversation, self)
        # Connected at once: a part built below may already ask (the server left on may fail to start).
        self.state.problem.connect(self.warn)
        self.state.notice.connect(self.statusBar().showMessage)
        self.state.conversationsChanged.connect(self.refresh_conversations)
        self.state.openRequested.connect(self.select_conversation)
        self.state.settingsDue.connect(self.save_conversation_settings)
        self.panel = SamplingPanel(PresetStore(self.paths.config / "presets.json"))

        chat = QWidget()
        self.chat_column = chat_layout = QVBoxLayout(chat)
        chat_layout.setContentsMargins(0, 0, 0, 0)
        chat_layout.setSpacing(0)
        chat_layout.addWidget(self.chat_view, 1)
        chat_layout.addWidget(self.composer)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(chat)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([210, 790])
        self.setCentralWidget(self.splitter)

        self.settings_dock = SettingsDock(self.panel, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.settings_dock)

        toolbar = QToolBar("Model", self)
        toolbar.setObjectName("modelToolbar")
        toolbar.setMovable(False)
        self.toggle_sidebar_action = sidebar_toggle(self.sidebar, self)  # the list, closed in a narrow window
        toolbar.addAction(self.toggle_sidebar_action)
        toolbar.widgetForAction(self.toggle_sidebar_action).setAccessibleName("Conversations")  # its button shows ☰
        toolbar.addWidget(self.picker)
        self.toggle_settings_action = self.settings_dock.toggleViewAction()
        toolbar.addAction(self.toggle_settings_action)
        self.toggle_settings_action.setIcon(icon("settings"))  # in the menu; the toolbar button keeps its word too
        settings_button = toolbar.widgetForAction(self.toggle_settings_action)
        if isinstance(settings_button, QToolButton):
            settings_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(toolbar)

        self.window_actions = build_menus(self, self.toggle_settings_action)
        self.menus = self.window_actions.menus  # by MenuId: where features add their actions
        self.new_chat_action, self.quit_action = self.window_actions.new_chat, self.window_actions.quit
        self.stop_shortcut = self.window_actions.stop

        self.figures = ReplyFigures()
        self.statusBar().addPermanentWidget(self.figures)
        self.speed_label, self.ttft_label = self.figures.speed_label, self.figures.ttft_label
        self.context_meter = self.figures.meter
        self.context_label = self.context_meter.label
        self.chat = ChatController(
            self.state, session=self.session, history=self.history, host=self.host, chat_model=self.chat_model,
            chat_view=self.chat_view, composer=self.composer, panel=self.panel, picker=self.picker,
            figures=self.figures, actions=self.window_actions, load_options=self.load_options, parent=self,
        )
        self.notebook = NotebookController(  # notebook mode: shown instead of the chat for notebook conversations
            self.state, session=self.session, history=self.history, picker=self.picker, chat_model=self.chat_model,
            chat_view=self.chat_view, composer=self.composer, sampling=self.panel, column=self.chat_column,
            menus=self.menus, stop=self.stop_generation, parent=self,
        )
        self.navigation = Navigation(
            self.state, self, history=self.history, host=self.host, session=self.session, chat_model=self.chat_model,
            chat_view=self.chat_view, chat_column=self.chat_column, sidebar=self.sidebar, picker=self.picker,
            menus=self.menus, paths=self.paths, quit_action=self.quit_action, find_requested=self.find_requested,
        )  # fmt: skip
        self.advanced_settings = AdvancedSettings(  # View → Advanced model settings…, panel button
            self.state, self, view_menu=self.menus[MenuId.VIEW], panel=self.panel, picker=self.picker,
            settings=self.settings, save_settings=self.save_settings,  # the keeper, built below, writes them
        )  # fmt: skip
        self.server = ServerControl(  # View → Local server…: the OpenAI-compatible server, its status bar label
            self.state, self, view_menu=self.menus[MenuId.VIEW], host=self.host, panel=self.panel, history=self.history
        )
        self.about = AboutAction(self, self.menus[MenuId.HELP], self.paths)  # Help → About LlamaDesk / System…
        # File → Endpoints… (remote servers listed in the model picker), RPC hosts… (their memory, the split)
        self.endpoints = EndpointsAction(self, self.menus[MenuId.FILE], self.picker)
        self.rpc_hosts = RpcHostsAction(self, self.menus[MenuId.FILE], self.picker)
        self.keeper = SettingsKeeper(  # the panel's values saved to the settings and the conversation
            self.state, panel=self.panel, settings=self.settings, settings_file=self.paths.settings_file,
            prefs=self.prefs, history=self.history, chat=self.chat, notebook=self.notebook, parent=self,
        )  # fmt: skip
        # the panel's response format (Text, JSON, a schema) kept with each conversation, where the session reads it
        self.response_formats = ResponseFormatKeeper(self.state, self.panel.response_format, self.history, self)
        # the panel's Tools kept with each conversation; each reply's calls asked about first (tools_box.py)
        self.tools = ToolsKeeper(self.state, self.panel.tools, self.history, self)
        self.session.tools_for = self.tools.tool_use
        self.mcp_servers = McpServersAction(self, self.menus[MenuId.FILE], self.tools.servers)  # File → MCP Servers…
        self.prefill = PromptPrefill(  # Chat → Prepare Replies While Typing: the prompt read ahead
            self.state, session=self.session, host=self.host, picker=self.picker, chat_model=self.chat_model,
            composer=self.composer, panel=self.panel, notebook=self.notebook, prefs=self.prefs, menus=self.menus,
            parent=self,
        )
        self.chat.contextChanged.connect(self.prefill.schedule)  # the chat's context changed: read it ahead
        self.file_drop = FileDrop(  # dropped files: a .gguf is loaded, a .json imported, text joins the message
            self.state, self, composer=self.composer, picker=self.picker, paths=self.paths,
            import_export=self.navigation.history_actions.transfer.import_path,
        )  # fmt: skip
        self.documents = DocumentsDock(  # View → Documents: collections of files to chat with, indexed and watched
            self.state, self, history=self.history, view_menu=self.menus[MenuId.VIEW], beside=self.settings_dock
        )
        self.documents.pane.usageChanged.connect(lambda *_: self.chat.refresh_context())  # the documents' share
        self.welcome = WelcomeController(  # above an empty chat while the starter is the only model: 3 to download
            self.state, column=self.chat_column, above=self.chat_view, picker=self.picker, chat_model=self.chat_model,
            navigation=self.navigation, parent=self,
        )  # fmt: skip
        self.menus[MenuId.VIEW].addAction(self.toggle_sidebar_action)
        self.panel_fit = PanelFit(  # a narrow window: the side panels give way (to their buttons) before the chat
            self, chat, [self.settings_dock, self.documents, self.navigation.search_dock, self.sidebar],
            toggles={self.sidebar: self.toggle_sidebar_action},
        )  # fmt: skip

    def _connect(self) -> None:
        self.picker.aboutToLoad.connect(self._on_about_to_load)
        self.picker.modelLoaded.connect(self._on_loaded)
        self.picker.loadFailed.connect(self._on_load_failed)
        self.picker.modelUnloaded.connect(self._on_unloaded)
        self.picker.busyChanged.connect(self._update_state)
        self.picker.getModelsRequested.connect(self.navigation.models_action.trigger)  # its "Get more models…"
        self.panel.n_ctx_spin.valueChanged.connect(self.picker.update_load_button)  # Load shows for another length
        self.session.busyChanged.connect(self._update_state)
        self.session.problem.connect(self.warn)
        self.session.notice.connect(self.statusBar().showMessage)
        self.composer.sendRequested.connect(self.send)
        # Esc and Stop stop the shown chat's reply only (or take back its queued one); a load stops any reply.
        self.composer.stopRequested.connect(self.chat.stop_here)
        self.stop_shortcut.activated.connect(self.chat.stop_here)
        self.chat.activityChanged.connect(self.sidebar.set_activity)  # the busy and queued chats are marked
        self.sidebar.conversationSelected.connect(self.select_conversation)
        self.sidebar.newChatRequested.connect(self.new_chat)
        self.sidebar.conversationRenamed.connect(self._on_renamed)
        self.sidebar.conversationTrashed.connect(self._on_conversation_trashed)
        self.sidebar.problem.connect(self.warn)
        self.new_chat_action.triggered.connect(self.new_chat)
        self.quit_action.triggered.connect(self.close)
        self.window_actions.find.triggered.connect(self.find_requested)
        self.window_actions.focus_composer.triggered.connect(self.focus_composer)
        self.panel.presets.notice.connect(lambda text: self.statusBar().showMessage(text, 5000))

    def _restore_settings(self) -> None:
        self.keeper.restore()
        self.appearance = ChatAppearance(
            self.prefs, self.theme, self.chat_view, self.composer.edit, self.panel.appearance_box
        )
        self.window_actions.larger_text.triggered.connect(lambda: self.appearance.step_font_size(+1))
        self.window_actions.smaller_text.triggered.connect(lambda: self.appearance.step_font_size(-1))
        self.window_actions.default_text.triggered.connect(lambda: self.appearance.set_font_size(0))

    # --- state (kept by self.state; read here too) ---------------------------------------------------------------
    @property
    def current_cid(self) -> int | None:
        return self.state.current_cid

    @property
    def model_info(self) -> ModelInfo | None:
        return self.state.model_info

    @property
    def loaded_model(self) -> LocalModel | None:
        return self.state.loaded_model

    @property
    def is_generating(self) -> bool:
        return self.state.is_generating

    @property
    def is_loading(self) -> bool:
        return self.state.is_loading

    @property
    def closed(self) -> bool:
        """The window was closed (shut down): nothing may be sent to its engine any more."""
        return self.state.closed

    def _update_state(self, *_: object) -> None:
        can_send = self.model_info is not None and not self.is_loading and not self.is_generating and not self.closed
        self.chat.update_composer()  # Send, Stop, Esc: per conversation (a reply elsewhere queues what you send)
        self.window_actions.regenerate.setEnabled(can_send)  # with nothing to regenerate it does nothing
        self.chat_view.set_placeholder(self._empty_text())

    def _empty_text(self) -> str:
        """What the empty chat area says: the next step to take."""
        if self.is_loading:
            return "Loading the model…"
        if self.model_info is None:
            if not self.picker.models():
                return (f"No models yet.\nDrop a .gguf file on this window, or put one in {self.paths.models}"
                        " and press Refresh.")
            return "Choose a model above to load it."
        name = self.loaded_model.name if self.loaded_model else self.model_info.file_name
        return f"Say hello to {name}."

    def warn(self, title: str, message: str) -> None:
        """Shows a core error's sentence; the window stays usable."""
        log.warning("%s: %s", title, message)
        QMessageBox.warning(self, title, message)

    # --- models ----------------------------------------------------------------------------------------------------
    def load_options(self, model: LocalModel) -> LoadOptions:
        s = self.settings
        return LoadOptions(
            path=model.path,
            n_ctx=self.panel.n_ctx(),
            chat_template=s.chat_template,
            mmproj=projector_for(model.path),  # a vision model's projector beside it: its messages may carry images
            **s.load_kwargs(),  # threads, GPU layers, flash attention, KV cache types, mmap/mlock
            draft_required=False,  # the setting's draft model serves its own family only; others load without it
        )

    def _auto_load(self) -> None:
        models = self.picker.models()
        last = self.settings.last_model
        chosen = next((m for m in models if last and str(m.path) == last), models[0] if models else None)
        if chosen is not None:
            self.picker.select_path(chosen.path)
            self.load_model(chosen)

    def load_model(self, model: LocalModel) -> None:
        if not self.closed:
            self.picker.load(model)

    def _on_about_to_load(self, model: LocalModel) -> None:
        self.stop_generation()
        self.chat.forget_counts()
        self.statusBar().showMessage(f"Loading {model.name}…")

    def _on_loaded(self, model: LocalModel | None, info: ModelInfo) -> None:
        self.settings.last_model = str(model.path if model else info.path)
        self.keeper.save_timer.start()
        if not self.is_loading:
            loaded = f"Loaded {info.file_name} in {info.load_seconds:.1f} s"
            if info.draft_note:  # the draft model of the settings is of another family: said, not a failed load
                self.statusBar().showMessage(f"{loaded}. {info.draft_note}", 20000)
            else:
                self.statusBar().showMessage(loaded, 5000)
        self._refresh_context()
        self._update_state()

    def _on_load_failed(self, message: str) -> None:
        self.statusBar().clearMessage()
        self.warn("Model not loaded", message)

    def _on_unloaded(self) -> None:
        self.context_meter.clear()
        self._update_state()

    # --- conversations -------------------------------------------------------------------------------------------
    def refresh_conversations(self, *, select_first: bool = False) -> None:
        """Re-reads the sidebar's loaded pages (never the whole history) and marks the current conversation."""
        self.sidebar.refresh()
        if select_first and self.current_cid is None and (first := self.sidebar.first_id()) is not None:
            self.select_conversation(first)
            return
        self.sidebar.set_current(self.current_cid)
        self._update_title()

    def _on_renamed(self, cid: int, _title: str) -> None:
        if cid == self.current_cid:
            self._update_title()

    def _update_title(self) -> None:
        title = None
        if self.current_cid is not None:
            try:
                title = self.history.get_conversation(self.current_cid).title
            except LlamaDeskError:
                title = None
        self.setWindowTitle(f"{title} — LlamaDesk" if title else "LlamaDesk")

    def select_conversation(self, cid: int | None) -> None:
        self.save_conversation_settings()
        self.state.set_current(cid)
        if cid is not None:
            try:
                conv = self.history.get_conversation(cid)
            except LlamaDeskError as exc:
                self.warn("Conversation not opened", str(exc))
                self.state.set_current(None)
                self.refresh_conversations()
                return
            self.panel.set_params(safe_params(conv.sampling) if conv.sampling else self.panel.params())
            self.panel.set_system_prompt(conv.system_prompt)
        self.sidebar.set_current(cid)
        self.setWindowTitle(f"{conv.title} — LlamaDesk" if cid is not None else "LlamaDesk")
        self._show_messages()
        self._refresh_context()

    def _show_messages(self) -> None:
        self.session.show(self.current_cid)
        self.notebook.conversation_shown(self.current_cid)
        self.chat_view.follow()
        self.navigation.conversation_shown(self.current_cid)

    def new_chat(self) -> None:
        if self.current_cid is not None and self.chat_model.rowCount() == 0:
            self.composer.edit.setFocus()
            return
        self.save_conversation_settings()
        try:
            conv = self.history.create_conversation(
                NEW_TITLE,
                model=self.loaded_model.name if self.loaded_model else None,
                system_prompt=self.panel.system_prompt(),
                sampling=self.notebook.sampling_for(None, self.panel.params().to_dict()),
            )
        except LlamaDeskError as exc:
            self.warn("Conversation not created", str(exc))
            return
        self.state.set_current(None)
        self.select_conversation(conv.id)
        self.refresh_conversations()
        self.composer.edit.setFocus()

    def _on_conversation_trashed(self, cid: int) -> None:
        """The sidebar moved it to the trash (its Undo bar brings it back) and selected a neighbour if any.
        A reply still streaming into it keeps being saved, so Undo restores it whole."""
        self.keeper.forget(cid)
        if cid == self.current_cid:
            self.state.set_current(None)
            self.select_conversation(self.sidebar.current_id())

    def ensure_conversation(self) -> int:
        if self.current_cid is None:
            self.new_chat()
        if self.current_cid is None:
            raise LlamaDeskError("A new conversation could not be created.")
        return self.current_cid

    # --- generation --------------------------------------------------------------------------------------------
    def send(self, text: str) -> None:
        """Sends your message (or, while editing an earlier one, starts a new branch with it)."""
        self.chat.send(text)

    def stop_generation(self) -> None:
        if self.is_generating:
            self.session.stop()
            self.statusBar().showMessage("Stopping…", 2000)

    def focus_composer(self) -> None:
        self.composer.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _refresh_context(self) -> None:
        self.chat.refresh_context()

    # --- appearance --------------------------------------------------------------------------------------------
    def font_size(self) -> float:
        return self.appearance.font_size()

    def set_font_size(self, points: int) -> None:
        self.appearance.set_font_size(points)

    # --- settings ----------------------------------------------------------------------------------------------
    def save_conversation_settings(self) -> None:
        self.keeper.save_conversation_settings()

    def save_settings(self) -> None:
        self.keeper.save_settings()

    # --- closing -----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stops generation, closes the engine in its thread, waits for the thread to end, then saves."""
        if self.closed:
            return
        self.state.close()
        self._update_state()
        self.navigation.shutdown()
        self.picker.shutdown()  # its background listing of endpoints' models
        self.file_drop.shutdown()
        self.documents.shutdown()  # cancels indexing (a paused run too) and waits for it
        self.server.shutdown()  # before the engine thread ends: the server's requests are cancelled first
        self.host.shutdown()
        self.tools.close()  # the MCP servers' processes end
        self.idle_gc.stop()
        # Deliver what the worker sent before it stopped (the last tokens, the cancelled reply's receipt, a load).
        QCoreApplication.sendPostedEvents(None, QEvent.Type.MetaCall)
        self.session.abandon_all()
        self.save_conversation_settings()
        self.save_settings()
        self.prefs.sync()
        self.theme.restore()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        event.accept()

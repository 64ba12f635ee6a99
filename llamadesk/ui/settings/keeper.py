"""The window's settings kept on disk: the panel's values become the defaults for new chats (settings.json),
belong to the shown conversation (its row in the history) and to the loaded model (model_settings.json: loading it
again into an empty chat brings them back); all are saved a moment after the last change."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.presets import ModelSettingsStore, model_defaults_of, model_key
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.settings import AppSettings, save_settings

if TYPE_CHECKING:
    from llamadesk.core.history import History
    from llamadesk.ui.chat.controller import ChatController
    from llamadesk.ui.chat.notebook import NotebookController
    from llamadesk.ui.settings.sampling_panel import SamplingPanel
    from llamadesk.ui.theme import UiPrefs
    from llamadesk.ui.window_state import WindowState

log = logging.getLogger(__name__)

SAVE_DELAY_MS = 400


def safe_params(data: dict[str, object] | None) -> SamplingParams:
    """Stored sampling values, or the defaults when they are no longer valid (with a log line)."""
    try:
        return SamplingParams.from_dict(data)
    except LlamaDeskError as exc:
        log.warning("Ignoring stored sampling settings: %s", exc)
        return SamplingParams()


class SettingsKeeper(QObject):
    """Listens to the settings panel and saves, after SAVE_DELAY_MS of quiet, the app settings and the settings of
    the conversation they were changed in (never another one: switching saves first)."""

    def __init__(
        self, state: WindowState, panel: SamplingPanel, settings: AppSettings, settings_file: Path, prefs: UiPrefs,
        history: History, chat: ChatController, notebook: NotebookController, parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.state, self.panel, self.settings, self.settings_file = state, panel, settings, settings_file
        self.prefs, self.history = prefs, history
        # The chat applies the overflow policy (and counts the context again); the notebook marks its conversations'
        # stored sampling. Both are built before this keeper.
        self.chat, self.notebook = chat, notebook
        self.dirty_cid: int | None = None
        self.models = ModelSettingsStore(settings_file.parent / "model_settings.json")
        self.dirty_model: str | None = None  # the loaded model's key when its settings are to be saved
        self.save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self.conv_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self.save_timer.timeout.connect(self.save_settings)
        self.conv_timer.timeout.connect(self.save_conversation_settings)
        panel.context_box.policyChanged.connect(self._on_policy_changed)
        panel.paramsChanged.connect(self._on_panel_changed)
        panel.systemPromptChanged.connect(self._on_panel_changed)
        panel.contextLengthChanged.connect(self._on_context_length_changed)
        panel.showAllChanged.connect(self._on_show_all_changed)
        state.modelChanged.connect(self._on_model_changed)

    def restore(self) -> None:
        """Puts the stored defaults into the panel."""
        panel, settings = self.panel, self.settings
        panel.set_params(safe_params(settings.sampling))
        panel.set_system_prompt(settings.system_prompt)
        panel.set_n_ctx(settings.n_ctx)
        panel.context_box.set_policy(self.prefs.overflow_policy)
        self.chat.set_policy(panel.context_box.policy().value)
        panel.set_show_all(self.prefs.show_all_settings)

    def _on_show_all_changed(self, show: bool) -> None:
        self.prefs.show_all_settings = show

    def _loaded_key(self) -> str | None:
        info = self.state.model_info
        return model_key(info.path) if info is not None else None

    def _on_model_changed(self) -> None:
        """A model was loaded: the settings last used with it come back when the chat shown is empty (a chat with
        messages keeps its own); Reset to the model's defaults now means this model."""
        key = self._loaded_key()
        model, info = self.state.loaded_model, self.state.model_info
        path = info.path if info is not None and info.path.is_file() else None
        self.panel.set_model_defaults(
            (lambda: model_defaults_of(path)) if path is not None else SamplingParams,
            model.name if model is not None else key,
        )
        if key is None:
            return
        remembered = self.models.get(key)
        if remembered is None or remembered == self.panel.params():
            return
        cid = self.state.current_cid
        if cid is not None:
            try:
                if self.history.messages(cid):
                    return
            except LlamaDeskError:
                return
        self.panel.set_params(remembered)
        self._on_panel_changed()
        self.state.show_notice(f"The settings you last used with {model.name if model else key} are back.", 5000)

    def forget(self, cid: int) -> None:
        """The conversation went away (the trash): its pending settings are not written."""
        if self.dirty_cid == cid:
            self.dirty_cid = None

    def _on_policy_changed(self, value: str) -> None:
        self.prefs.overflow_policy = value
        self.chat.set_policy(value)
        self.chat.refresh_context()

    def _on_panel_changed(self, *_: object) -> None:
        """Your latest values become the defaults for new chats and belong to the shown conversation."""
        self.settings.sampling = self.panel.params().to_dict()
        self.settings.system_prompt = self.panel.system_prompt()
        self.dirty_model = self._loaded_key()
        self.save_timer.start()
        if self.state.current_cid is not None:
            self.dirty_cid = self.state.current_cid
            self.conv_timer.start()

    def _on_context_length_changed(self, n_ctx: int) -> None:
        self.settings.n_ctx = n_ctx
        self.save_timer.start()
        info = self.state.model_info
        if info is not None and n_ctx != info.n_ctx:
            self.state.show_notice("The new context length applies when the model is loaded again.", 5000)

    def save_conversation_settings(self) -> None:
        self.conv_timer.stop()
        cid, self.dirty_cid = self.dirty_cid, None
        if cid is None or cid != self.state.current_cid:
            return
        try:
            self.history.update_conversation(
                cid,
                system_prompt=self.panel.system_prompt(),
                sampling=self.notebook.sampling_for(cid, self.panel.params().to_dict()),
            )
        except LlamaDeskError as exc:
            self.state.warn("Conversation settings not saved", str(exc))

    def save_settings(self) -> None:
        self.save_timer.stop()
        self.settings.n_ctx = self.panel.n_ctx()
        try:
            save_settings(self.settings_file, self.settings)
            key, self.dirty_model = self.dirty_model, None
            if key is not None:
                self.models.remember(key, self.panel.params())
        except LlamaDeskError as exc:
            log.warning("Settings not saved: %s", exc)
            self.state.show_notice(str(exc), 10000)

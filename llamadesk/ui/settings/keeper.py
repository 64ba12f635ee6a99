"""The window's settings kept on disk: the panel's values become the defaults for new chats (settings.json) and
belong to the shown conversation (its row in the history); both are saved a moment after the last change."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.settings import save_settings

if TYPE_CHECKING:
    from llamadesk.ui.main_window import MainWindow

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

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.dirty_cid: int | None = None
        self.save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self.conv_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self.save_timer.timeout.connect(self.save_settings)
        self.conv_timer.timeout.connect(self.save_conversation_settings)
        panel = window.panel
        panel.context_box.policyChanged.connect(self._on_policy_changed)
        panel.paramsChanged.connect(self._on_panel_changed)
        panel.systemPromptChanged.connect(self._on_panel_changed)
        panel.contextLengthChanged.connect(self._on_context_length_changed)

    def restore(self) -> None:
        """Puts the stored defaults into the panel."""
        w = self.window
        w.panel.set_params(safe_params(w.settings.sampling))
        w.panel.set_system_prompt(w.settings.system_prompt)
        w.panel.set_n_ctx(w.settings.n_ctx)
        w.panel.context_box.set_policy(w.prefs.overflow_policy)
        w.chat.set_policy(w.panel.context_box.policy().value)

    def forget(self, cid: int) -> None:
        """The conversation went away (the trash): its pending settings are not written."""
        if self.dirty_cid == cid:
            self.dirty_cid = None

    def _on_policy_changed(self, value: str) -> None:
        w = self.window
        w.prefs.overflow_policy = value
        w.chat.set_policy(value)
        w.chat.refresh_context()

    def _on_panel_changed(self, *_: object) -> None:
        """Your latest values become the defaults for new chats and belong to the shown conversation."""
        w = self.window
        w.settings.sampling = w.panel.params().to_dict()
        w.settings.system_prompt = w.panel.system_prompt()
        self.save_timer.start()
        if w.current_cid is not None:
            self.dirty_cid = w.current_cid
            self.conv_timer.start()

    def _on_context_length_changed(self, n_ctx: int) -> None:
        w = self.window
        w.settings.n_ctx = n_ctx
        self.save_timer.start()
        if w.model_info is not None and n_ctx != w.model_info.n_ctx:
            w.statusBar().showMessage("The new context length applies when the model is loaded again.", 5000)

    def save_conversation_settings(self) -> None:
        self.conv_timer.stop()
        w = self.window
        cid, self.dirty_cid = self.dirty_cid, None
        if cid is None or cid != w.current_cid:
            return
        try:
            w.history.update_conversation(
                cid,
                system_prompt=w.panel.system_prompt(),
                sampling=w.notebook.sampling_for(cid, w.panel.params().to_dict()),
            )
        except LlamaDeskError as exc:
            w.warn("Conversation settings not saved", str(exc))

    def save_settings(self) -> None:
        self.save_timer.stop()
        w = self.window
        w.settings.n_ctx = w.panel.n_ctx()
        try:
            save_settings(w.paths.settings_file, w.settings)
        except LlamaDeskError as exc:
            log.warning("Settings not saved: %s", exc)
            w.statusBar().showMessage(str(exc), 10000)

"""View → Local server…: serve the loaded model to editors and scripts over an OpenAI-compatible API (off by default).

`ServerDialog` edits the settings (on/off, this machine only or the network, port, API key, keep requests in the
history); `ServerControl` owns the server (server/runner.py) on a ServerBridge over the window's EngineHost, starts
it at launch when it was left on, and shows its state in the status bar.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.errors import LlamaDeskError
from llamadesk.server import settings as server_settings
from llamadesk.server.recording import ServerRecorder
from llamadesk.server.runner import DEFAULT_HOST, ServerRunner
from llamadesk.server.settings import ServerSettings
from llamadesk.ui.server_bridge import ServerBridge

if TYPE_CHECKING:
    from llamadesk.core.history import History
    from llamadesk.ui.settings.sampling_panel import SamplingPanel
    from llamadesk.ui.window_state import WindowState
    from llamadesk.ui.workers import EngineHost

log = logging.getLogger(__name__)

ANY_HOST = "0.0.0.0"  # "let other machines connect": every IPv4 interface


class ServerDialog(QDialog):
    """The server's settings; OK is refused (with the reason) for a network address without an API key."""

    def __init__(self, settings: ServerSettings, api_key: str | None, status: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("serverDialog")
        self.setWindowTitle("Local server")
        self.enabled = QCheckBox("Serve the loaded model to other programs (OpenAI-compatible API)", self)
        self.enabled.setObjectName("serverEnabled")
        self.enabled.setToolTip("Editors and scripts then use http://HOST:PORT/v1 with any OpenAI client.")
        self.network = QCheckBox("Let other machines on the network connect (needs an API key)", self)
        self.network.setObjectName("serverNetwork")
        self.port = QSpinBox(self)
        self.port.setObjectName("serverPort")
        self.port.setAccessibleName("Port")
        self.port.setRange(1, 65535)
        self.key = QLineEdit(self)
        self.key.setObjectName("serverApiKey")
        self.key.setAccessibleName("API key")
        self.key.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.key.setPlaceholderText("none: only this machine can connect")
        new_key = QPushButton("New key", self)
        new_key.setObjectName("serverNewKey")
        new_key.clicked.connect(lambda: self.key.setText(server_settings.new_api_key()))
        copy_key = QPushButton("Copy", self)
        copy_key.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.key.text()))
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(new_key)
        key_row.addWidget(copy_key)
        self.record = QCheckBox("Keep requests in the history (labelled \u201cserver\u201d)", self)
        self.record.setObjectName("serverRecord")
        self.status = QLabel(status, self)
        self.status.setObjectName("serverStatus")
        self.status.setWordWrap(True)
        self.problem = QLabel(self)
        self.problem.setObjectName("serverProblem")
        self.problem.setWordWrap(True)
        form = QFormLayout()
        form.addRow(self.enabled)
        form.addRow(self.network)
        form.addRow("Port", self.port)
        form.addRow("API key", key_row)
        form.addRow(self.record)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.enabled.setChecked(settings.enabled)
        self.network.setChecked(settings.host not in (DEFAULT_HOST, "localhost", "::1"))
        self.port.setValue(settings.port or 8765)
        self.key.setText(api_key or "")
        self.record.setChecked(settings.record_history)
        for signal in (self.enabled.toggled, self.network.toggled, self.key.textChanged):
            signal.connect(self._update)
        self._update()

    def values(self) -> tuple[ServerSettings, str | None]:
        host = ANY_HOST if self.network.isChecked() else DEFAULT_HOST
        settings = ServerSettings(self.enabled.isChecked(), host, self.port.value(), self.record.isChecked())
        return settings, self.key.text().strip() or None

    def reason(self) -> str:
        if self.enabled.isChecked() and self.network.isChecked() and not self.key.text().strip():
            return "Other machines may connect only with an API key: press New key (clients send it as a Bearer token)."
        return ""

    def _update(self, *_: Any) -> None:
        reason = self.reason()
        self.problem.setText(reason)
        self.problem.setVisible(bool(reason))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not reason)

    def accept(self) -> None:
        if not self.reason():
            super().accept()


class ServerControl(QObject):
    """Owns the server of the window: the menu action, the status-bar label, start/stop, the bridge."""

    stateChanged = Signal(str)  # the status text

    def __init__(
        self, state: WindowState, window: QMainWindow, view_menu: QMenu, host: EngineHost, panel: SamplingPanel,
        history: History,
    ) -> None:  # fmt: skip
        super().__init__(window)
        self.state, self.parent_widget, self.history = state, window, history  # the window: the dialog's parent
        self.settings = server_settings.load_settings()
        self._api_key: str | None = None  # read from the keyring only when needed (it may prompt)
        self.bridge = ServerBridge(host, self._recorder, self)
        self.runner: ServerRunner | None = None
        self.label = QLabel("")
        self.label.setObjectName("serverStatusLabel")
        self.label.setVisible(False)
        window.statusBar().addPermanentWidget(self.label)
        self.action = QAction("Local server…", window)
        self.action.setObjectName("serverAction")
        self.action.setToolTip("Serve the loaded model over an OpenAI-compatible API")
        self.action.triggered.connect(self.open)
        view_menu.addAction(self.action)
        self.dialog: ServerDialog | None = None
        state.modelChanged.connect(self._on_model)
        panel.paramsChanged.connect(self.bridge.set_params)
        self.bridge.set_params(panel.params())
        self.bridge.set_model(self._model_id())
        self.bridge.activityChanged.connect(lambda _n: self._show())
        self.bridge.requestRecorded.connect(lambda _cid: state.conversations_changed())
        if self.settings.enabled:
            self.start()

    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    def _recorder(self) -> ServerRecorder | None:
        model = self.bridge.model_id()
        if not self.settings.record_history or model is None:
            return None
        return ServerRecorder(self.history, model)

    def _model_id(self) -> str | None:
        info = self.state.model_info
        return info.file_name if info is not None else None

    def _on_model(self) -> None:
        self.bridge.set_model(self._model_id())
        self._show()

    def api_key(self) -> str | None:
        if self._api_key is None:
            self._api_key = server_settings.get_api_key()
        return self._api_key

    def start(self) -> bool:
        """Starts with the current settings; a failure is one sentence in the status bar and a dialog."""
        self.stop()
        self.runner = ServerRunner(self.bridge, self.settings.config(self.api_key()))
        try:
            self.runner.start()
        except LlamaDeskError as exc:
            self.runner = None
            self._show(f"Server off: {exc}")
            self.state.warn("The local server did not start", str(exc))
            return False
        self.bridge.reopen()
        self._show()
        return True

    def stop(self) -> None:
        if self.runner is not None:
            self.bridge.close()
            self.runner.stop()
            self.runner = None
        self._show()

    def apply(self, settings: ServerSettings, api_key: str | None) -> None:
        """Keeps the new settings (file + keyring) and starts, restarts or stops the server to match."""
        changed_key = api_key != self.api_key()
        self._api_key = api_key
        if changed_key:
            try:
                server_settings.set_api_key(api_key)
            except LlamaDeskError as exc:
                self.state.show_notice(str(exc), 10000)
        try:
            server_settings.save_settings(settings)
        except LlamaDeskError as exc:
            self.state.show_notice(str(exc), 10000)
        restart = dataclasses.replace(settings, record_history=False) != dataclasses.replace(
            self.settings, record_history=False
        )  # fmt: skip
        self.settings = settings
        if not settings.enabled:
            self.stop()
        elif restart or changed_key or not self.running:
            self.start()
        self._show()

    def open(self) -> ServerDialog:
        dialog = ServerDialog(self.settings, self.api_key(), self.status_text(), self.parent_widget)
        self.dialog = dialog
        dialog.accepted.connect(lambda: self.apply(*dialog.values()))
        dialog.finished.connect(lambda _r: setattr(self, "dialog", None))
        dialog.open()
        return dialog

    def status_text(self) -> str:
        if not self.running or self.runner is None:
            return "The server is off."
        model = self.bridge.model_id() or "no model loaded"
        busy = self.bridge.pending()
        queue = f", {busy} request{'s' if busy != 1 else ''} in progress" if busy else ""
        return f"Serving {model} at {self.runner.url}{queue}"

    def _show(self, text: str | None = None) -> None:
        text = text if text is not None else self.status_text()
        short = ""
        if self.running and self.runner is not None:
            busy = self.bridge.pending()
            short = f"Server: {self.runner.url}" + (f" ({busy} busy)" if busy else "")
        elif text.startswith("Server off:"):
            short = "Server off (see tooltip)"
        self.label.setText(short)
        self.label.setToolTip(text)
        self.label.setVisible(bool(short))
        self.stateChanged.emit(text)

    def shutdown(self) -> None:
        """Stops the server before the engine thread ends (its requests are cancelled)."""
        self.stop()

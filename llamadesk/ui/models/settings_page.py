"""The model manager's Settings tab: the Hugging Face token for gated models (kept in the OS keyring)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core import secrets
from llamadesk.core.hub import hub_endpoint
from llamadesk.ui.models.common import MessageLine
from llamadesk.ui.workers import TaskContext, TaskRunner


class SettingsPage(QWidget):
    """The token is typed into a password field, handed to the keyring in the background, and never shown again."""

    def __init__(
        self, models_dir: Path, runner: TaskRunner, *, endpoint: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.has_token: bool | None = None

        self.token_field = QLineEdit()
        self.token_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_field.setPlaceholderText("hf_…")
        self.token_field.setObjectName("hfToken")
        self.save_button = QPushButton("Save token")
        self.forget_button = QPushButton("Forget token")
        self.token_state = QLabel()
        self.message = MessageLine()
        explain = QLabel(
            "Gated models (Llama, Gemma, …) need a Hugging Face account that accepted the model's license on the "
            "Hub, and a read token from huggingface.co/settings/tokens. LlamaDesk keeps the token in your "
            "system's keyring and sends it only to the Hub itself."
        )
        explain.setWordWrap(True)
        token_box = QGroupBox("Hugging Face token")
        token_layout = QVBoxLayout(token_box)
        token_layout.addWidget(explain)
        row = QHBoxLayout()
        row.addWidget(self.token_field, 1)
        row.addWidget(self.save_button)
        row.addWidget(self.forget_button)
        token_layout.addLayout(row)
        token_layout.addWidget(self.token_state)
        token_layout.addWidget(self.message)

        where = QGroupBox("Where models come from and go")
        form = QFormLayout(where)
        for label, value in (("Hub", hub_endpoint(endpoint)), ("Models folder", str(models_dir))):
            text = QLabel(value)
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(label, text)
        layout = QVBoxLayout(self)
        layout.addWidget(token_box)
        layout.addWidget(where)
        layout.addStretch(1)

        self.save_button.clicked.connect(self.save_token)
        self.token_field.returnPressed.connect(self.save_token)
        self.forget_button.clicked.connect(self.forget_token)
        self.token_field.textChanged.connect(lambda text: self.save_button.setEnabled(bool(text.strip())))
        self.save_button.setEnabled(False)
        self.check_token()

    def check_token(self) -> None:
        """Whether a token is there (read in the background: a keyring may take a moment or ask to unlock)."""
        self.runner.run_in_background(
            lambda _ctx: secrets.get_hf_token() is not None,
            self._show_state,
            self.message.show_error,
            name="check token",
        )

    def _show_state(self, has_token: bool) -> None:
        self.has_token = has_token
        if os.environ.get(secrets.ENV_TOKEN, "").strip():
            self.token_state.setText(f"Using the token in ${secrets.ENV_TOKEN} for this session.")
        else:
            self.token_state.setText(
                "A token is stored in the system keyring." if has_token else "No token stored: public models only."
            )
        self.forget_button.setEnabled(has_token)

    def save_token(self) -> None:
        token = self.token_field.text().strip()
        if not token:
            return
        self.save_button.setEnabled(False)

        def work(_ctx: TaskContext) -> None:
            secrets.set_hf_token(token)

        self.runner.run_in_background(work, lambda _r: self._saved(), self._failed, name="store token")

    def _saved(self) -> None:
        self.token_field.clear()
        self.message.show_note("Token stored in the system keyring.")
        self.check_token()

    def _failed(self, message: str) -> None:
        self.message.show_error(message)
        self.save_button.setEnabled(bool(self.token_field.text().strip()))

    def forget_token(self) -> None:
        self.runner.run_in_background(
            lambda _ctx: secrets.delete_hf_token(), lambda _r: self._forgotten(), self._failed, name="forget token"
        )

    def _forgotten(self) -> None:
        self.message.show_note("Token removed from the system keyring.")
        self.check_token()

"""File → Endpoints…: add, edit, test and remove remote OpenAI-compatible servers; API keys go to the keyring."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.endpoints import SERVER_KINDS, Endpoint, EndpointStore, check_url
from llamadesk.core.errors import LlamaDeskError
from llamadesk.ui.workers import TaskContext, TaskRunner

if TYPE_CHECKING:
    from llamadesk.core.engines.remote_api import Listing
    from llamadesk.ui.model_picker import ModelPicker

KIND_LABELS = {"auto": "Ask the server", "openai": "OpenAI (standard keys only)", "llama.cpp": "llama.cpp server",
               "llama-cpp-python": "llama-cpp-python server", "vllm": "vLLM", "ollama": "Ollama",
               "lmstudio": "LM Studio"}  # fmt: skip


class EndpointsDialog(QDialog):
    """The endpoint list on the left, the chosen one's form on the right; Test lists its models in the background."""

    endpointsChanged = Signal()

    def __init__(self, store: EndpointStore, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("endpointsDialog")
        self.setWindowTitle("Endpoints")
        self.resize(760, 380)
        self.store, self.runner = store, runner
        self._editing: Endpoint | None = None
        self._confirmed: set[str] = set()  # http URLs whose warning the user accepted in this dialog
        self.last_listing: Listing | None = None

        self.list = QListWidget(self)
        self.list.setObjectName("endpointList")
        self.list.setAccessibleName("Endpoints")
        self.new_button = QPushButton("New", self)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setObjectName("removeEndpoint")
        self.name_field = QLineEdit(self)
        self.name_field.setPlaceholderText("e.g. Office GPU box")
        self.url_field = QLineEdit(self)
        self.url_field.setObjectName("endpointUrl")
        self.url_field.setPlaceholderText("https://host:port, or http://192.168.1.10:8080 on your own network")
        self.kind_box = QComboBox(self)
        for kind in SERVER_KINDS:
            self.kind_box.addItem(KIND_LABELS[kind], kind)
        self.kind_box.setToolTip("Decides which sampling values are sent; the others are listed in each receipt")
        self.key_field = QLineEdit(self)
        self.key_field.setObjectName("endpointKey")
        self.key_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.forget_key = QPushButton("Forget key", self)
        self.test_button = QPushButton("Test", self)
        self.test_button.setObjectName("testEndpoint")
        self.test_button.setToolTip("Connect and list the server's models (nothing is saved)")
        self.save_button = QPushButton("Save", self)
        self.save_button.setObjectName("saveEndpoint")
        self.save_button.setDefault(True)
        self.message = QLabel(self)
        self.message.setObjectName("endpointMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_is_error = False

        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(self.new_button)
        row.addWidget(self.remove_button)
        left.addLayout(row)
        form = QFormLayout()
        form.addRow("Name", self.name_field)
        form.addRow("Address", self.url_field)
        form.addRow("Server", self.kind_box)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_field, 1)
        key_row.addWidget(self.forget_key)
        form.addRow("API key", key_row)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.save_button)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addLayout(buttons)
        right.addWidget(self.message)
        right.addStretch(1)
        body = QHBoxLayout()
        body.addLayout(left, 2)
        body.addLayout(right, 3)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(close)

        self.list.currentItemChanged.connect(self._on_selected)
        self.new_button.clicked.connect(self.new_endpoint)
        self.remove_button.clicked.connect(self.remove_endpoint)
        self.save_button.clicked.connect(self.save)
        self.test_button.clicked.connect(self.test)
        self.forget_key.clicked.connect(self._forget_key)
        self.reload()

    # --- the list ----------------------------------------------------------------------------------------------
    def reload(self, select: str | None = None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for endpoint in self.store.endpoints():
            item = QListWidgetItem(f"{endpoint.name}\n{endpoint.url}")
            item.setData(Qt.ItemDataRole.UserRole, endpoint.name)
            self.list.addItem(item)
            if endpoint.name == select:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        current = self.list.currentItem()
        self._on_selected(current, None) if current is not None else self.new_endpoint()

    def _on_selected(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if item is None:
            return
        try:
            endpoint = self.store.get(str(item.data(Qt.ItemDataRole.UserRole)))
        except LlamaDeskError as exc:
            self.show_message(str(exc), error=True)
            return
        self._edit(endpoint)

    def _edit(self, endpoint: Endpoint | None) -> None:
        self._editing = endpoint
        self.name_field.setText(endpoint.name if endpoint else "")
        self.url_field.setText(endpoint.url if endpoint else "")
        self.kind_box.setCurrentIndex(max(0, self.kind_box.findData(endpoint.kind if endpoint else "auto")))
        self.key_field.clear()
        has_key = endpoint is not None and endpoint.has_key
        self.key_field.setPlaceholderText("stored in the system keyring; type to replace" if has_key else "none")
        self.forget_key.setEnabled(has_key)
        self.remove_button.setEnabled(endpoint is not None)
        if endpoint is not None and endpoint.allow_http:
            self._confirmed.add(endpoint.url)
        self.show_message("")

    def new_endpoint(self) -> None:
        self.list.blockSignals(True)
        self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        self._edit(None)
        self.name_field.setFocus()

    # --- actions -----------------------------------------------------------------------------------------------
    def _http_confirmed(self, url: str) -> bool | None:
        """True when https or when the user accepts the plain-http warning; None when the URL is refused."""
        try:
            checked = check_url(url)
        except LlamaDeskError as exc:
            self.show_message(str(exc), error=True)
            return None
        if not checked.warning or checked.url in self._confirmed:
            return True
        answer = QMessageBox.question(self, "Plain http", checked.warning + "\n\nUse this address anyway?")
        if answer != QMessageBox.StandardButton.Yes:
            self.show_message("Not saved: use https, or accept the plain-http warning.", error=True)
            return False
        self._confirmed.add(checked.url)
        return True

    def save(self) -> Endpoint | None:
        if not self._http_confirmed(self.url_field.text()):
            return None
        key = self.key_field.text().strip()
        try:
            endpoint = self.store.add(
                self.name_field.text(), self.url_field.text(), kind=str(self.kind_box.currentData()),
                api_key=key or None, confirm_http=True, replace=self._editing.name if self._editing else None,
            )  # fmt: skip
        except LlamaDeskError as exc:
            self.show_message(str(exc), error=True)
            return None
        self.reload(select=endpoint.name)
        self.show_message(f"Saved {endpoint.name}." + (" Its API key is in the system keyring." if key else ""))
        self.endpointsChanged.emit()
        return endpoint

    def _forget_key(self) -> None:
        if self._editing is None:
            return
        try:
            endpoint = self.store.add(self._editing.name, self._editing.url, kind=self._editing.kind, api_key="",
                                      confirm_http=True, replace=self._editing.name)  # fmt: skip
        except LlamaDeskError as exc:
            self.show_message(str(exc), error=True)
            return
        self.reload(select=endpoint.name)
        self.show_message(f"The API key of {endpoint.name} was removed from the system keyring.")

    def remove_endpoint(self) -> None:
        if self._editing is None:
            return
        name = self._editing.name
        answer = QMessageBox.question(self, "Remove endpoint", f"Remove {name} and forget its API key?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.store.remove(name)
        except LlamaDeskError as exc:
            self.show_message(str(exc), error=True)
            return
        self.reload()
        self.show_message(f"Removed {name}.")
        self.endpointsChanged.emit()

    def test(self) -> None:
        """Lists the models with the form's values (saved or not) in the background."""
        from llamadesk.core.engines.remote_api import list_models

        if not self._http_confirmed(self.url_field.text()):
            return
        name = self.name_field.text().strip() or "The server"
        editing = self._editing
        typed = self.key_field.text().strip()
        endpoint = Endpoint(name, check_url(self.url_field.text()).url, str(self.kind_box.currentData()),
                            has_key=bool(typed) or bool(editing and editing.has_key), allow_http=True)  # fmt: skip
        stored_name = editing.name if editing is not None and editing.has_key else None

        def work(_ctx: TaskContext) -> Listing:
            key = typed or None
            if key is None and stored_name is not None:
                from llamadesk.core.endpoints import get_api_key

                key = get_api_key(stored_name)
            return list_models(endpoint, key or "")

        self.test_button.setEnabled(False)
        self.show_message(f"Connecting to {endpoint.url}…")
        self.runner.run_in_background(work, lambda listing: self._tested(endpoint, listing), self._test_failed,
                                      name="test endpoint")  # fmt: skip

    def _tested(self, endpoint: Endpoint, listing: Listing) -> None:
        self.test_button.setEnabled(True)
        self.last_listing = listing
        shown = ", ".join(listing.models[:5]) + (" …" if len(listing.models) > 5 else "")
        count = len(listing.models)
        self.show_message(f"{endpoint.name} answers ({KIND_LABELS.get(listing.kind, listing.kind)}): "
                          f"{count} model{'s' if count != 1 else ''}{': ' + shown if shown else ''}.")  # fmt: skip
        saved = self._editing
        if saved is not None and saved.url == endpoint.url:
            self.store.remember_models(saved.name, listing.models)
            self.endpointsChanged.emit()

    def _test_failed(self, message: str) -> None:
        self.test_button.setEnabled(True)
        self.show_message(message, error=True)

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.message_is_error = error and bool(text)
        self.message.setText(text)
        self.message.setStyleSheet("color: #c0392b;" if self.message_is_error else "")


class EndpointsAction(QObject):
    """File → Endpoints…; the dialog shares the picker's background runner and store, and belongs to `parent`."""

    def __init__(self, parent: QWidget, file_menu: QMenu, picker: ModelPicker) -> None:
        super().__init__(parent)

        self.parent_widget, self.picker = parent, picker
        self.dialog: EndpointsDialog | None = None
        self.action = QAction("Endpoints…", parent)
        self.action.setObjectName("endpointsAction")
        self.action.setStatusTip("Add remote OpenAI-compatible servers (llama.cpp, vLLM, Ollama, LM Studio, …)")
        self.action.triggered.connect(self.open)
        actions = file_menu.actions()
        if len(actions) > 2:
            file_menu.insertAction(actions[2], self.action)  # after New chat and Models…
        else:
            file_menu.addAction(self.action)

    def open(self) -> EndpointsDialog:
        if self.dialog is None:
            picker = self.picker
            self.dialog = EndpointsDialog(picker.endpoints, picker.runner, self.parent_widget)
            self.dialog.endpointsChanged.connect(picker.refresh)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

"""File → RPC hosts…: the llama.cpp rpc-server hosts a model can be split over — add, remove, each host's memory
(asked in the background, never on the GUI thread), and how the loaded model's layers are split over them."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core import rpc
from llamadesk.ui.model_choice import human_size
from llamadesk.ui.workers import TaskContext, TaskRunner

if TYPE_CHECKING:
    from llamadesk.core.engines.api import ModelInfo
    from llamadesk.ui.model_picker import ModelPicker

HOST_COLUMN, MEMORY_COLUMN, STATUS_COLUMN = range(3)
ANSWERS = "answers"
ASKING = "asking…"
IN_USE = "in use by the loaded model"
ERROR_COLOR = "#c0392b"
HELP_TEXT = (
    "Each machine that lends its memory runs llama.cpp's <b>rpc-server</b>, built from the same llama.cpp as "
    "LlamaDesk with <code>packaging/build_rpc_server.sh</code>, then started with "
    "<code>rpc-server -H 0.0.0.0 -p 50052</code> (README: “Split a model over several machines”). "
    "rpc-server has no password and no encryption: use it only on a network you trust. "
    "Pick “RPC cluster” in the model picker to split a model over the hosts listed here."
)


class RpcHostsDialog(QDialog):
    """The saved hosts in a table (host, free / total memory, whether it answers); Add, Remove, Refresh.
    Every host is asked on the runner's threads; a result for a host no longer listed is dropped."""

    hostsChanged = Signal()

    QUERY_TIMEOUT_S = 3.0

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("rpcHostsDialog")
        self.setWindowTitle("RPC hosts")
        self.resize(820, 440)
        self.runner = runner
        self.statuses: dict[str, rpc.HostStatus] = {}  # the last answer per host
        self.asking: set[str] = set()
        self.in_use: tuple[str, ...] = ()  # the loaded model's hosts: rpc-server serves one client at a time

        self.help = QLabel(HELP_TEXT, self)
        self.help.setObjectName("rpcHelp")
        self.help.setWordWrap(True)
        self.help.setTextFormat(Qt.TextFormat.RichText)
        self.help.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.help.setAccessibleName("How to start rpc-server")
        self.table = QTableWidget(0, 3, self)
        self.table.setObjectName("rpcHostTable")
        self.table.setAccessibleName("RPC hosts")
        self.table.setToolTip("The rpc-server hosts a model can be split over; Delete removes the selected ones")
        self.table.setHorizontalHeaderLabels(["Host", "Memory (free / total)", "Status"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; the arrow keys move between rows
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # wrapped text
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(HOST_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(MEMORY_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(STATUS_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.add_field = QLineEdit(self)
        self.add_field.setObjectName("rpcHostField")
        self.add_field.setAccessibleName("Host to add")
        self.add_field.setPlaceholderText("HOST:PORT, e.g. 192.168.1.10:50052 (several: separate with commas)")
        self.add_field.setToolTip("A host name or IPv4 address and the port rpc-server listens on (default 50052)")
        self.add_button = QPushButton("Add", self)
        self.add_button.setObjectName("addRpcHost")
        self.add_button.setAccessibleName("Add host")
        self.add_button.setToolTip("Save the typed hosts and ask them for their memory (Enter)")
        self.add_button.setDefault(True)  # Enter in the dialog adds what is typed
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setObjectName("removeRpcHost")
        self.remove_button.setAccessibleName("Remove host")
        self.remove_button.setToolTip("Forget the selected hosts (Delete)")
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.setObjectName("refreshRpcHosts")
        self.refresh_button.setAccessibleName("Refresh hosts")
        self.refresh_button.setToolTip("Ask every host for its memory again (in the background)")
        self.split_label = QLabel(self)
        self.split_label.setObjectName("rpcSplit")
        self.split_label.setAccessibleName("Layer split of the loaded model")
        self.split_label.setWordWrap(True)
        self.split_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message = QLabel(self)
        self.message.setObjectName("rpcMessage")
        self.message.setAccessibleName("Message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_is_error = False
        self._added_message = False

        row = QHBoxLayout()
        row.addWidget(self.add_field, 1)
        row.addWidget(self.add_button)
        row.addSpacing(12)
        row.addWidget(self.remove_button)
        row.addWidget(self.refresh_button)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        self.close_button = close_button = close.button(QDialogButtonBox.StandardButton.Close)
        close_button.setToolTip("Close this window (the list is already saved)")
        close_button.setAccessibleName("Close")
        layout = QVBoxLayout(self)
        layout.addWidget(self.help)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.split_label)
        layout.addWidget(self.message)
        layout.addWidget(close)
        self.setTabOrder(self.add_field, self.add_button)
        self.setTabOrder(self.add_button, self.remove_button)
        self.setTabOrder(self.remove_button, self.refresh_button)
        self.setTabOrder(self.refresh_button, self.table)
        self.setTabOrder(self.table, close_button)

        self.add_button.clicked.connect(self.add)
        self.remove_button.clicked.connect(self.remove_selected)
        self.refresh_button.clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self.remove_selected)
        self.show_split(None)
        self.reload()

    # --- the table ---------------------------------------------------------------------------------------------
    def hosts(self) -> tuple[str, ...]:
        """The hosts as listed (and saved)."""
        return tuple(self.cell(r, HOST_COLUMN).text() for r in range(self.table.rowCount()))

    def cell(self, r: int, column: int) -> QTableWidgetItem:
        item = self.table.item(r, column)
        if item is None:
            item = QTableWidgetItem()
            self.table.setItem(r, column, item)
        return item

    def reload(self) -> None:
        """Reads the saved list; hosts already asked keep their last answer."""
        hosts = rpc.load_hosts()
        self.statuses = {h: s for h, s in self.statuses.items() if h in hosts}
        self.table.setRowCount(len(hosts))
        for r, host in enumerate(hosts):
            self.cell(r, HOST_COLUMN).setText(host)
            self._show_row(r, host)
        self._update_buttons()

    def row_of(self, host: str) -> int:
        return next((r for r, h in enumerate(self.hosts()) if h == host), -1)

    def memory_text(self, host: str) -> str:
        return self.cell(self.row_of(host), MEMORY_COLUMN).text()

    def status_text(self, host: str) -> str:
        return self.cell(self.row_of(host), STATUS_COLUMN).text()

    def _show_row(self, r: int, host: str) -> None:
        status = self.statuses.get(host)
        memory, state, tip = "", ASKING if host in self.asking else "not asked yet", ""
        if host in self.in_use:
            memory = f"{human_size(status.free)} / {human_size(status.total)}" if status and status.ok else "—"
            state = IN_USE
            tip = "rpc-server serves one client at a time: the memory is the last one seen; ask again after unloading"
        elif status is not None and host not in self.asking:
            if status.ok:
                memory = f"{human_size(status.free)} / {human_size(status.total)}"
                state = ANSWERS
                tip = f"{status.devices} device{'s' if status.devices != 1 else ''}; free memory as the host reports it"
            else:
                memory, state, tip = "—", status.error, status.error
        self.cell(r, MEMORY_COLUMN).setText(memory)
        cell = self.cell(r, STATUS_COLUMN)
        cell.setText(state)
        cell.setToolTip(tip)
        error = status is not None and not status.ok and host not in self.asking and host not in self.in_use
        cell.setData(Qt.ItemDataRole.ForegroundRole, QColor(ERROR_COLOR) if error else None)

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(bool(self.table.selectionModel().selectedRows()))
        self.refresh_button.setEnabled(self.table.rowCount() > 0)

    # --- actions -----------------------------------------------------------------------------------------------
    def add(self) -> tuple[str, ...]:
        """Saves the typed hosts (refusing bad input with a sentence) and asks them; returns the ones added."""
        text = self.add_field.text()
        try:
            typed = rpc.parse_hosts(text)
            if not typed:
                raise rpc.RpcError("Type a host to add, as HOST:PORT, for example 192.168.1.10:50052.")
            saved = rpc.load_hosts()
            new = tuple(h for h in typed if h not in saved)
            if new:
                rpc.save_hosts([*saved, *new])
        except rpc.RpcError as exc:
            self.show_message(str(exc), error=True)
            return ()
        self.add_field.clear()
        if not new:
            self.show_message(f"{', '.join(typed)} {'is' if len(typed) == 1 else 'are'} already in the list.")
            return ()
        self.reload()
        self.show_message(f"Added {', '.join(new)}; asking for {'its' if len(new) == 1 else 'their'} memory…")
        self._added_message = True  # cleared once the answers are in the table
        self.ask(new)
        self.hostsChanged.emit()
        return new

    def remove_selected(self) -> tuple[str, ...]:
        hosts = self.hosts()
        gone = tuple(hosts[index.row()] for index in self.table.selectionModel().selectedRows())
        if not gone:
            return ()
        try:
            rpc.save_hosts([h for h in hosts if h not in gone])
        except rpc.RpcError as exc:
            self.show_message(str(exc), error=True)
            return ()
        self.asking -= set(gone)
        self.reload()
        self.show_message(f"Removed {', '.join(gone)}.")
        self.hostsChanged.emit()
        return gone

    def refresh(self) -> None:
        """Re-reads the list and asks every host again."""
        self.reload()
        self.show_message("")
        self.ask(self.hosts())

    def ask(self, hosts: tuple[str, ...]) -> None:
        """One background task per host, so a slow host does not hold up the others' rows."""
        timeout = self.QUERY_TIMEOUT_S
        for host in hosts:
            if host in self.asking or host in self.in_use:
                continue
            self.asking.add(host)
            self._show_row(self.row_of(host), host)

            def work(_ctx: TaskContext, host: str = host) -> rpc.HostStatus:
                return rpc.check_hosts([host], timeout)[0]

            self.runner.run_in_background(work, self._answered, partial(self._failed, host), name="ask rpc host")

    def _answered(self, status: rpc.HostStatus) -> None:
        self.asking.discard(status.host)
        if self._added_message and not self.asking:
            self.show_message("")
        r = self.row_of(status.host)
        if r < 0:
            return  # removed while it was being asked
        if status.host in self.in_use and not status.ok:
            self._show_row(r, status.host)  # busy because the loaded model uses it: keep the memory seen before
            return
        self.statuses[status.host] = status
        self._show_row(r, status.host)

    def _failed(self, host: str, message: str) -> None:
        self._answered(rpc.HostStatus(host, error=message))

    def show_split(self, info: ModelInfo | None) -> None:
        """How the loaded model's layers are placed, when it runs on RPC hosts. Its hosts are not asked while it
        is loaded (they serve it alone); hosts it no longer uses are asked again."""
        freed = tuple(h for h in self.in_use if not info or h not in info.rpc_servers)
        self.in_use = tuple(info.rpc_servers) if info is not None else ()
        if info is None or not info.rpc_servers:
            self.split_label.setText("No model is loaded on the RPC hosts.")
        else:
            split = rpc.split_text(info.layer_split) or ", ".join(info.rpc_servers)
            self.split_label.setText(f"{info.file_name} is split over the hosts: {split}.")
        for r, host in enumerate(self.hosts()):
            self._show_row(r, host)
        if freed and self.isVisible():
            self.ask(tuple(h for h in freed if h in self.hosts()))

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.message_is_error = error and bool(text)
        self._added_message = False
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {ERROR_COLOR};" if self.message_is_error else "")


class RpcHostsAction(QObject):
    """File → RPC hosts…, after Endpoints…; the dialog shares the picker's background runner, and each change of
    the list refreshes the picker (its "RPC cluster" entries). The dialog belongs to `parent`."""

    def __init__(self, parent: QWidget, file_menu: QMenu, picker: ModelPicker) -> None:
        super().__init__(parent)

        self.parent_widget, self.picker = parent, picker
        self.dialog: RpcHostsDialog | None = None
        self.action = QAction("RPC hosts…", parent)
        self.action.setObjectName("rpcHostsAction")
        self.action.setStatusTip("Machines running llama.cpp's rpc-server that a model can be split over")
        self.action.setToolTip(self.action.statusTip())
        self.action.triggered.connect(self.open)
        actions = file_menu.actions()
        after = next((i for i, a in enumerate(actions) if a.objectName() == "endpointsAction"), -1)
        if 0 <= after < len(actions) - 1:
            file_menu.insertAction(actions[after + 1], self.action)
        else:
            file_menu.addAction(self.action)

    def open(self) -> RpcHostsDialog:
        if self.dialog is None:
            picker = self.picker
            self.dialog = RpcHostsDialog(picker.runner, self.parent_widget)
            self.dialog.hostsChanged.connect(picker.refresh)
            picker.modelLoaded.connect(lambda _model, info: self._show_split(info))
            picker.modelUnloaded.connect(lambda: self._show_split(None))
        self.dialog.reload()
        self.dialog.show_split(self.picker.model_info)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        self.dialog.ask(self.dialog.hosts())
        return self.dialog

    def _show_split(self, info: ModelInfo | None) -> None:
        if self.dialog is not None:
            self.dialog.show_split(info)

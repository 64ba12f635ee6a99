"""File → MCP Servers…: the servers of mcp.json with their status (starting, ready, failed with the tail of what
they wrote to stderr) and tools; add one (a command for stdio, a URL for streamable HTTP), remove one, or import
LM Studio's or Claude Desktop's servers in one click (core/tools/mcp_config.py). The servers run in the window's
McpServers (tools_box.py); a conversation switches their tools on in the Tools section."""

from __future__ import annotations

import shlex
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.markdown import inert_text
from llamadesk.core.tools import mcp_config
from llamadesk.core.tools.mcp_host import ServerState
from llamadesk.ui.settings.tools_box import McpServers

STDERR_LINES = 12  # of a failed server's stderr shown


def state_text(state: ServerState) -> str:
    """What the details box shows of a server: its status, its sentence and stderr tail, its tools (inert)."""
    lines = [f"Status: {state.status}"]
    if state.error:
        lines.append(state.error)
    if state.stderr_tail:
        lines += ["", "Its last output (stderr):", *state.stderr_tail.splitlines()[-STDERR_LINES:]]
    if state.tools:
        lines += ["", "Tools:", *(f"  {t.name}: {(t.description.strip().splitlines() or [''])[0][:120]}"
                                  for t in state.tools)]  # fmt: skip
    return inert_text("\n".join(lines))


class McpPage(QDialog):
    """The list of servers. `problem` label: one sentence for what could not be done."""

    def __init__(self, servers: McpServers, parent: QWidget | None = None, *, home: Path | None = None) -> None:
        super().__init__(parent)
        self.servers, self.home = servers, home
        self.setObjectName("mcpPage")
        self.setWindowTitle("MCP Servers")
        self.resize(640, 480)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("mcpServers")
        self.tree.setAccessibleName("MCP servers")
        self.tree.setHeaderLabels(["Server", "Status", "Runs"])
        self.tree.setRootIsDecorated(False)
        self.details = QPlainTextEdit(self)
        self.details.setObjectName("mcpDetails")
        self.details.setAccessibleName("The server's status and tools")
        self.details.setReadOnly(True)
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("mcpName")
        self.name_edit.setAccessibleName("New server's name")
        self.target_edit = QLineEdit(self)
        self.target_edit.setObjectName("mcpTarget")
        self.target_edit.setAccessibleName("New server's command or URL")
        self.target_edit.setPlaceholderText("a command with its arguments (stdio), or http(s)://… (streamable HTTP)")
        self.add_button = QPushButton("Add", self)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setAccessibleName("Remove the server")
        self.start_button = QPushButton("Start again", self)
        self.import_lmstudio = QPushButton("Import from LM Studio", self)
        self.import_claude = QPushButton("Import from Claude Desktop", self)
        self.problem = QLabel(self)
        self.problem.setObjectName("mcpProblem")
        self.problem.setWordWrap(True)
        self.problem.setTextFormat(Qt.TextFormat.PlainText)
        form = QFormLayout()
        form.addRow("Name:", self.name_edit)
        form.addRow("Command or URL:", self.target_edit)
        row = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.start_button):
            row.addWidget(button)
        row.addStretch(1)
        imports = QHBoxLayout()
        imports.addWidget(self.import_lmstudio)
        imports.addWidget(self.import_claude)
        imports.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 2)
        layout.addWidget(self.details, 1)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addLayout(imports)
        layout.addWidget(self.problem)
        self.add_button.clicked.connect(self.add_from_fields)
        self.remove_button.clicked.connect(self.remove_selected)
        self.start_button.clicked.connect(self._start_selected)
        self.import_lmstudio.clicked.connect(lambda: self.import_from("lmstudio"))
        self.import_claude.clicked.connect(lambda: self.import_from("claude"))
        self.tree.currentItemChanged.connect(lambda *_: self._show_details())
        servers.stateChanged.connect(lambda _state: self.refresh())
        servers.configChanged.connect(self.refresh)
        self.refresh()

    # --- what is shown -------------------------------------------------------------------------------------------
    def status_of(self, name: str) -> str:
        return self.servers.state(name).status

    def refresh(self) -> None:
        current = self.selected()
        self.tree.clear()
        for config in self.servers.configs:
            state = self.servers.state(config.name)
            status = "switched off" if config.disabled else state.status
            item = QTreeWidgetItem([config.name, status, inert_text(config.describe())])
            item.setData(0, Qt.ItemDataRole.UserRole, config.name)
            self.tree.addTopLevelItem(item)
            if config.name == current:
                self.tree.setCurrentItem(item)
        first = self.tree.topLevelItem(0)
        if self.tree.currentItem() is None and first is not None:
            self.tree.setCurrentItem(first)
        if self.servers.problems:
            self._say(self.servers.problems[0])
        self._show_details()

    def selected(self) -> str | None:
        item = self.tree.currentItem()
        return None if item is None else str(item.data(0, Qt.ItemDataRole.UserRole))

    def _show_details(self) -> None:
        name = self.selected()
        self.details.setPlainText("" if name is None else state_text(self.servers.state(name)))
        self.remove_button.setEnabled(name is not None)
        self.start_button.setEnabled(name is not None)

    def _say(self, sentence: str) -> None:
        self.problem.setText(sentence)

    # --- changes ------------------------------------------------------------------------------------------------
    def start_all(self) -> None:
        self.servers.start(self.servers.names)

    def _start_selected(self) -> None:
        name = self.selected()
        if name is not None:
            self.servers.start([name])

    def add_from_fields(self) -> bool:
        name, target = self.name_edit.text().strip(), self.target_edit.text().strip()
        try:
            if not name or not target:
                raise LlamaDeskError("Give the server a name and a command (or a URL).")
            if target.startswith(("http://", "https://")):
                entry: dict[str, object] = {"url": target}
            else:
                words = shlex.split(target)
                entry = {"command": words[0], "args": words[1:]}
            mcp_config.add(mcp_config.ServerConfig.from_json(name, entry), self.servers.config)
        except ValueError:
            self._say("The command has an unclosed quote.")
            return False
        except LlamaDeskError as exc:
            self._say(str(exc))
            return False
        self.name_edit.clear()
        self.target_edit.clear()
        self._say("")
        self.servers.reload()
        self.servers.start([name])
        return True

    def remove_selected(self) -> None:
        name = self.selected()
        if name is None:
            return
        try:
            mcp_config.remove(name, self.servers.config)
        except LlamaDeskError as exc:
            self._say(str(exc))
            return
        self.servers.reload()

    def import_from(self, app: str) -> list[str]:
        """One click: the servers of LM Studio's or Claude Desktop's configuration added to ours."""
        source = mcp_config.other_apps_files(self.home)[app]
        try:
            added, problems = mcp_config.import_file(source, self.servers.config)
        except LlamaDeskError as exc:
            self._say(str(exc))
            return []
        what = "LM Studio" if app == "lmstudio" else "Claude Desktop"
        words = f"Imported {len(added)} server{'s' if len(added) != 1 else ''} from {what}"
        self._say(" ".join([f"{words}{': ' + ', '.join(added) if added else ''}.", *problems]))
        if added:
            self.servers.reload()
            self.servers.start(added)
        return added


class McpServersAction(QObject):
    """File → MCP Servers…; opening the page starts the servers to show their status."""

    def __init__(self, parent: QWidget, file_menu: QMenu, servers: McpServers) -> None:
        super().__init__(parent)
        self.parent_widget, self.servers = parent, servers
        self.page: McpPage | None = None
        self.action = QAction("MCP Servers…", parent)
        self.action.setObjectName("mcpServersAction")
        self.action.setStatusTip("Servers whose tools a model may call (mcp.json; import LM Studio's or Claude's)")
        self.action.triggered.connect(self.open)
        actions = file_menu.actions()
        if actions:
            file_menu.insertAction(actions[-1], self.action)  # before Quit
        else:
            file_menu.addAction(self.action)

    def open(self) -> McpPage:
        if self.page is None:
            self.page = McpPage(self.servers, self.parent_widget)
        self.page.start_all()
        self.page.show()
        self.page.raise_()
        return self.page

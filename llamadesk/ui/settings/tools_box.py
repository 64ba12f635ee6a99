"""The Tools section of the settings panel: which tools the model may call in the shown conversation (the built-in
ones: calculator, date and time, files in folders you grant, the history, the conversation's documents; and the
tools of the MCP servers in mcp.json), kept with the conversation (its sampling JSON, like the response format).

`ToolsKeeper.tool_use(cid)` is what the session asks before a reply (ChatSession.tools_for): the conversation's
ToolUse (None when no tool is on), with the window's approval (ui/chat/tool_approval.py) and the user's "always"
answers kept for the conversation. `McpServers` holds the window's MCP host (core/tools/mcp_host.py): servers start
when a conversation switches them on, or from the MCP servers page (ui/settings/mcp_page.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.documents.context import collections_of
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.tools import mcp_config
from llamadesk.core.tools.approval import Approval
from llamadesk.core.tools.builtin import builtin_tools, documents_tool
from llamadesk.core.tools.mcp_host import READY, McpHost, ServerState
from llamadesk.core.tools.spec import Tool, ToolBox
from llamadesk.core.tools.use import ToolUse
from llamadesk.ui.chat.tool_approval import WindowAsk
from llamadesk.ui.settings.per_conversation import ConversationChoice

if TYPE_CHECKING:
    from llamadesk.core.history import History
    from llamadesk.ui.window_state import WindowState

TOOLS_KEY = "tools"  # in the conversation's sampling JSON: {"builtin": [...], "folders": [...], "mcp": [...]}
BUILTINS = (
    ("calculator", "Calculator", "Exact arithmetic; nothing else runs"),
    ("time", "Date and time", "The current local date, time and time zone"),
    ("history", "Search the history", "Your earlier conversations, searched for words"),
    ("documents", "Search the documents", "The document collections this conversation uses"),
)


def stored_tools(sampling: dict[str, Any] | None) -> dict[str, list[str]]:
    """The tools kept with a conversation, cleaned (anything else there is ignored)."""
    raw = (sampling or {}).get(TOOLS_KEY)
    raw = raw if isinstance(raw, dict) else {}
    out: dict[str, list[str]] = {}
    for key in ("builtin", "folders", "mcp"):
        values = raw.get(key)
        out[key] = [v for v in values if isinstance(v, str) and v] if isinstance(values, list) else []
    return out


class McpServers(QObject):
    """The window's MCP servers (mcp.json), one McpHost for all; `stateChanged` (a ServerState) on the GUI thread."""

    stateChanged = Signal(object)
    configChanged = Signal()

    def __init__(self, config: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.problems: list[str] = []
        self._host: McpHost | None = None
        self.configs: list[mcp_config.ServerConfig] = []
        self.reload()

    def reload(self) -> None:
        """Reads mcp.json again; servers that were running are started again with their new settings."""
        running = [s.name for s in self.states() if s.status != "stopped"]
        self.close()
        try:
            self.configs, self.problems = mcp_config.load(self.config)
        except LlamaDeskError as exc:
            self.configs, self.problems = [], [str(exc)]
        # on_change is called in the host's thread: the signal is queued to the GUI thread
        self._host = McpHost([c for c in self.configs if not c.disabled], on_change=self.stateChanged.emit)
        self.start([n for n in running if n in self._host.names])
        self.configChanged.emit()

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.configs]

    def start(self, names: list[str]) -> None:
        if self._host is not None:
            self._host.start([n for n in names if n in self._host.names])

    def states(self) -> list[ServerState]:
        return self._host.states() if self._host is not None else []

    def state(self, name: str) -> ServerState:
        if self._host is None or name not in self._host.names:
            return ServerState(name, "stopped", error="This server is switched off in mcp.json.")
        return self._host.state(name)

    def tools(self, name: str) -> list[Tool]:
        if self._host is None or name not in self._host.names or self._host.state(name).status != READY:
            return []
        return self._host.tools(name)

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None


class ToolsBox(QGroupBox):
    """The switches. `toolsChanged` (the stored dict) on the user's changes only."""

    toolsChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Tools", parent)
        self.setObjectName("toolsBox")
        self.setToolTip("Tools the model may call in this conversation; each call is shown to you before it runs")
        self._updating = False
        self.checks: dict[str, QCheckBox] = {}
        layout = QVBoxLayout(self)
        for key, label, tip in BUILTINS:
            check = QCheckBox(label, self)
            check.setObjectName(f"tool_{key}")
            check.setToolTip(tip)
            check.toggled.connect(self._changed)
            self.checks[key] = check
            layout.addWidget(check)
        self.files_label = QLabel("Read files in these folders:", self)
        self.folders = QListWidget(self)
        self.folders.setObjectName("toolFolders")
        self.folders.setAccessibleName("Folders the model may read")
        self.folders.setMaximumHeight(70)
        self.add_folder_button = QPushButton("Add folder…", self)
        self.add_folder_button.setObjectName("toolAddFolder")
        self.remove_folder_button = QPushButton("Remove", self)
        self.remove_folder_button.setObjectName("toolRemoveFolder")
        self.remove_folder_button.setAccessibleName("Remove the folder")
        row = QHBoxLayout()
        row.addWidget(self.add_folder_button)
        row.addWidget(self.remove_folder_button)
        row.addStretch(1)
        layout.addWidget(self.files_label)
        layout.addWidget(self.folders)
        layout.addLayout(row)
        self.mcp_label = QLabel("MCP servers:", self)
        layout.addWidget(self.mcp_label)
        self.mcp_layout = QVBoxLayout()
        layout.addLayout(self.mcp_layout)
        self.mcp_checks: dict[str, QCheckBox] = {}
        self.add_folder_button.clicked.connect(self._choose_folder)
        self.remove_folder_button.clicked.connect(self._remove_folder)
        self.set_servers([])

    def set_servers(self, names: list[str]) -> None:
        """One switch per MCP server of mcp.json (the ones switched on stay on)."""
        on = {n for n, c in self.mcp_checks.items() if c.isChecked()}
        for check in self.mcp_checks.values():
            check.deleteLater()
        self.mcp_checks = {}
        for name in names:
            check = QCheckBox(name, self)
            check.setObjectName(f"mcp_{name}")
            check.setAccessibleName(f"Tools of the MCP server {name}")
            check.setChecked(name in on)
            check.toggled.connect(self._changed)
            self.mcp_checks[name] = check
            self.mcp_layout.addWidget(check)
        self.mcp_label.setText("MCP servers:" if names else "MCP servers: none (Settings → MCP Servers…)")

    def tools(self) -> dict[str, list[str]]:
        return {
            "builtin": [k for k, c in self.checks.items() if c.isChecked()],
            "folders": [self.folders.item(i).text() for i in range(self.folders.count())],
            "mcp": [n for n, c in self.mcp_checks.items() if c.isChecked()],
        }

    def set_tools(self, tools: dict[str, list[str]]) -> None:
        """Shows `tools` without emitting toolsChanged (a server no longer in mcp.json is left out)."""
        self._updating = True
        try:
            for key, check in self.checks.items():
                check.setChecked(key in tools.get("builtin", ()))
            self.folders.clear()
            self.folders.addItems(tools.get("folders", []))
            for name, check in self.mcp_checks.items():
                check.setChecked(name in tools.get("mcp", ()))
        finally:
            self._updating = False

    def add_folder(self, folder: Path) -> None:
        text = str(Path(folder).expanduser().resolve())
        if text not in self.tools()["folders"]:
            self.folders.addItem(text)
            self._changed()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder the model may read")
        if folder:
            self.add_folder(Path(folder))

    def _remove_folder(self) -> None:
        row = self.folders.currentRow()
        if row >= 0:
            self.folders.takeItem(row)
            self._changed()

    def _changed(self, *_: object) -> None:
        if not self._updating:
            self.toolsChanged.emit(self.tools())


def history_search(path: Path) -> Callable[..., list[Any]]:
    """History.search for the engine thread, where a call runs: a connection of its own for each call (a SQLite
    connection belongs to the thread that opened it)."""

    def search(*args: Any, **kwargs: Any) -> list[Any]:
        from llamadesk.core.history import History

        history = History(path)
        try:
            return history.search(*args, **kwargs)
        finally:
            history.close()

    return search


class ToolsKeeper(ConversationChoice):
    """Stores the box's tools with the shown conversation and makes each reply's ToolUse."""

    key, what = TOOLS_KEY, "Tools"

    def __init__(
        self, state: WindowState, box: ToolsBox, history: History, parent: QWidget,
        *, servers: McpServers | None = None,
    ) -> None:  # fmt: skip
        super().__init__(state, history, parent)
        self.box = box
        self.servers = servers if servers is not None else McpServers(parent=self)
        self.ask = WindowAsk(parent)
        self._approvals: dict[int, Approval] = {}  # per conversation: its "always" answers
        box.set_servers(self.servers.names)
        self.servers.configChanged.connect(lambda: box.set_servers(self.servers.names))
        box.toolsChanged.connect(self._on_changed)

    def tool_use(self, cid: int) -> ToolUse | None:
        """The conversation's tools for a reply (None when none is on). A folder that is gone, a server not ready
        yet: left out, said in the status bar; the reply goes on."""
        try:
            sampling = self.history.get_conversation(cid).sampling
        except LlamaDeskError:
            return None
        chosen = stored_tools(sampling)
        tools: list[Tool] = []
        problems: list[str] = []
        specs = [k for k in chosen["builtin"] if k in ("calculator", "time", "history")]
        folders = [f for f in chosen["folders"] if Path(f).is_dir()]
        problems += [
            f"The folder {f} is gone; the model cannot read it." for f in chosen["folders"] if f not in folders
        ]
        try:
            tools += builtin_tools(specs + [f"files:{f}" for f in folders], search_history=history_search(
                self.history.path))  # fmt: skip
        except LlamaDeskError as exc:
            problems.append(str(exc))
        if "documents" in chosen["builtin"] and (names := collections_of(sampling)):
            tools.append(documents_tool(names))
        self.servers.start(chosen["mcp"])
        for name in chosen["mcp"]:
            found = self.servers.tools(name)
            if not found:
                problems.append(f"The MCP server {name} is not ready; its tools are left out of this reply.")
            tools += found
        if problems:
            self.state.show_notice(problems[0], 10000)
        if not tools:
            return None
        approval = self._approvals.setdefault(cid, Approval(self.ask))
        return ToolUse(ToolBox(tools), approval)

    def show(self, sampling: dict[str, Any]) -> None:
        chosen = stored_tools(sampling)
        self.servers.start(chosen["mcp"])  # ready by the time you send, usually
        self.box.set_tools(chosen)

    def encode(self, value: Any) -> Any:
        return value if any(value.values()) else None

    def _on_changed(self, tools: dict[str, list[str]]) -> None:
        self.servers.start(tools["mcp"])
        self.changed(tools)

    def close(self) -> None:
        """At shutdown: the MCP servers' processes end."""
        self.servers.close()

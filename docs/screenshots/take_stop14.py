"""Screenshots of what stop 14 added to the window, at 1280×800 with the starter model, in a temporary home:

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/take_stop14.py

tools-settings.png (the panel's Response format and Tools sections), mcp-servers.png (File → MCP Servers…, with the
tests' real MCP server over stdio), quality-compare.png (the model manager's Compare tab)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from take import settle, wait_until  # the screenshot scripts' shared helpers (this folder is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STARTER_CACHE = Path(os.environ.get("LLAMADESK_TEST_CACHE", Path.home() / ".cache" / "llamadesk" / "test-models"))


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="llamadesk-stop14-"))
    os.environ["LLAMADESK_HOME"] = str(home)
    from PySide6.QtWidgets import QApplication

    from llamadesk.core.history import History
    from llamadesk.core.starter import ensure_starter
    from llamadesk.paths import get_paths
    from llamadesk.ui.main_window import MainWindow

    paths = get_paths(home).ensure()
    starter = ensure_starter(STARTER_CACHE / "models", STARTER_CACHE / "download")
    (paths.models / starter.name).symlink_to(starter)
    server = ROOT / "tests" / "mcp_test_server.py"
    (paths.config / "mcp.json").write_text(json.dumps({"mcpServers": {
        "test-tools": {"command": sys.executable, "args": [str(server)]},
    }}))  # fmt: skip
    app = QApplication.instance() or QApplication(["llamadesk-screenshots"])
    window = MainWindow(paths, History(paths.history_db))
    window.resize(1280, 800)
    window.show()
    wait_until(lambda: window.model_info is not None)

    def save(widget: object, name: str) -> None:
        settle()
        widget.grab().save(str(HERE / name))  # type: ignore[attr-defined]
        print(f"wrote {HERE / name}")

    panel = window.panel
    scroll = window.settings_dock.widget()
    settle()
    scroll.ensureWidgetVisible(panel.tools)  # type: ignore[attr-defined]
    save(window, "tools-settings.png")

    page = window.mcp_servers.open()
    page.resize(900, 560)
    settle(8.0)  # the server starts (a child process); the page shows its state as it changes
    save(page, "mcp-servers.png")
    page.close()

    window.navigation.show_model_manager()
    manager = window.navigation.model_manager
    assert manager is not None
    manager.resize(1280, 800)
    manager.show_tab("compare")
    save(manager, "quality-compare.png")
    manager.close()
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Before-and-after screenshots for issue 20 (first launch, settings, catalog, an offline download and search),
at 1280×800 and 800×600, of whichever LlamaDesk is importable (run it from a checkout before the change, and after):

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python docs/screenshots/take_issue20_welcome.py after
    PYTHONPATH=/tmp/before xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python \
        docs/screenshots/take_issue20_welcome.py before

The PNGs land next to this file as issue20-<scene>-<width>x<height>-<tag>.png. Everything happens in a temporary
LLAMADESK_HOME with only the starter model (from the tests' cache), as on a first launch; the Hub is a loopback port
where nothing listens, so the download fails as it does offline.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from take import settle, wait_until  # the screenshot scripts' shared helpers (this folder is on sys.path)

HERE = Path(__file__).resolve().parent
STARTER_CACHE = Path(os.environ.get("LLAMADESK_TEST_CACHE", Path.home() / ".cache" / "llamadesk" / "test-models"))
SIZES = ((1280, 800), (800, 600))


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def main(argv: list[str]) -> int:
    tag = argv[0] if argv else "after"
    home = Path(tempfile.mkdtemp(prefix="llamadesk-issue20-"))
    os.environ["LLAMADESK_HOME"] = str(home)
    os.environ["HF_ENDPOINT"] = closed_port()
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

    from PySide6.QtWidgets import QApplication

    import llamadesk
    from llamadesk.core.downloads import RetryPolicy
    from llamadesk.core.history import History
    from llamadesk.core.starter import ensure_starter
    from llamadesk.paths import get_paths
    from llamadesk.ui.main_window import MainWindow

    print(f"LlamaDesk from {Path(llamadesk.__file__).parent}")
    paths = get_paths(home).ensure()
    starter = ensure_starter(STARTER_CACHE / "models", STARTER_CACHE / "download")
    (paths.models / starter.name).symlink_to(starter)
    app = QApplication.instance() or QApplication(["llamadesk-screenshots"])
    history = History(paths.history_db)
    window = MainWindow(paths, history)
    window.show()
    wait_until(lambda: window.model_info is not None)
    welcome = getattr(window, "welcome", None)
    if welcome is not None:
        welcome.set_memory(16_000_000_000)  # the same suggestions on every machine: 16 GB free, no GPU

    def save(widget: object, scene: str) -> None:
        settle()
        size = f"{widget.width()}x{widget.height()}"  # type: ignore[attr-defined]
        path = HERE / f"issue20-{scene}-{size}-{tag}.png"
        widget.grab().save(str(path))  # type: ignore[attr-defined]
        print(f"wrote {path}")

    for width, height in SIZES:
        window.resize(width, height)
        settle()  # a narrow window folds its side panels away; then it can be as narrow as asked
        window.resize(width, height)
        save(window, "first-launch")
    panel = window.panel
    window.resize(1280, 800)
    if hasattr(panel, "set_show_all"):
        panel.set_show_all(True)
        panel.rows["typical_p"].help.button.setChecked(True)
        panel.rows["temperature"].help.button.setChecked(True)
    scroll = window.settings_dock.widget()
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum() // 3)  # type: ignore[attr-defined]
    save(window, "all-settings")

    window.navigation.show_model_manager()
    manager = window.navigation.model_manager
    assert manager is not None
    wait_until(lambda: manager.downloads.loaded)
    manager.downloads.policy = RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.1)  # ignored before
    for width, height in SIZES:
        manager.resize(width, height)
        manager.show_tab("catalog")
        save(manager, "catalog")
    page = manager.catalog_page
    page.select("smollm2", "1.7b", "Q4_K_M")
    manager.resize(1280, 800)
    page.download_button.click()
    wait_until(lambda: any(j.state.value == "failed" for j in manager.downloads.jobs()))
    settle(1.0)
    save(manager, "download-failed-catalog")
    manager.show_tab("downloads")
    save(manager, "download-failed")
    hub_page = manager.hub_page
    manager.show_tab("hub")
    hub_page.search_box.setText("qwen")
    started = time.monotonic()
    hub_page.search()
    wait_until(lambda: hub_page.search_button.isEnabled() and hub_page.message.is_error)
    print(f"the offline search answered in {time.monotonic() - started:.1f} s")
    save(manager, "hub-offline")
    manager.close()
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

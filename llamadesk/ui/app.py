"""Starts the GUI: the QApplication, the history, the main window, and a last-resort error handler."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from types import TracebackType

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from llamadesk import __version__, logsetup
from llamadesk.core import crashreport
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history import History
from llamadesk.paths import APP_ID, APP_NAME, get_paths, resource_path
from llamadesk.ui import single_instance

log = logging.getLogger(__name__)

SMOKE_TEST_MS = 500


ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], None]


def _make_excepthook(app: QApplication) -> ExceptHook:
    showing = False

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        """Logs an unexpected error and says so in one sentence, instead of letting the app die."""
        nonlocal showing
        log.error("Unexpected error:\n%s", "".join(traceback.format_exception(kind, exc, tb)))
        if issubclass(kind, KeyboardInterrupt):
            app.quit()
            return
        report = crashreport.write_report(get_paths().logs, kind, exc, tb)
        if showing:
            return
        showing = True
        try:
            sentence = str(exc) if isinstance(exc, LlamaDeskError) else f"Something went wrong: {exc or kind.__name__}."
            if report:
                where = f"\nA report was saved to {report}."
            else:  # a full disk took the report, and maybe the log too: then say nothing about where
                where = "\nDetails were written to the log." if logsetup.failure() is None else ""
            QMessageBox.warning(app.activeWindow(), APP_NAME, f"{sentence}{where}")
        finally:
            showing = False

    return excepthook


def _bring_to_front(window: QWidget) -> None:
    """Another start handed over: show this window (un-minimized) above the others."""
    log.info("Another start handed over to this window")
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()


def run_gui(argv: Sequence[str], *, smoke_test: bool = False) -> int:
    """Runs the app until its window closes; with `smoke_test`, shows the window, quits after 500 ms, returns 0."""
    from llamadesk.ui.main_window import MainWindow

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(list(argv))
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)
    icon_file = resource_path("icons", "llamadesk.svg")
    if icon_file.exists():
        app.setWindowIcon(QIcon(str(icon_file)))

    previous_hook = sys.excepthook
    sys.excepthook = _make_excepthook(app)
    try:
        paths = get_paths()
        name = single_instance.server_name(paths.data)
        if single_instance.hand_over(name):
            print(f"{APP_NAME} is already running; its window was brought to the front.", file=sys.stderr)
            return 0
        instance = single_instance.InstanceServer(name, app)
        instance.listen()
        try:
            paths.ensure()
            history = History(paths.history_db)
        except LlamaDeskError as exc:  # a full disk, a damaged history: one dialog, then a clean exit
            QMessageBox.critical(None, APP_NAME, str(exc))
            instance.close()
            return 1
        try:
            window = MainWindow(paths, history)
            window.show()
            instance.activateRequested.connect(lambda: _bring_to_front(window))
            app.setQuitOnLastWindowClosed(True)
            if smoke_test:
                # Closing the last window ends exec(). Not app.quit(): with a window open, Qt delivers that quit
                # in two steps, and the second can arrive after exec() returned and stop every later event loop.
                QTimer.singleShot(SMOKE_TEST_MS, window.close)
            code = app.exec()
            window.shutdown()  # already done when the window closed; here for exits that did not close it
            window.deleteLater()
        finally:
            history.close()
            instance.close()
    finally:
        sys.excepthook = previous_hook
    return 0 if smoke_test else int(code)

"""Help → About LlamaDesk / System…: the `llamadesk doctor` report in a readable form, copyable, with the
data folders one click away."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QMenu, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from llamadesk.paths import Paths
from llamadesk.ui.icons import icon

log = logging.getLogger(__name__)

FOLDERS = (
    ("Models", "models"),
    ("Conversations and data", "data"),
    ("Settings", "config"),
    ("Logs", "logs"),
    ("Cache", "cache"),
)


def _row(label: str, value: str) -> str:
    return f"<tr><th align='left' valign='top' width='28%'>{html.escape(label)}</th><td>{value}</td></tr>"


def _gib(n: int | None) -> str:
    from llamadesk.core import doctor

    return "?" if n is None else doctor.gib(n)


def report_html(report: dict[str, Any]) -> str:
    """The report as HTML tables: versions, the GPU answer, memory, devices and the folders (with open links)."""
    lcpp, cpu, ram, gpu = report["llama_cpp"], report["cpu"], report["ram"], report["gpu_offload"]
    esc = html.escape
    backends = ", ".join(
        f"{esc(b['name'])} ({b['devices']} device{'' if b['devices'] == 1 else 's'})" for b in report["backends"]
    )
    py = report["python"]
    versions = "".join((
        _row("LlamaDesk", esc(report["llamadesk"]["version"])),
        _row("Python", esc(f"{py['version']} ({py['implementation']}, {report['platform']['system']} "
                           f"{report['platform']['release']}, {report['platform']['machine']})")),
        _row("llama-cpp-python", esc(report["llama_cpp_python"]["version"])),
        _row("llama.cpp (ggml)", esc(f"{lcpp['ggml_version']}, commit {lcpp['commit']}")),
        _row("Backends", backends),
    ))  # fmt: skip
    machine = "".join((
        _row("GPU offload", f"<b>{esc(gpu['summary'])}</b>"),
        _row("CPU", esc(f"{cpu['name']}, {cpu['physical_cores']} cores ({cpu['logical_cores']} threads)")),
        _row("CPU features", esc(" ".join(cpu["features"]) or "-")),
        _row("RAM", esc(f"{_gib(ram['available_bytes'])} available of {_gib(ram['total_bytes'])}")),
        _row("mmap / mlock", esc(f"{'yes' if report['mmap'] else 'no'} / {'yes' if report['mlock'] else 'no'}")),
    ))  # fmt: skip
    devices = "".join(
        _row(d["name"], esc(f"{d['kind']} · {d['backend']} · {d['description']}: "
                            f"{_gib(d['free_bytes'])} free of {_gib(d['total_bytes'])}"))
        for d in report["devices"]
    )  # fmt: skip
    paths = report["paths"]
    folders = "".join(
        _row(label, f"{esc(paths[key])} &nbsp; <a href='{QUrl.fromLocalFile(paths[key]).toString()}'>Open</a>")
        for label, key in FOLDERS
    )
    free = paths.get("models_disk_free_bytes")
    if free is not None:
        folders += _row("Disk free", esc(f"{_gib(free)} (models folder)"))
    sections = (("Versions", versions), ("This machine", machine), ("Devices", devices), ("Folders", folders))
    body = "".join(
        f"<tr><td colspan='2'><h3>{title}</h3></td></tr>{rows}" for title, rows in sections
    )  # one table, so the columns line up across the sections
    return f"<table cellspacing='2' cellpadding='3' width='100%'>{body}</table>"


class AboutDialog(QDialog):
    """The system report; "Copy report" puts the text form (as `llamadesk doctor` prints it) on the clipboard,
    "Copy as JSON" the `doctor --json` form. Folder links open in the file manager."""

    folderOpened = Signal(str)

    def __init__(self, paths: Paths | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About LlamaDesk")
        self.resize(760, 640)
        try:
            from llamadesk.core import doctor  # psutil and the ggml registry: only when the dialog opens

            self.report: dict[str, Any] = doctor.collect(paths)
        except Exception as exc:
            log.exception("The system report failed")
            self.report = {}
            self.error = f"The system report could not be made: {exc}."
        else:
            self.error = ""
        title = QLabel(f"<h2>LlamaDesk {html.escape(self._version())}</h2>"
                       "Chat with language models on your own computer, with llama.cpp.", self)  # fmt: skip
        title.setObjectName("aboutTitle")
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("systemReport")
        self.browser.setAccessibleName("System report")
        self.browser.setToolTip("Versions, llama.cpp backends, devices, memory and folders (Tab moves between links).")
        self.browser.setOpenLinks(False)
        self.browser.setHtml(report_html(self.report) if self.report else html.escape(self.error))
        self.browser.anchorClicked.connect(self.open_link)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = QPushButton("Copy report", self)
        self.copy_button.setObjectName("copyReport")
        self.copy_button.setAccessibleName("Copy report")
        self.copy_button.setToolTip("Copy the report as text, to paste into a bug report.")
        self.json_button = QPushButton("Copy as JSON", self)
        self.json_button.setObjectName("copyJson")
        self.json_button.setAccessibleName("Copy report as JSON")
        self.json_button.setToolTip("Copy the report as JSON (the same as `llamadesk doctor --json`).")
        for button in (self.copy_button, self.json_button):
            button.setEnabled(bool(self.report))
            self.buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.rejected.connect(self.reject)
        self.copy_button.clicked.connect(self.copy_text)
        self.json_button.clicked.connect(self.copy_json)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.browser, 1)
        layout.addWidget(self.buttons)
        self.copy_button.setFocus()

    def _version(self) -> str:
        from llamadesk import __version__

        return __version__

    def text(self) -> str:
        from llamadesk.core import doctor

        return doctor.format_text(self.report) if self.report else self.error

    def copy_text(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def copy_json(self) -> None:
        QGuiApplication.clipboard().setText(json.dumps(self.report, indent=2))

    def open_link(self, url: QUrl) -> None:
        """A folder link: opened in the file manager (created first, so the link never goes nowhere)."""
        if url.isLocalFile():
            folder = Path(url.toLocalFile())
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.warning("Cannot create %s: %s", folder, exc)
            self.folderOpened.emit(str(folder))
        if not QDesktopServices.openUrl(url):
            log.warning("No program opened %s", url.toString())


class AboutAction(QObject):
    """Help → About LlamaDesk / System… (the Help menu is shared with other actions); the dialog belongs to `parent`."""

    def __init__(self, parent: QWidget, help_menu: QMenu, paths: Paths) -> None:
        super().__init__(parent)

        self.parent_widget, self.paths = parent, paths
        self.dialog: AboutDialog | None = None
        self.action = QAction("About LlamaDesk / System…", parent)
        self.action.setObjectName("aboutAction")
        self.action.setIcon(icon("about"))
        self.action.setMenuRole(QAction.MenuRole.AboutRole)
        self.action.setStatusTip("Versions, llama.cpp backends, devices, memory and folders")
        self.action.triggered.connect(self.open)
        help_menu.addAction(self.action)

    def open(self) -> AboutDialog:
        if self.dialog is None:
            self.dialog = AboutDialog(self.paths, self.parent_widget)
            self.dialog.finished.connect(self._forget)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def _forget(self, *_: object) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

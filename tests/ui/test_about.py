"""Help → About LlamaDesk / System…: the doctor report, copied as text and JSON, and the folder links."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from llamadesk.core import doctor
from llamadesk.paths import Paths
from llamadesk.ui.about_dialog import FOLDERS, AboutDialog
from llamadesk.ui.main_window import MainWindow
from tests.ui.conftest import FileUrls, help_action


def test_help_menu_opens_the_report(make_window: Callable[..., MainWindow], qtbot: QtBot) -> None:
    window = make_window(auto_load=False)
    assert help_action(window, window.about.action.text()) is window.about.action
    window.about.action.trigger()
    dialog = window.about.dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    text = dialog.browser.toPlainText()
    report = dialog.report
    for expected in (report["llamadesk"]["version"], report["python"]["version"],
                     report["llama_cpp_python"]["version"], report["llama_cpp"]["ggml_version"],
                     report["gpu_offload"]["summary"], str(window.paths.models)):  # fmt: skip
        assert expected in text
    for device in report["devices"]:
        assert device["description"] in text
    assert re.search(r"RAM\s+[\d.]+ GiB available of [\d.]+ GiB", text)
    assert window.about.open() is dialog  # one dialog, raised again
    dialog.reject()
    qtbot.waitUntil(lambda: window.about.dialog is None)


def test_copy_report_as_text_and_json(qtbot: QtBot, paths: Paths) -> None:
    dialog = AboutDialog(paths)
    qtbot.addWidget(dialog)
    clipboard = QGuiApplication.clipboard()
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert clipboard.text() == doctor.format_text(dialog.report)
    assert clipboard.text().startswith("LlamaDesk ")
    qtbot.mouseClick(dialog.json_button, Qt.MouseButton.LeftButton)
    assert json.loads(clipboard.text()) == json.loads(json.dumps(dialog.report))
    assert json.loads(clipboard.text())["paths"]["models"] == str(paths.models)


def test_folder_links_open_the_folders(qtbot: QtBot, paths: Paths, file_urls: FileUrls) -> None:
    dialog = AboutDialog(paths)
    qtbot.addWidget(dialog)
    html = dialog.browser.toHtml()
    for _label, key in FOLDERS:
        url = QUrl.fromLocalFile(str(getattr(paths, key)))
        assert url.toString() in html, key
    shutil.rmtree(paths.logs, ignore_errors=True)
    with qtbot.waitSignal(dialog.folderOpened) as sent:
        dialog.browser.anchorClicked.emit(QUrl.fromLocalFile(str(paths.logs)))
    assert sent.args == [str(paths.logs)] and paths.logs.is_dir()  # made first, so the link goes somewhere
    assert [u.toLocalFile() for u in file_urls.urls] == [str(paths.logs)]


def test_a_broken_report_is_one_sentence(qtbot: QtBot, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_paths: Paths | None = None) -> dict[str, object]:
        raise OSError("libggml.so: cannot open shared object file")

    monkeypatch.setattr(doctor, "collect", broken)
    dialog = AboutDialog(paths)
    qtbot.addWidget(dialog)
    assert dialog.browser.toPlainText() == (
        "The system report could not be made: libggml.so: cannot open shared object file."
    )
    assert not dialog.copy_button.isEnabled() and not dialog.json_button.isEnabled()


def test_controls_are_named_and_reachable(qtbot: QtBot, paths: Paths) -> None:
    dialog = AboutDialog(paths)
    qtbot.addWidget(dialog)
    for w in (dialog.browser, dialog.copy_button, dialog.json_button):
        assert w.accessibleName() and w.toolTip() and w.focusPolicy() & Qt.FocusPolicy.TabFocus

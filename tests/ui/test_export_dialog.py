"""File → Export… and Import… in the real window: several conversations chosen in the sidebar, each format, errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.ui.export_dialog import default_name, with_suffix
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.workers import live_query_runners
from tests.ui.conftest import Dialogs


@pytest.fixture(autouse=True)
def no_query_thread_left() -> Iterator[None]:
    yield
    assert live_query_runners() == [], "a query thread is still running after the test"


pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints.*")


class FileDialogs:
    """Stands in for the platform's file dialogs (a stub of the dialog, not of the component tested)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answer = ""
        self.asked: list[tuple[str, str]] = []  # (suggested path, filter)
        monkeypatch.setattr(QFileDialog, "getSaveFileName", self._ask)
        monkeypatch.setattr(QFileDialog, "getOpenFileName", self._ask)

    def _ask(self, _parent: Any, _caption: str, path: str, filters: str, *_: Any, **__: Any) -> tuple[str, str]:
        self.asked.append((path, filters))
        return self.answer, filters


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch) -> FileDialogs:
    return FileDialogs(monkeypatch)


def three_conversations(history: History) -> list[int]:
    ids = []
    for title, words in (("Soup", "turnip soup"), ("Sailing", "a small boat"), ("Taxes", "receipts <b>boxes</b>")):
        conv = history.create_conversation(title)
        history.add_message(conv.id, "user", f"Tell me about {words}")
        history.add_message(conv.id, "assistant", f"All about {words}.", finish_reason="stop")
        ids.append(conv.id)
    return ids


def select_with_ctrl(qtbot: QtBot, window: MainWindow, cids: list[int]) -> None:
    """Clicks the first conversation, Ctrl+clicks the others: a real multi-selection in the sidebar."""
    view = window.sidebar.list
    for i, cid in enumerate(cids):
        rect = view.visualRect(window.sidebar.model.index(window.sidebar.model.row_of(cid), 0))
        mods = Qt.KeyboardModifier.ControlModifier if i else Qt.KeyboardModifier.NoModifier
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, mods, rect.center())


def menu_action(window: MainWindow, menu: str, text: str) -> Any:
    for action in window.menuBar().actions():
        if action.text().replace("&", "") == menu and action.menu() is not None:
            return next(a for a in action.menu().actions() if a.text() == text)
    raise AssertionError(f"no {menu} → {text}")


def test_export_the_selected_conversations_as_markdown(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot, files: FileDialogs, tmp_path: Path
) -> None:
    soup, _sailing, taxes = three_conversations(history)
    window = make_window(auto_load=False)
    window.refresh_conversations()
    select_with_ctrl(qtbot, window, [soup, taxes])
    assert sorted(window.sidebar.selected_ids()) == sorted([soup, taxes])

    menu_action(window, "File", "Export…").trigger()
    dialog = window.navigation.history_actions.transfer.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.selected_button.isChecked() and "2 selected" in dialog.selected_button.text()
    dialog.set_fmt("md")
    files.answer = str(tmp_path / "notes")  # no suffix typed: .md is added
    with qtbot.waitSignal(window.navigation.history_actions.transfer.exported, timeout=10_000) as done:
        dialog.accept()
    assert done.args == [str(tmp_path / "notes.md"), 2]
    assert files.asked[0][1] == "Markdown (*.md)"
    text = (tmp_path / "notes.md").read_text(encoding="utf-8")
    assert "turnip soup" in text and "receipts <b>boxes</b>" in text and "small boat" not in text
    assert "Exported 2 conversations" in window.statusBar().currentMessage()


def test_export_all_as_json_then_import_it_back(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot, files: FileDialogs, tmp_path: Path
) -> None:
    ids = three_conversations(history)
    window = make_window(auto_load=False)
    actions = window.navigation.history_actions
    dialog = actions.transfer.export()
    dialog.all_button.setChecked(True)
    dialog.set_fmt("json")
    files.answer = str(tmp_path / "all.json")
    with qtbot.waitSignal(actions.transfer.exported, timeout=10_000):
        dialog.accept()
    document = json.loads((tmp_path / "all.json").read_text(encoding="utf-8"))
    assert len(document["conversations"]) == 3

    files.answer = str(tmp_path / "all.json")
    with qtbot.waitSignal(actions.transfer.imported, timeout=10_000) as done:
        menu_action(window, "File", "Import…").trigger()
    new_ids = done.args[0]
    assert len(new_ids) == 3 and not set(new_ids) & set(ids)
    assert history.count_conversations() == 6
    assert window.current_cid == new_ids[0]  # the first imported one is opened
    assert [m.content for m in history.messages(new_ids[0])] == [m.content for m in history.messages(ids[0])]
    assert "Imported 3 conversations" in window.statusBar().currentMessage()


def test_a_broken_import_file_says_why_and_imports_nothing(
    make_window: Callable[..., MainWindow],
    history: History,
    qtbot: QtBot,
    files: FileDialogs,
    dialogs: Dialogs,
    tmp_path: Path,
) -> None:
    three_conversations(history)
    window = make_window(auto_load=False)
    bad = tmp_path / "broken.json"
    bad.write_text('{"format": "llamadesk-history", "version": 1, "conversations": [', encoding="utf-8")
    files.answer = str(bad)
    window.navigation.history_actions.import_action.trigger()
    qtbot.waitUntil(lambda: bool(dialogs.warnings), timeout=10_000)
    title, sentence = dialogs.warnings[0]
    assert title == "Conversations not imported"
    assert sentence.startswith(f"Nothing was imported from {bad}") and "line 1" in sentence
    assert "\n" not in sentence and "Traceback" not in sentence
    assert history.count_conversations() == 3


def test_an_export_to_a_missing_folder_says_why(
    make_window: Callable[..., MainWindow],
    history: History,
    qtbot: QtBot,
    files: FileDialogs,
    dialogs: Dialogs,
    tmp_path: Path,
) -> None:
    three_conversations(history)
    window = make_window(auto_load=False)
    files.answer = str(tmp_path / "no such folder" / "out.html")
    assert window.navigation.history_actions.transfer.export_to_file(None, "html")
    qtbot.waitUntil(lambda: bool(dialogs.warnings), timeout=10_000)
    title, sentence = dialogs.warnings[0]
    assert title == "Conversations not exported" and "could not be written" in sentence
    assert not (tmp_path / "no such folder").exists()


def test_cancelling_the_file_dialog_writes_nothing(
    make_window: Callable[..., MainWindow], history: History, files: FileDialogs, tmp_path: Path
) -> None:
    three_conversations(history)
    window = make_window(auto_load=False)
    files.answer = ""
    assert not window.navigation.history_actions.transfer.export_to_file(None, "md")
    assert not window.navigation.history_actions.transfer.import_conversations()
    assert history.count_conversations() == 3 and list(tmp_path.iterdir()) == [tmp_path / "home"]


def test_file_names() -> None:
    assert default_name(["Soup: the <best>?"], "md") == "Soup  the  best.md"
    assert default_name([], "html") == "LlamaDesk conversations.html"
    assert default_name(["..."], "json") == "LlamaDesk conversations.json"
    assert with_suffix("/x/notes", "md") == Path("/x/notes.md")
    assert with_suffix("/x/notes.MD", "md") == Path("/x/notes.MD")
    assert with_suffix("/x/notes.txt", "json") == Path("/x/notes.txt.json")

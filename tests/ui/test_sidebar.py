"""The sidebar over a real SQLite history: lazy pages, date headings, pin, rename, delete with undo."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot

from llamadesk.core.history import Conversation, FullConversation, History, Message
from llamadesk.ui.conversation_list import HeaderRole, IdRole
from llamadesk.ui.sidebar import Sidebar
from tests.ui.conftest import run_menu_action

NOW = dt.datetime(2026, 3, 10, 12, 0).timestamp()  # local time, like the sidebar
DAY = 86400.0


def add_conversations(history: History, ages_days: dict[str, float], *, pinned: tuple[str, ...] = ()) -> list[int]:
    """Imports conversations last active `age` days before NOW (the public way to set their times)."""
    convs = []
    for i, (title, age) in enumerate(ages_days.items()):
        stamp = NOW - age * DAY
        conv = Conversation(i + 1, title, stamp, stamp, None, "", {}, title in pinned, 1)
        convs.append(
            FullConversation(conv, [Message(1, i + 1, None, "user", f"about {title}", stamp, "complete", None, None)])
        )
    return history.import_conversations(convs)


def make_sidebar(qtbot: QtBot, history: History, **kwargs: object) -> Sidebar:
    sidebar = Sidebar(history=history, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]
    qtbot.addWidget(sidebar)
    sidebar.resize(260, 500)
    with qtbot.waitActive(sidebar):  # shortcuts (Ctrl+Z) need the focus in the active window
        sidebar.show()
        sidebar.activateWindow()
    return sidebar


def shown(sidebar: Sidebar) -> list[str]:
    """The rows as shown: headings in brackets."""
    m = sidebar.model
    return [
        f"[{m.index(r, 0).data()}]" if m.index(r, 0).data(HeaderRole) else m.index(r, 0).data()
        for r in range(m.rowCount())
    ]


def test_pages_lazily_through_many_conversations(history: History, qtbot: QtBot) -> None:
    add_conversations(history, {f"chat {i:03}": i / 10 for i in range(500)})
    sidebar = make_sidebar(qtbot, history, page_size=50)
    model = sidebar.model
    assert model.conversation_count() == 50  # one page, though 500 exist
    assert model.rowCount() < 100
    assert sidebar.list.count() == 50

    sidebar.list.scrollToBottom()  # the view asks for the next page when it reaches the end
    qtbot.waitUntil(lambda: model.conversation_count() == 100)
    while model.canFetchMore():
        model.fetchMore()
    assert model.conversation_count() == 500
    ids = model.ids()
    assert len(set(ids)) == 500
    assert [model.conversation_at(model.row_of(c)).title for c in ids[:3]] == ["chat 000", "chat 001", "chat 002"]  # type: ignore[union-attr]


def test_refresh_keeps_the_current_one_and_the_scroll(history: History, qtbot: QtBot) -> None:
    ids = add_conversations(history, {f"chat {i:03}": i / 10 for i in range(300)})
    sidebar = make_sidebar(qtbot, history, page_size=50)
    chosen: list[int] = []
    sidebar.conversationSelected.connect(chosen.append)
    sidebar.set_current(ids[120])  # loads pages until it is there, silently
    assert sidebar.current_id() == ids[120] and chosen == []
    assert sidebar.model.conversation_count() == 150
    sidebar.list.scrollTo(sidebar.list.currentIndex())
    scroll = sidebar.list.verticalScrollBar().value()
    assert scroll > 0

    history.rename_conversation(ids[0], "renamed elsewhere")
    sidebar.refresh()  # reads again down to the bottom of the view, not every page loaded
    assert 120 < sidebar.model.conversation_count() < 150
    assert sidebar.current_id() == ids[120] and chosen == []
    assert sidebar.list.verticalScrollBar().value() == scroll
    assert sidebar.item_for(ids[0]).text() == "renamed elsewhere"  # type: ignore[union-attr]


def test_selecting_a_conversation_made_since_the_last_read(history: History, qtbot: QtBot) -> None:
    add_conversations(history, {f"chat {i:03}": i / 10 for i in range(300)})
    sidebar = make_sidebar(qtbot, history, page_size=50)
    new = history.create_conversation("Just made")  # at the top of the list, which the sidebar has not read again
    chosen: list[int] = []
    sidebar.conversationSelected.connect(chosen.append)
    sidebar.select(new.id)
    assert chosen == [new.id] and sidebar.first_id() == new.id
    assert sidebar.model.conversation_count() < 100  # found by reading the top again, not by paging through all


def test_pinned_first_then_date_headings(history: History, qtbot: QtBot) -> None:
    add_conversations(
        history,
        {"pinned old": 400, "today": 0.1, "yesterday": 1, "this week": 3, "old a": 30, "old b": 90},
        pinned=("pinned old",),
    )
    sidebar = make_sidebar(qtbot, history)
    assert shown(sidebar) == [
        "[Pinned]", "pinned old", "[Today]", "today", "[Yesterday]", "yesterday",
        "[Last 7 days]", "this week", "[Older]", "old a", "old b",
    ]  # fmt: skip
    heading = sidebar.model.index(0, 0)
    assert not heading.flags() & Qt.ItemFlag.ItemIsSelectable and heading.data(IdRole) is None

    # The arrow keys step over the headings.
    sidebar.list.setFocus()
    sidebar.select(sidebar.model.ids()[0])
    qtbot.keyClick(sidebar.list, Qt.Key.Key_Down)
    assert sidebar.list.currentIndex().data() == "today"
    qtbot.keyClick(sidebar.list, Qt.Key.Key_Down)
    assert sidebar.list.currentIndex().data() == "yesterday"
    qtbot.keyClick(sidebar.list, Qt.Key.Key_Up)
    qtbot.keyClick(sidebar.list, Qt.Key.Key_Up)
    assert sidebar.list.currentIndex().data() == "pinned old"


@pytest.mark.qt_log_ignore("This plugin does not support (raise|grabbing the keyboard).*")  # offscreen popups
def test_pin_and_unpin_from_the_context_menu(history: History, qtbot: QtBot) -> None:
    ids = add_conversations(history, {"newer": 0.1, "older": 2})
    sidebar = make_sidebar(qtbot, history)
    pinned: list[tuple[int, bool]] = []
    sidebar.conversationPinned.connect(lambda cid, on: pinned.append((cid, on)))

    run_menu_action(sidebar, ids[1], "Pin to top")
    assert history.get_conversation(ids[1]).pinned
    assert shown(sidebar) == ["[Pinned]", "older", "[Today]", "newer"]
    assert sidebar.current_id() == ids[1]
    run_menu_action(sidebar, ids[1], "Unpin")
    assert shown(sidebar) == ["[Today]", "newer", "[Last 7 days]", "older"]
    assert pinned == [(ids[1], True), (ids[1], False)]


def test_rename_with_f2(history: History, qtbot: QtBot) -> None:
    ids = add_conversations(history, {"first": 0.1, "second": 0.2})
    sidebar = make_sidebar(qtbot, history)
    renamed: list[tuple[str, int, str]] = []
    sidebar.conversationRenamed.connect(lambda cid, title: renamed.append(("done", cid, title)))
    sidebar.renameRequested.connect(lambda cid, title: renamed.append(("asked", cid, title)))
    sidebar.select(ids[1])
    sidebar.list.setFocus()

    qtbot.keyClick(sidebar.list, Qt.Key.Key_F2)
    editor = sidebar.list.findChild(QLineEdit)
    assert editor is not None and editor.text() == "second"
    editor.selectAll()
    qtbot.keyClicks(editor, "  Ginger   cake ")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: history.get_conversation(ids[1]).title == "Ginger cake")  # the delegate commits queued
    assert renamed == [("done", ids[1], "Ginger cake")]  # the sidebar renamed it; nobody else needs to
    assert sidebar.item_for(ids[1]).text() == "Ginger cake"  # type: ignore[union-attr]

    sidebar.rename_current()  # an empty title keeps the old one
    editor = sidebar.list.findChild(QLineEdit)
    assert editor is not None
    editor.clear()
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: sidebar.list.findChild(QLineEdit) is None or not editor.isVisible())
    assert history.get_conversation(ids[1]).title == "Ginger cake" and len(renamed) == 1


def test_delete_moves_to_the_trash_and_undo_restores(history: History, qtbot: QtBot) -> None:
    ids = add_conversations(history, {"a": 0.1, "b": 0.2, "c": 0.3})
    sidebar = make_sidebar(qtbot, history)
    events: list[tuple[str, int]] = []
    sidebar.conversationSelected.connect(lambda cid: events.append(("selected", cid)))
    sidebar.conversationTrashed.connect(lambda cid: events.append(("trashed", cid)))
    sidebar.conversationRestored.connect(lambda cid: events.append(("restored", cid)))
    sidebar.set_current(ids[1])
    sidebar.list.setFocus()

    qtbot.keyClick(sidebar.list, Qt.Key.Key_Delete)  # no question: undo is the safety net
    assert [c.id for c in history.list_conversations()] == [ids[0], ids[2]]
    assert [c.id for c in history.list_trash()] == [ids[1]]
    assert events == [("selected", ids[2]), ("trashed", ids[1])]  # the next one down became current
    assert sidebar.undo_bar.isVisible() and sidebar.undo_bar.label.text() == "Conversation deleted"
    assert sidebar.undo_bar.undo_button.accessibleName() == "Undo delete"

    qtbot.mouseClick(sidebar.undo_bar.undo_button, Qt.MouseButton.LeftButton)
    assert [c.id for c in history.list_conversations()] == ids
    assert not history.list_trash()
    assert sidebar.current_id() == ids[1]
    assert events[2:] == [("selected", ids[1]), ("restored", ids[1])]
    assert not sidebar.undo_bar.isVisible()


def test_several_deletes_undo_together_with_ctrl_z(history: History, qtbot: QtBot) -> None:
    ids = add_conversations(history, {"a": 0.1, "b": 0.2})
    sidebar = make_sidebar(qtbot, history)
    sidebar.set_current(ids[1])
    sidebar.list.setFocus()
    qtbot.keyClick(sidebar.list, Qt.Key.Key_Delete)  # b, the last one: a above it becomes current
    assert sidebar.current_id() == ids[0]
    qtbot.keyClick(sidebar.list, Qt.Key.Key_Delete)
    assert history.count_conversations() == 0 and sidebar.current_id() is None
    assert sidebar.undo_bar.label.text() == "2 conversations deleted"
    assert sidebar.model.rowCount() == 0

    qtbot.keyClick(sidebar.list, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [c.id for c in history.list_conversations()] == ids


def test_the_undo_bar_goes_away_and_the_conversation_stays_in_the_trash(history: History, qtbot: QtBot) -> None:
    ids = add_conversations(history, {"a": 0.1, "b": 0.2})
    sidebar = make_sidebar(qtbot, history)
    sidebar.undo_timeout_ms = 50
    sidebar.select(ids[0])
    sidebar.delete_current()
    assert sidebar.undo_bar.isVisible()
    qtbot.waitUntil(lambda: not sidebar.undo_bar.isVisible(), timeout=2000)
    sidebar.undo_delete()  # nothing left to undo (Ctrl+Z too)
    assert [c.id for c in history.list_trash()] == [ids[0]]
    assert shown(sidebar) == ["[Today]", "b"]


def test_accessible_names(history: History, qtbot: QtBot) -> None:
    sidebar = make_sidebar(qtbot, history)
    assert sidebar.list.accessibleName() == "Conversations"
    assert sidebar.new_button.accessibleName() == "New chat"
    assert sidebar.search_button.accessibleName() == "Search conversations"
    with qtbot.waitSignal(sidebar.searchRequested):
        qtbot.mouseClick(sidebar.search_button, Qt.MouseButton.LeftButton)


@pytest.mark.parametrize("use_history", [False, True])
def test_a_given_list_still_works(history: History, qtbot: QtBot, use_history: bool) -> None:
    """What MainWindow does today: set_conversations with the list it read; select() reports the choice."""
    ids = add_conversations(history, {"one": 0.1, "two": 0.2})
    sidebar = Sidebar(history=history if use_history else None, clock=lambda: NOW)
    qtbot.addWidget(sidebar)
    chosen: list[int] = []
    sidebar.conversationSelected.connect(chosen.append)
    sidebar.set_conversations(history.list_conversations(), ids[1])
    assert shown(sidebar) == ["[Today]", "one", "two"]
    assert sidebar.current_id() == ids[1] and chosen == []
    sidebar.select(ids[0])
    assert chosen == [ids[0]]

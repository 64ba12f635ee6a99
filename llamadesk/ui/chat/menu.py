"""A message's context menu: copy it or a code block, open a link, alternatives, edit, regenerate, receipt."""

from __future__ import annotations

from functools import partial
from typing import cast

from PySide6.QtCore import QModelIndex, QPersistentModelIndex
from PySide6.QtWidgets import QMenu, QWidget

from llamadesk.core.markdown import parse_copy_href
from llamadesk.ui.chat.delegate import ACTION_LABELS, row_actions
from llamadesk.ui.chat.message_actions import MessageActions
from llamadesk.ui.chat.model import ChatRow, RowRole

MENU_LINKS = 10
LINK_CHARS = 60


def message_menu(
    view: MessageActions, index: QModelIndex | QPersistentModelIndex, hit: tuple[str, str] | None = None
) -> QMenu:
    """The menu of the message at `index`; `hit` (what the mouse was on) puts "Copy code" of that block first."""
    row = index.data(RowRole)
    assert isinstance(row, ChatRow)
    menu = QMenu(cast(QWidget, view))  # the chat view, which MessageActions is a part of
    menu.setAccessibleName("Message actions")
    mid = row.message_id
    menu.addAction("Copy message", lambda: view.copy_row(index))
    info = view.delegate.render_info(index)
    under = parse_copy_href(hit[1]) if hit and hit[0] == "link" else None
    for n, block in enumerate(info.code_blocks):
        label = f"Copy code block {n + 1}" + (f" ({block.language})" if block.language else "")
        copy = menu.addAction("Copy code" if n == under else label, partial(view.copy_code, index, n))
        if n == under:
            menu.setActiveAction(copy)
    for url in list(dict.fromkeys(info.links))[:MENU_LINKS]:
        shown = f"{url[:LINK_CHARS]}…" if len(url) > LINK_CHARS else url
        menu.addAction(f"Open link {shown}", partial(view.open_link, url))
    menu.addSeparator()
    if row.alternatives > 1:
        prev = menu.addAction("Previous alternative\tAlt+Left", lambda: view.actionRequested.emit("prev", mid))
        prev.setEnabled(row.alternative > 1)
        nxt = menu.addAction("Next alternative\tAlt+Right", lambda: view.actionRequested.emit("next", mid))
        nxt.setEnabled(row.alternative < row.alternatives)
    for name in row_actions(row, mid in view.delegate.active_ids):
        if name != "copy":
            label = ACTION_LABELS[name] + ("…" if name == "receipt" else "")
            menu.addAction(label, partial(view.actionRequested.emit, name, mid))
    menu.addAction("Branches…", lambda: view.actionRequested.emit("branches", mid))
    return menu

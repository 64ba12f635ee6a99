"""What the chat view does with a message when asked (a click, a key, its menu): footer actions, Copy (the message,
a code block) and links, which open only after you saw their address and agreed."""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QUrl, SignalInstance
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMessageBox, QWidget

from llamadesk.core.markdown import is_safe_link, parse_cite_href, parse_copy_href
from llamadesk.ui.chat.delegate import MessageDelegate
from llamadesk.ui.chat.model import ChatRow, ContentRole, MessageListModel, RowRole

Index = QModelIndex | QPersistentModelIndex


class MessageActions:
    """Part of ChatView (a mixin: the view's model, delegate and signals are declared here for the type checker)."""

    _chat_model: MessageListModel
    delegate: MessageDelegate
    actionRequested: SignalInstance
    linkOpened: SignalInstance

    def activate(self, index: Index, kind: str, value: str) -> None:
        """Runs what was clicked: a footer action, a code block's Copy link, or a link (after asking)."""
        row = index.data(RowRole)
        if not isinstance(row, ChatRow):
            return
        if kind == "action":
            self.run_action(value, row.message_id)
        elif parse_copy_href(value) is not None:
            self.copy_code(index, parse_copy_href(value) or 0)
        elif (source := parse_cite_href(value)) is not None:
            self.actionRequested.emit(f"source:{source}", row.message_id)  # a citation [n]: its source opens
        else:
            self.open_link(value)

    def run_action(self, action: str, message_id: int) -> None:
        if action == "copy":
            i = self._chat_model.find(message_id)
            if i >= 0:
                self.copy_row(self._chat_model.index(i, 0))
        else:
            self.actionRequested.emit(action, message_id)

    def copy_row(self, index: Index) -> None:
        if index.isValid():
            QGuiApplication.clipboard().setText(str(index.data(ContentRole) or ""))

    def copy_code(self, index: Index, block: int) -> None:
        blocks = self.delegate.render_info(index).code_blocks
        if 0 <= block < len(blocks):
            QGuiApplication.clipboard().setText(blocks[block].code)

    def open_link(self, url: str) -> bool:
        """Model output is untrusted: a link opens in the browser only after you saw its address and agreed."""
        if not is_safe_link(url):
            return False
        host = urlsplit(url).hostname or url
        answer = QMessageBox.question(
            cast(QWidget, self),  # a mixin of ChatView
            "Open link",
            f"Open this link in your web browser?\n\n{url}\n\nIt leads to {host}. The model wrote it; check it first.",
            QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer not in (QMessageBox.StandardButton.Open, QMessageBox.StandardButton.Yes):
            return False
        QDesktopServices.openUrl(QUrl(url))
        self.linkOpened.emit(url)
        return True

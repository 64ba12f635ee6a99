"""The rows of one conversation as a Qt list model: role, content, status and the figures of each reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex

RoleRole = Qt.ItemDataRole.UserRole + 1
ContentRole = Qt.ItemDataRole.UserRole + 2
StatusRole = Qt.ItemDataRole.UserRole + 3
FooterRole = Qt.ItemDataRole.UserRole + 4
KeyRole = Qt.ItemDataRole.UserRole + 5  # (message id, revision): changes whenever the row must be laid out anew
MessageIdRole = Qt.ItemDataRole.UserRole + 6
ShownTextRole = Qt.ItemDataRole.UserRole + 7  # what the bubble shows: the content, plus the error of a failed reply


@dataclass
class ChatRow:
    """One message as shown: `stats` is a GenerationStats-like dict (from the receipt) or empty."""

    message_id: int
    role: str
    content: str
    status: str = "complete"
    finish_reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    revision: int = 0


def stats_from_receipt(receipt: dict[str, Any] | None) -> dict[str, Any]:
    """The figures of a reply, whether the receipt nests them under "stats" or holds them at the top."""
    if not receipt:
        return {}
    nested = receipt.get("stats")
    if isinstance(nested, dict):
        return nested
    return {k: receipt[k] for k in ("generated_tokens", "tokens_per_s", "ttft_s", "prompt_tokens") if k in receipt}


def shown_text(row: ChatRow) -> str:
    if row.status == "error" and row.error:
        return f"{row.content}\n\n⚠ {row.error}" if row.content else f"⚠ {row.error}"
    return row.content


def footer_text(row: ChatRow) -> str:
    """The small line under an assistant message: "42 tokens · 78.1 tok/s · stop", "cancelled", ..."""
    if row.role != "assistant":
        return ""
    if row.status == "streaming":
        return "generating…"
    if row.status == "error":
        return "error"
    if row.status == "interrupted":
        return "interrupted"
    parts: list[str] = []
    tokens = row.stats.get("generated_tokens")
    if isinstance(tokens, int):
        parts.append(f"{tokens} token" + ("" if tokens == 1 else "s"))
    speed = row.stats.get("tokens_per_s")
    if isinstance(speed, (int, float)) and speed > 0:
        parts.append(f"{speed:.1f} tok/s")
    if row.status == "cancelled":
        parts.append("cancelled")
    elif row.finish_reason:
        parts.append(str(row.finish_reason))
    return " · ".join(parts)


class MessageListModel(QAbstractListModel):
    """Rows of the selected conversation. Only the streaming row changes while a reply arrives."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[ChatRow] = []

    # --- Qt model interface -------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, ContentRole):
            return row.content
        if role == Qt.ItemDataRole.AccessibleTextRole:
            who = {"user": "You", "assistant": "Assistant", "system": "System"}.get(row.role, row.role)
            footer = footer_text(row)
            return f"{who}: {shown_text(row)}" + (f" ({footer})" if footer else "")
        if role == ShownTextRole:
            return shown_text(row)
        if role == RoleRole:
            return row.role
        if role == StatusRole:
            return row.status
        if role == FooterRole:
            return footer_text(row)
        if role == KeyRole:
            return (row.message_id, row.revision)
        if role == MessageIdRole:
            return row.message_id
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    # --- changes ---------------------------------------------------------------------------------------------
    def row(self, i: int) -> ChatRow:
        return self._rows[i]

    def rows(self) -> list[ChatRow]:
        return list(self._rows)

    def set_rows(self, rows: list[ChatRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def clear(self) -> None:
        self.set_rows([])

    def append_row(self, row: ChatRow) -> None:
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n)
        self._rows.append(row)
        self.endInsertRows()

    def find(self, message_id: int) -> int:
        for i in range(len(self._rows) - 1, -1, -1):
            if self._rows[i].message_id == message_id:
                return i
        return -1

    def append_text(self, message_id: int, text: str) -> None:
        """Adds streamed text to a row and signals that one row only."""
        i = self.find(message_id)
        if i < 0 or not text:
            return
        row = self._rows[i]
        row.content += text
        self._changed(i)

    def update_row(self, message_id: int, **changes: Any) -> None:
        i = self.find(message_id)
        if i < 0:
            return
        row = self._rows[i]
        for name, value in changes.items():
            setattr(row, name, value)
        self._changed(i)

    def _changed(self, i: int) -> None:
        self._rows[i].revision += 1
        index = self.index(i, 0)
        self.dataChanged.emit(index, index, [ContentRole, FooterRole, StatusRole, KeyRole])

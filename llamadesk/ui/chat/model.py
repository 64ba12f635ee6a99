"""The rows of one conversation as a Qt list model: role, content, status and the figures of each reply."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from llamadesk.core.conversation.branch import BranchMessage
from llamadesk.core.conversation.parts import CHANNEL, may_have_reasoning, split_reply
from llamadesk.core.conversation.tool_calls import may_have_tool_calls
from llamadesk.ui.chat.attachments import marker
from llamadesk.ui.chat.tool_blocks import with_tool_blocks

Index = QModelIndex | QPersistentModelIndex

RoleRole = Qt.ItemDataRole.UserRole + 1
ContentRole = Qt.ItemDataRole.UserRole + 2
StatusRole = Qt.ItemDataRole.UserRole + 3
FooterRole = Qt.ItemDataRole.UserRole + 4
KeyRole = Qt.ItemDataRole.UserRole + 5  # (message id, revision): changes whenever the row must be laid out anew
MessageIdRole = Qt.ItemDataRole.UserRole + 6
ShownTextRole = Qt.ItemDataRole.UserRole + 7  # what the bubble shows: the content, plus the error of a failed reply
_REVISIONS = itertools.count(1)
RowRole = Qt.ItemDataRole.UserRole + 8  # the ChatRow itself: one call gives the delegate everything it paints


@dataclass
class ChatRow(BranchMessage):
    """One message of the branch core holds (core/conversation/branch.py), with what only drawing it needs."""

    revision: int = field(default_factory=lambda: next(_REVISIONS))  # unique across rows: a layout cache key
    show_reasoning: bool = False  # a thinking model's reasoning shown (else one line: "Thought for 3.2 s")
    show_tools: bool = False  # its tool calls unfolded: arguments and results (else one line per call)


EXCLUDED_NOTE = "left out of the prompt"
_SHOWN_FIELDS: tuple[str, ...] = ("role", "content", "status", "finish_reason", "stats", "error")
_SHOWN_FIELDS += ("parent_id", "alternative", "alternatives", "excluded", "sources", "tools", "images")


def reasoning_view(row: ChatRow) -> tuple[str, int, int] | None:
    """A reply with reasoning as shown (markdown): a line saying how long the model thought, the reasoning quoted when
    the row shows it, then the answer. With where the answer starts in that text and in the reply's own text (token
    offsets count in the latter). None for a reply without reasoning (a harmony reply without any has no line)."""
    if row.role != "assistant" or not may_have_reasoning(row.content):
        return None
    parts = split_reply(row.content)
    if not parts.has_reasoning:
        if parts.answer_start and CHANNEL in row.content:  # harmony's markers around an answer alone: hide them
            return parts.text, 0, parts.answer_start
        return None
    seconds = row.stats.get("reasoning_s")
    if parts.thinking:
        head = "*Thinking…*" if row.status == "streaming" else "*Stopped while thinking*"
    else:
        head = f"*Thought for {float(seconds):.1f} s*" if isinstance(seconds, (int, float)) else "*Thought*"
    if row.show_reasoning and parts.reasoning:
        quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in parts.reasoning.splitlines())
        head = f"{head}\n\n{quoted}"
    head += "\n\n"
    return head + parts.text, len(head), parts.answer_start


def shown_text(row: ChatRow) -> str:
    view = reasoning_view(row)
    text = row.content if view is None else view[0]
    if row.role == "assistant" and may_have_tool_calls(text):
        text = with_tool_blocks(text, row.tools, unfolded=row.show_tools)
    if row.images:  # one line per attached image below your text (after it: offsets into the text stay true)
        text = "\n".join([text, *(marker(i.width, i.height) for i in row.images)]).lstrip("\n")
    if row.status == "error" and row.error:
        return f"{text}\n\n⚠ {row.error}" if text else f"⚠ {row.error}"
    return text


# How a reply ended, in words (the engines' finish reasons: core/engines/api.py FinishReason).
FINISH_WORDS = {"stop": "finished", "length": "hit the length limit", "cancelled": "stopped by you"}


def footer_text(row: ChatRow) -> str:
    """The small line under an assistant message: "42 tokens · 78.1 tok/s · finished", "stopped by you", ..."""
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
        parts.append(FINISH_WORDS["cancelled"])
    elif row.finish_reason:
        parts.append(FINISH_WORDS.get(str(row.finish_reason), str(row.finish_reason)))
    return " · ".join(parts)


class MessageListModel(QAbstractListModel):
    """Rows of the selected conversation. Only the streaming row changes while a reply arrives."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[ChatRow] = []
        self._index: dict[int, int] = {}

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
            extra = [footer] if footer else []
            if row.alternatives > 1:
                extra.append(f"alternative {row.alternative} of {row.alternatives}")
            if row.excluded:
                extra.append(EXCLUDED_NOTE)
            return f"{who}: {shown_text(row)}" + (f" ({'; '.join(extra)})" if extra else "")
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
        if role == RowRole:
            return row
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

    def set_rows(self, rows: Sequence[ChatRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._index = {r.message_id: i for i, r in enumerate(self._rows)}
        self.endResetModel()

    def clear(self) -> None:
        self.set_rows([])

    def sync_rows(self, rows: Sequence[ChatRow]) -> None:
        """Shows `rows` with the fewest changes: rows kept from the current list are updated in place, the
        tail that differs is removed and the new one inserted, so the rows above are not laid out again."""
        keep = 0
        for old, new in zip(self._rows, rows, strict=False):
            if old.message_id != new.message_id:
                break
            keep += 1
        if keep == 0:
            self.set_rows(rows)
            return
        if keep < len(self._rows):
            self.beginRemoveRows(QModelIndex(), keep, len(self._rows) - 1)
            del self._rows[keep:]
            self.endRemoveRows()
        for i in range(keep):
            old, new = self._rows[i], rows[i]
            if old is new:
                continue
            self._rows[i] = new  # the rows are the branch's messages: the new ones replace the old
            new.show_reasoning, new.show_tools = old.show_reasoning, old.show_tools
            if any(getattr(old, f) != getattr(new, f) for f in _SHOWN_FIELDS):
                self._changed(i)
            else:
                new.revision = old.revision  # the same text: its layout stays cached
        if len(rows) > keep:
            self.beginInsertRows(QModelIndex(), keep, len(rows) - 1)
            self._rows.extend(rows[keep:])
            self.endInsertRows()
        self._index = {r.message_id: i for i, r in enumerate(self._rows)}

    def append_row(self, row: ChatRow) -> None:
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n)
        self._rows.append(row)
        self._index[row.message_id] = n
        self.endInsertRows()

    def find(self, message_id: int) -> int:
        i = self._index.get(message_id, -1)
        return i if 0 <= i < len(self._rows) and self._rows[i].message_id == message_id else -1

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

    def row_of(self, message_id: int) -> ChatRow | None:
        i = self.find(message_id)
        return self._rows[i] if i >= 0 else None

    def row_changed(self, message_id: int) -> None:
        """The branch changed this row's message (its text grew, it ended): draw it again."""
        i = self.find(message_id)
        if i >= 0:
            self._changed(i)

    def marks_changed(self, changed: list[int]) -> None:
        """The branch marked these rows left out of the prompt, or unmarked them: they are drawn dimmed with a note;
        the text's layout stays as it is."""
        if changed:
            top, bottom = self.index(changed[0], 0), self.index(changed[-1], 0)
            self.dataChanged.emit(top, bottom, [RowRole, Qt.ItemDataRole.AccessibleTextRole])

    def _changed(self, i: int) -> None:
        self._rows[i].revision = next(_REVISIONS)
        index = self.index(i, 0)
        self.dataChanged.emit(index, index, [ContentRole, FooterRole, StatusRole, KeyRole, RowRole])

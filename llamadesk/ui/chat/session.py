"""Sending and streaming: history writes, engine requests by id, and the chat rows of the shown conversation."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from llamadesk.core.engine_api import FinishReason, GenerationStats, Message
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history import History, StreamingReply
from llamadesk.core.sampling import SamplingParams
from llamadesk.ui.chat.model import ChatRow, MessageListModel, stats_from_receipt
from llamadesk.ui.workers import EngineHost

log = logging.getLogger(__name__)

NEW_TITLE = "New chat"
TITLE_CHARS = 48


def title_from(text: str) -> str:
    first = " ".join(text.split())
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1] + "…"


@dataclass
class PendingReply:
    """A reply being generated, kept by request id so it lands in its own conversation wherever you look."""

    cid: int
    reply: StreamingReply
    cancel: threading.Event
    deleted: bool = False
    write_error_shown: bool = False


class ChatSession(QObject):
    """Owns the replies in flight. The window tells it which conversation is shown; it never opens dialogs."""

    busyChanged = Signal(bool)
    replyEnded = Signal(int, object)  # conversation id, GenerationStats (None when the reply failed)
    problem = Signal(str, str)  # title, sentence: for a message box
    notice = Signal(str, int)  # status bar text, milliseconds

    def __init__(self, history: History, host: EngineHost, chat_model: MessageListModel, parent: QObject) -> None:
        super().__init__(parent)
        self.history, self.host, self.chat_model = history, host, chat_model
        self.shown_cid: int | None = None
        self.requests: dict[int, PendingReply] = {}
        self.active_request: int | None = None
        worker = host.worker
        worker.tokens.connect(self._on_tokens)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)

    @property
    def is_generating(self) -> bool:
        return self.active_request is not None

    # --- what is shown ---------------------------------------------------------------------------------------
    def show(self, cid: int | None) -> None:
        """Fills the chat model with a conversation; a reply still streaming into it shows its text so far."""
        self.shown_cid = cid
        if cid is None:
            self.chat_model.clear()
            return
        try:
            stored = self.history.messages(cid)
        except LlamaDeskError as exc:
            self.problem.emit("Messages not read", str(exc))
            stored = []
        streaming = {p.reply.message_id: p for p in self.requests.values() if p.cid == cid and not p.deleted}
        rows: list[ChatRow] = []
        for m in stored:
            receipt = m.receipt or {}
            row = ChatRow(m.id, m.role, m.content, m.status, m.finish_reason, stats_from_receipt(receipt))
            row.error = str(receipt.get("error") or "")
            if m.id in streaming:
                row.content, row.status = streaming.pop(m.id).reply.content, "streaming"
            rows.append(row)
        rows += [ChatRow(mid, "assistant", p.reply.content, "streaming") for mid, p in streaming.items()]
        self.chat_model.set_rows(rows)

    def prompt_messages(self, cid: int, system_prompt: str) -> list[Message]:
        """[system prompt] + the conversation's active branch, without replies still streaming or failed."""
        messages: list[Message] = []
        if system_prompt.strip():
            messages.append({"role": "system", "content": system_prompt.strip()})
        for m in self.history.messages(cid):
            if m.content and m.status not in ("streaming", "error") and m.role in ("user", "assistant"):
                messages.append({"role": m.role, "content": m.content})
        return messages

    # --- sending -------------------------------------------------------------------------------------------------
    def start(self, cid: int, text: str, params: SamplingParams, system_prompt: str, model: str | None) -> bool:
        """Saves your message, opens the reply in the history and asks the engine for it. False: nothing sent."""
        if self.is_generating:
            return False
        try:
            self.history.add_message(cid, "user", text)
            if self.history.get_conversation(cid).title == NEW_TITLE:
                self.history.rename_conversation(cid, title_from(text))
            self.history.update_conversation(cid, model=model)
            messages = self.prompt_messages(cid, system_prompt)
            reply = self.history.begin_reply(cid)
        except LlamaDeskError as exc:
            self.problem.emit("Message not sent", str(exc))
            return False
        request_id, cancel = self.host.generate(messages, params)
        self.requests[request_id] = PendingReply(cid, reply, cancel)
        self.active_request = request_id
        if cid == self.shown_cid:
            self.show(cid)
        self.busyChanged.emit(True)
        return True

    def stop(self) -> None:
        if self.active_request is not None:
            self.host.stop(self.active_request)

    def forget_conversation(self, cid: int) -> None:
        """The conversation is being deleted: stop its reply and write nothing more into it."""
        for request_id, pending in self.requests.items():
            if pending.cid == cid:
                pending.deleted = True
                self.host.stop(request_id)

    def abandon_all(self) -> None:
        """At shutdown, after the worker's last signals were delivered: saves what is left as cancelled."""
        for request_id in list(self.requests):
            pending = self._end(request_id)
            if pending is not None:
                self._finish(pending, "cancelled", FinishReason.CANCELLED.value, {})

    # --- engine events -------------------------------------------------------------------------------------------
    def _on_tokens(self, request_id: int, text: str) -> None:
        pending = self.requests.get(request_id)
        if pending is None or pending.deleted:
            return
        try:
            pending.reply.append(text)
        except LlamaDeskError as exc:
            if not pending.write_error_shown:
                pending.write_error_shown = True
                self.notice.emit(str(exc), 10000)
        if pending.cid == self.shown_cid:
            self.chat_model.append_text(pending.reply.message_id, text)

    def _end(self, request_id: int) -> PendingReply | None:
        pending = self.requests.pop(request_id, None)
        if self.active_request == request_id:
            self.active_request = None
            self.busyChanged.emit(False)
        return pending

    def _finish(self, pending: PendingReply, status: str, reason: str, receipt: dict[str, Any]) -> None:
        if pending.deleted or pending.reply.finished:
            return
        try:
            pending.reply.finish(status=status, finish_reason=reason, receipt=receipt)
        except LlamaDeskError as exc:
            self.problem.emit("Reply not saved", str(exc))

    def _on_finished(self, request_id: int, stats: GenerationStats, receipt: dict[str, Any]) -> None:
        pending = self._end(request_id)
        if pending is None:
            return
        reason = stats.finish_reason
        if reason == FinishReason.ERROR:
            message = stats.error or "Generation failed."
            self._finish(pending, "error", reason.value, {**receipt, "error": message})
            self._show_end(pending, status="error", error=message)
            self.notice.emit(message, 15000)
            self.replyEnded.emit(pending.cid, None)
            return
        status = "cancelled" if reason == FinishReason.CANCELLED else "complete"
        self._finish(pending, status, reason.value, receipt)
        self._show_end(pending, status=status, finish_reason=reason.value, stats=stats.to_dict())
        self.replyEnded.emit(pending.cid, stats)

    def _on_failed(self, request_id: int, message: str) -> None:
        pending = self._end(request_id)
        if pending is None:
            return
        self._finish(pending, "error", FinishReason.ERROR.value, {"error": message})
        self._show_end(pending, status="error", error=message)
        self.notice.emit(message, 15000)
        self.replyEnded.emit(pending.cid, None)

    def _show_end(self, pending: PendingReply, **changes: Any) -> None:
        if pending.cid == self.shown_cid and not pending.deleted:
            self.chat_model.update_row(pending.reply.message_id, **changes)

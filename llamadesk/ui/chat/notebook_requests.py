"""The session's notebook requests and token-probability records, kept apart from the chat's (ChatSession mixes
them in): raw-text completion of a document and its Reproduce (core/conversation/notebook.py begins them), and each
reply's token records, live or stored."""

from __future__ import annotations

from typing import Any

from llamadesk.core.conversation import notebook
from llamadesk.core.conversation.lifecycle import shifted
from llamadesk.core.conversation.pending import PendingReply
from llamadesk.core.conversation.plan import Plan
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history import History, StreamingReply
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.token_probs import TokenProb, records_from_receipt


class NotebookRequests:
    """Mixed into ChatSession, which provides the attributes and `_request` declared here."""

    history: History
    requests: dict[int, PendingReply]
    problem: Any  # Signal(str, str)
    _records: dict[int, list[TokenProb]]

    @property
    def is_generating(self) -> bool:
        raise NotImplementedError

    def _request(
        self, cid: int, reply: StreamingReply, plan: Plan, params: SamplingParams, extra: dict[str, Any],
        continued: dict[str, Any] | None = None, mode: str = "chat",
    ) -> PendingReply:  # fmt: skip
        raise NotImplementedError

    def complete(self, cid: int, document: str, params: SamplingParams, model: str | None) -> bool:
        """Notebook mode: saves the document as your message and asks the model to continue it as raw text."""
        if self.is_generating:
            return False
        try:
            reply, plan = notebook.begin_document(self.history, cid, document, model)
        except LlamaDeskError as exc:
            self.problem.emit("Text not sent", str(exc))
            return False
        self._request(cid, reply, plan, params, {}, mode=notebook.COMPLETION)
        return True

    def _complete_again(self, cid: int, document_id: int, params: SamplingParams, *, reproduces: int) -> bool:
        """A new continuation of a notebook document, beside the ones kept (Reproduce of a notebook reply)."""
        try:
            reply, plan = notebook.begin_again(self.history, cid, document_id)
        except LlamaDeskError as exc:
            self.problem.emit("Reply not reproduced", str(exc))
            return False
        self._request(cid, reply, plan, params, {"reproduces": reproduces}, mode=notebook.COMPLETION)
        return True

    def _on_probs(self, request_id: int, records: list[TokenProb]) -> None:
        pending = self.requests.get(request_id)
        if pending is not None:
            pending.records.extend(shifted(records, pending.base_chars))

    def token_records(self, message_id: int) -> list[TokenProb]:
        """The token probabilities of a reply: live while it streams, else from its receipt (read once)."""
        live = next((p.records for p in self.requests.values() if p.reply.message_id == message_id), None)
        if live is not None:
            return live
        if message_id not in self._records:
            try:
                self._records[message_id] = records_from_receipt(self.history.get_message(message_id).receipt)
            except LlamaDeskError:
                return []
        return self._records[message_id]

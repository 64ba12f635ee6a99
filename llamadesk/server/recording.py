"""Server requests in the history, if the user wants: one conversation per request, labelled "server"."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from llamadesk.core.engine_api import Done, FinishReason, Message
from llamadesk.core.errors import HistoryError
from llamadesk.core.history import History, StreamingReply, auto_title
from llamadesk.core.sampling import SamplingParams
from llamadesk.paths import get_paths

SOURCE = "server"  # conversations.source of requests that came through the server (docs/HISTORY_SCHEMA.md)


class ServerRecorder:
    """Writes each request (its messages) and the reply as it streams. One History connection, used by one thread:
    the thread that runs the jobs (the CLI backend's engine thread, or the GUI thread for the bridge)."""

    def __init__(self, history: History, model: str, *, owns_history: bool = False) -> None:
        self.history, self.model, self._owns = history, model, owns_history

    @classmethod
    def open(cls, model: str) -> ServerRecorder:
        return cls(History(get_paths().history_db), model, owns_history=True)

    def begin(self, messages: Sequence[Message], params: SamplingParams) -> StreamingReply:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        first_user = next((m["content"] for m in messages if m["role"] == "user"), "")
        conv = self.history.create_conversation(
            auto_title(first_user) or "Server request",
            model=self.model,
            system_prompt=system,
            sampling=params.to_dict(),
            source=SOURCE,
        )
        for m in messages:
            if m["role"] != "system":
                self.history.add_message(conv.id, m["role"], m["content"])
        return self.history.begin_reply(conv.id)

    def finish(self, reply: StreamingReply, done: Done) -> None:
        reason = done.stats.finish_reason
        status = {FinishReason.CANCELLED: "cancelled", FinishReason.ERROR: "error"}.get(reason, "complete")
        # HistoryError: the user deleted the conversation while it streamed; nothing is left to write.
        with contextlib.suppress(HistoryError):
            reply.finish(status=status, finish_reason=reason.value, receipt={**done.receipt, "source": SOURCE})

    def fail(self, reply: StreamingReply, message: str) -> None:
        with contextlib.suppress(HistoryError):
            reply.finish(status="error", finish_reason=FinishReason.ERROR.value, receipt={"error": message})

    def close(self) -> None:
        if self._owns:
            self.history.close()

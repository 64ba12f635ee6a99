"""Server requests in the history, if the user wants: one conversation per request, labelled "server"."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from llamadesk.core.conversation.lifecycle import ReplyWriter, title_for
from llamadesk.core.conversation.tool_calls import tool_calls
from llamadesk.core.conversation.turn import Turn
from llamadesk.core.engines.api import Done, Message
from llamadesk.core.errors import HistoryError
from llamadesk.core.history import History
from llamadesk.core.sampling import SamplingParams
from llamadesk.paths import get_paths
from llamadesk.server.protocol import response_call_id

SOURCE = "server"  # conversations.source of requests that came through the server (docs/HISTORY_SCHEMA.md)


class ServerRecorder:
    """Writes each request (its messages) and the reply as it streams. One History connection, used by one thread:
    the thread that runs the jobs (the CLI backend's engine thread, or the GUI thread for the bridge)."""

    def __init__(self, history: History, model: str, *, owns_history: bool = False) -> None:
        self.history, self.model, self._owns = history, model, owns_history

    @classmethod
    def open(cls, model: str) -> ServerRecorder:
        return cls(History(get_paths().history_db), model, owns_history=True)

    def begin(self, messages: Sequence[Message], params: SamplingParams) -> Turn:
        """The request's conversation and the turn its reply is written through (the client's messages, as sent)."""
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        first_user = next((m["content"] for m in messages if m["role"] == "user"), "")
        conv = self.history.create_conversation(
            title_for(first_user, fallback="Server request"),
            model=self.model,
            system_prompt=system,
            sampling=params.to_dict(),
            source=SOURCE,
        )
        for m in messages:
            if m["role"] == "tool":  # the history keeps three roles: a result is kept as the Hermes way writes it
                self.history.add_message(conv.id, "user", f"<tool_response>\n{m['content']}\n</tool_response>")
            elif m["role"] != "system":  # an assistant's calls are in its content already (protocol.py)
                self.history.add_message(conv.id, m["role"], m["content"])
        writer = ReplyWriter.begin(self.history, conv.id)
        return Turn(conv.id, writer, list(messages), extra={"source": SOURCE})

    def finish(self, turn: Turn, done: Done, *, request_id: str = "") -> None:
        """The reply's end; the calls it asked for go into the receipt with the ids the client got (the client
        runs them: the server records no result)."""
        if request_id and (calls := [c for c in tool_calls(turn.reply.content) if c.ok]):
            turn.tool_records = [
                {"id": response_call_id(request_id, n), "name": c.name, "arguments": c.arguments,
                 "status": "sent to the client"}
                for n, c in enumerate(calls)
            ]  # fmt: skip
        # HistoryError: the user deleted the conversation while it streamed; nothing is left to write.
        with contextlib.suppress(HistoryError):
            turn.finish(done)

    def fail(self, turn: Turn, message: str) -> None:
        with contextlib.suppress(HistoryError):
            turn.fail(message)

    def close(self) -> None:
        if self._owns:
            self.history.close()

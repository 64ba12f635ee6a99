"""Server requests in the history, if the user wants: one conversation per request, labelled "server"."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from llamadesk.core.conversation.lifecycle import ReplyWriter, title_for
from llamadesk.core.conversation.turn import Turn
from llamadesk.core.engines.api import Done, Message
from llamadesk.core.errors import HistoryError
from llamadesk.core.history import History
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
            if m["role"] != "system":
                self.history.add_message(conv.id, m["role"], m["content"])
        writer = ReplyWriter.begin(self.history, conv.id)
        return Turn(conv.id, writer, list(messages), extra={"source": SOURCE})

    def finish(self, turn: Turn, done: Done) -> None:
        # HistoryError: the user deleted the conversation while it streamed; nothing is left to write.
        with contextlib.suppress(HistoryError):
            turn.finish(done)

    def fail(self, turn: Turn, message: str) -> None:
        with contextlib.suppress(HistoryError):
            turn.fail(message)

    def close(self) -> None:
        if self._owns:
            self.history.close()

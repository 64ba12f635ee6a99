"""A reply being generated: text buffered and written to the history at most every `flush_interval` seconds."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol

from llamadesk.core.errors import HistoryError
from llamadesk.core.history.models import FINISH_STATUSES, Message, dump_json

DEFAULT_FLUSH_INTERVAL_S: Final = 0.5


class ReplyStore(Protocol):
    """What a streaming reply needs of the history (repository.History): a write transaction, and a message read."""

    def write(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def get_message(self, message_id: int) -> Message: ...


class StreamingReply:
    """An assistant reply being generated: text is buffered and saved every `flush_interval` seconds."""

    def __init__(self, history: ReplyStore, message: Message, flush_interval: float) -> None:
        self._history = history
        self.message_id = message.id
        self.conversation_id = message.conversation_id
        self.flush_interval = flush_interval
        self._parts: list[str] = []
        self._length = 0
        self._flushed_chars = 0
        self._last_write = time.monotonic()
        self._finished = False

    @property
    def content(self) -> str:
        """All text appended so far, saved or not."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]  # join once, not on every read
        return self._parts[0] if self._parts else ""

    @property
    def flushed_chars(self) -> int:
        """How many characters of `content` are on disk."""
        return self._flushed_chars

    @property
    def finished(self) -> bool:
        return self._finished

    def append(self, text: str) -> None:
        """Adds text; writes everything so far when `flush_interval` has passed since the last write.

        Checked here rather than with a timer so the core stays thread-free: a crash loses at most the text
        of the last `flush_interval` seconds of appends.
        """
        self._check_open()
        if not text:
            return
        self._parts.append(text)
        self._length += len(text)
        if time.monotonic() - self._last_write >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Writes the text so far now (nothing happens when nothing new was appended)."""
        self._check_open()
        if self._flushed_chars == self._length:
            return
        content = self.content
        try:
            with self._history.write() as db:
                # status is written again so that a reply marked 'interrupted' by another process opening the
                # file while we stream goes back to 'streaming'.
                cur = db.execute(
                    "UPDATE messages SET content = ?, status = 'streaming' WHERE id = ?", (content, self.message_id)
                )
                if cur.rowcount == 0:
                    self._finished = True
                    raise self._deleted()
        finally:
            # Also after a failure (disk full): retry at the next interval, not on every token.
            self._last_write = time.monotonic()
        self._flushed_chars = len(content)

    def finish(
        self,
        *,
        status: str = "complete",
        finish_reason: str | None = None,
        receipt: Mapping[str, Any] | None = None,
        content: str | None = None,
    ) -> Message:
        """Writes the final text (`content` replaces what was appended), status and receipt in one transaction."""
        self._check_open()
        if status not in FINISH_STATUSES:
            choices = ", ".join(FINISH_STATUSES)
            raise HistoryError(f"A reply cannot finish with status {status!r}; use one of {choices}.")
        final = self.content if content is None else content
        now = time.time()
        with self._history.write() as db:
            cur = db.execute(
                "UPDATE messages SET content = ?, status = ?, finish_reason = ?, receipt_json = ? WHERE id = ?",
                (final, status, finish_reason, None if receipt is None else dump_json(receipt), self.message_id),
            )
            if cur.rowcount == 0:
                self._finished = True
                raise self._deleted()
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, self.conversation_id))
        # Only once the write succeeded: after a failure (disk full) the caller may call finish() again.
        self._parts, self._length, self._flushed_chars = [final], len(final), len(final)
        self._finished = True
        return self._history.get_message(self.message_id)

    def _check_open(self) -> None:
        if self._finished:
            raise HistoryError(f"The reply {self.message_id} is already finished; start a new reply to add text.")

    def _deleted(self) -> HistoryError:
        return HistoryError(
            f"Conversation {self.conversation_id} was deleted while its reply was being written; the reply is lost."
        )

"""Asks the loaded model for a better title: a short instruction and the first exchange, at a low temperature."""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

from PySide6.QtCore import QObject, Signal

from llamadesk.core.engines.api import FinishReason, GenerationStats, Message
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history import History
from llamadesk.core.markdown import ANSI_ESCAPE
from llamadesk.core.sampling import SamplingParams
from llamadesk.ui.workers import EngineHost

TITLE_PARAMS = SamplingParams(temperature=0.2, max_tokens=16)
MAX_TITLE_CHARS = 60
EXCHANGE_CHARS = 1500  # of each of the first message and reply: a title needs the gist, not the whole text
INSTRUCTION = (
    "Write a short title (at most six words) for the conversation below. Reply with the title only: no quotes, "
    "no punctuation at the end."
)
_PREFIX = re.compile(r"^\s*(title\s*:\s*)", re.IGNORECASE)
_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs"})
_QUOTES = "\"'“”‘’«»`*#"


def title_prompt(question: str, answer: str) -> list[Message]:
    """The messages that ask for a title of the exchange `question` → `answer`."""
    exchange = f"User: {question.strip()[:EXCHANGE_CHARS]}"
    if answer.strip():
        exchange += f"\n\nAssistant: {answer.strip()[:EXCHANGE_CHARS]}"
    return [{"role": "user", "content": f"{INSTRUCTION}\n\n{exchange}"}]


def clean_title(text: str) -> str:
    """The first non-empty line of a model's answer, without a "Title:" label, quotes, a final full stop or
    invisible characters."""
    # Control and format characters (escapes, bidi overrides) never belong in a title; the line breaks go first.
    text = ANSI_ESCAPE.sub("", text)
    lines = ("".join(ch for ch in part if unicodedata.category(ch) not in _INVISIBLE) for part in text.splitlines())
    line = next((part.strip() for part in lines if part.strip()), "")
    line = _PREFIX.sub("", line).strip().strip(_QUOTES).strip()
    line = line.rstrip(".").strip()
    line = " ".join(line.split())
    return line if len(line) <= MAX_TITLE_CHARS else line[: MAX_TITLE_CHARS - 1].rstrip() + "…"


class TitleSuggester(QObject):
    """One title request at a time through the window's engine; renames the conversation when the model answers."""

    started = Signal(int)  # conversation id
    suggested = Signal(int, str)  # conversation id, the new title (already saved)
    failed = Signal(str)  # a sentence
    ended = Signal()  # after suggested, failed or a cancel

    def __init__(self, history: History, host: EngineHost, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.history, self.host = history, host
        self.request: int | None = None
        self.cid: int | None = None
        self._cancel: threading.Event | None = None
        self._parts: list[str] = []
        worker = host.worker
        worker.tokens.connect(self._on_tokens)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)

    @property
    def is_running(self) -> bool:
        return self.request is not None

    def suggest(self, cid: int, *, model_loaded: bool, busy: bool) -> bool:
        """Asks for a title of `cid`; False (with `failed` said) when it cannot be asked now."""
        if self.is_running:
            self.failed.emit("A title is already being suggested; wait for it or stop it first.")
            return False
        if not model_loaded:
            self.failed.emit("Load a model first; it writes the title.")
            return False
        if busy:
            self.failed.emit("Wait for the reply to end, then ask for a title.")
            return False
        try:
            branch = self.history.messages(cid)
        except LlamaDeskError as exc:
            self.failed.emit(str(exc))
            return False
        question = next((m.content for m in branch if m.role == "user" and m.content.strip()), "")
        if not question:
            self.failed.emit("This conversation has no message yet to make a title from.")
            return False
        answer = next((m.content for m in branch if m.role == "assistant" and m.content.strip()), "")
        self.cid, self._parts = cid, []
        self.request, self._cancel = self.host.generate(title_prompt(question, answer), TITLE_PARAMS)
        self.started.emit(cid)
        return True

    def cancel(self) -> None:
        """Stops the request; the title stays as it was."""
        if self.request is not None:
            self.host.stop(self.request)

    def _on_tokens(self, request_id: int, text: str) -> None:
        if request_id == self.request:
            self._parts.append(text)

    def _end(self) -> tuple[int | None, str]:
        cid, text = self.cid, "".join(self._parts)
        self.request = self.cid = self._cancel = None
        self._parts = []
        return cid, text

    def _on_finished(self, request_id: int, stats: GenerationStats, _receipt: Any) -> None:
        if request_id != self.request:
            return
        cancelled = self._cancel is not None and self._cancel.is_set()
        cid, text = self._end()
        try:
            if stats.finish_reason == FinishReason.ERROR:
                self.failed.emit(stats.error or "The model could not write a title.")
            elif cancelled or stats.finish_reason == FinishReason.CANCELLED:
                pass  # asked for: the title stays
            elif cid is not None:
                self._rename(cid, clean_title(text))
        finally:
            self.ended.emit()

    def _rename(self, cid: int, title: str) -> None:
        if not title:
            self.failed.emit("The model gave no usable title; the old one stays.")
            return
        try:
            self.history.rename_conversation(cid, title)
        except LlamaDeskError as exc:
            self.failed.emit(str(exc))
            return
        self.suggested.emit(cid, title)

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id != self.request:
            return
        self._end()
        self.failed.emit(message)
        self.ended.emit()

    def shutdown(self) -> None:
        self.cancel()

"""The turn's context sources: what is added to your message besides what you typed.

Two kinds. A ContextSource joins the stored message (a text file dropped on the message box, `chat --file`): the
history keeps it, so every later prompt sends it again. A PromptSource joins only the prompt of this reply, after
your message (passages of your documents, core/documents/context.py): it is made for the message within a token
budget, the history keeps your words, and the receipt keeps what was sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llamadesk.core.attachments import attachment_text
from llamadesk.core.conversation.plan import Entry, reply_reserve
from llamadesk.core.errors import LlamaDeskError

PROMPT_SOURCE_SHARE = 0.5  # of the context left after the reply's reserve: the rest stays for the conversation


class ContextTooLarge(LlamaDeskError):
    """A context source is larger than its share of the context."""


@dataclass(frozen=True)
class FileSource:
    """A text file joined to the user's message (dropped on the message box, `llamadesk chat --file`): read when
    made, so a file that cannot be added is said before anything else happens (AttachmentError)."""

    name: str
    block: str  # the file as a block of the message (core/attachments.py)

    @classmethod
    def read(cls, path: Path) -> FileSource:
        return cls(path.name, attachment_text(path))

    def text(self) -> str:
        return self.block

    def receipt(self, text: str) -> dict[str, Any]:
        return {"kind": "file", "name": self.name, "chars": len(text)}


class ContextSource(Protocol):
    """Something the turn adds to the user's message (files today; documents, images, tool results next)."""

    def text(self) -> str: ...

    def receipt(self, text: str) -> dict[str, Any]: ...


def with_sources(message: str, sources: Iterable[ContextSource], budget_tokens: int, tokens_per_char: float
                 ) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """The user's message with each source's text after it, and what the receipt keeps of each. A source larger
    than `budget_tokens` (estimated) is refused with a sentence; 0 means no limit."""
    blocks: list[str] = []
    records: list[dict[str, Any]] = []
    for source in sources:
        text = source.text()
        record = source.receipt(text)
        estimated = int(len(text) * tokens_per_char)
        if budget_tokens and estimated > budget_tokens:
            raise ContextTooLarge(
                f"{record.get('name', 'An attachment')} is about {estimated} tokens, more than the "
                f"{budget_tokens} its share of the context allows; attach a smaller file or load the model with a "
                "larger context."
            )
        blocks.append(text)
        records.append(record)
    if not blocks:
        return message, records
    return (message.rstrip("\n") + "\n" if message.strip() else "") + "".join(blocks), records


class PromptSource(Protocol):
    """Something added to this reply's prompt only, made for your message within a budget of tokens."""

    def block(self, query: str, budget_tokens: int, tokens_per_char: float) -> tuple[str, list[dict[str, Any]]]:
        """The text to add (empty: nothing found) and what the receipt keeps of it."""
        ...


def prompt_source_budget(n_ctx: int, max_tokens: int) -> int:
    """The tokens the prompt sources of one reply may take together."""
    return max(0, int((n_ctx - reply_reserve(n_ctx, max_tokens)) * PROMPT_SOURCE_SHARE))


def prompt_blocks(
    query: str, sources: Sequence[PromptSource], budget_tokens: int, tokens_per_char: float
) -> tuple[str, list[dict[str, Any]]]:
    """The sources' blocks for your message `query` (they share `budget_tokens`, in order) and the receipt's records
    of them. Made before your message is saved: a source that fails (LlamaDeskError) leaves nothing behind."""
    blocks: list[str] = []
    records: list[dict[str, Any]] = []
    left = budget_tokens
    for source in sources:
        text, made = source.block(query, left, tokens_per_char)
        if text:
            blocks.append(text)
            left = max(0, left - int(len(text) * tokens_per_char))
        records.extend(made)
    return "\n\n".join(blocks), records


def with_block(entries: Sequence[Entry], block: str) -> list[Entry]:
    """The entries with `block` after the last one when it is your message (a reply being continued gets none)."""
    if not block or not entries or entries[-1].role != "user":
        return list(entries)
    last = entries[-1]
    return [*entries[:-1], last._replace(content=last.content.rstrip("\n") + "\n\n" + block)]

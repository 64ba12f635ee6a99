"""Text files added to a message (dropped on the message box, or `llamadesk chat --file`): the file's name, then its
text in a fenced block. The fence is longer than any run of backticks inside, so the file cannot end the block early.
Only UTF-8 text of at most ATTACH_MAX_BYTES is taken; anything else gets one sentence (AttachmentError).
"""

from __future__ import annotations

import re
from pathlib import Path

from llamadesk.core.errors import LlamaDeskError

ATTACH_MAX_BYTES = 512 * 1024  # ~130k tokens of English: more than most contexts hold already
_FENCE = re.compile(r"`{3,}")


class AttachmentError(LlamaDeskError):
    """A file that cannot be added to a message; the text is the sentence to show."""


def fence_for(text: str) -> str:
    """A Markdown code fence longer than any run of backticks in `text`: the text cannot end the block early."""
    longest = max((len(run) for run in _FENCE.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def attachment_text(path: Path) -> str:
    """`path` as a block of a message: "name:", then its text fenced, tagged with the file's suffix."""
    try:
        size = path.stat().st_size
        if size > ATTACH_MAX_BYTES:
            raise AttachmentError(
                f"{path.name} is too large to add to a message ({size / 1024:.0f} KB; at most "
                f"{ATTACH_MAX_BYTES // 1024} KB)."
            )
        data = path.read_bytes()
    except OSError as exc:
        raise AttachmentError(f"{path.name} could not be read: {exc.strerror or exc}.") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = ""
    if "\x00" in text or (data and not text):
        raise AttachmentError(f"{path.name} is not UTF-8 text; only text files can be added to a message.")
    fence = fence_for(text)
    language = path.suffix.lstrip(".").lower()
    return f"{path.name}:\n{fence}{language}\n{text.rstrip()}\n{fence}\n"

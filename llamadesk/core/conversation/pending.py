"""A reply in flight in the window: a Turn, plus what the window keeps while it streams."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from llamadesk.core.conversation.turn import Turn
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.token_probs import TokenProb


@dataclass
class PendingReply(Turn):
    """A reply being generated, kept by request id so it lands in its own conversation wherever you look."""

    cancel: threading.Event = field(default_factory=threading.Event)
    deleted: bool = False
    write_error_shown: bool = False
    params: SamplingParams | None = None  # what the reply was asked with (a refit asks again with the same)
    records: list[TokenProb] = field(default_factory=list)  # token probabilities so far, offsets in the whole reply

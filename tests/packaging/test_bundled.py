"""Bundled models: found in a frozen app (or where LLAMADESK_BUNDLED_MODELS says), listed after the user's own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llamadesk import bundled
from llamadesk.core.library import write_sidecar


def _model(folder: Path, name: str, notes: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"GGUF" + b"\0" * 60)
    if notes:
        write_sidecar(path, notes)
    return path


def test_a_source_checkout_has_no_bundled_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bundled.BUNDLED_MODELS_ENV, raising=False)
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert bundled.bundled_models_dir() is None
    assert bundled.bundled_model("anything.gguf") is None


def test_a_frozen_app_finds_its_models_under_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bundled.BUNDLED_MODELS_ENV, raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "_internal"), raising=False)
    assert bundled.bundled_models_dir() is None  # a build without models
    starter = _model(tmp_path / "_internal" / "assets" / "models", "starter.gguf")
    assert bundled.bundled_models_dir() == starter.parent
    assert bundled.bundled_model("starter.gguf") == starter
    assert bundled.is_bundled(starter)


def test_bundled_models_come_after_the_users_and_are_never_duplicated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tmp_path / "opt" / "models"
    _model(shipped, "starter.gguf", {"display_name": "Starter", "license": "Apache-2.0"})
    _model(shipped, "shared.gguf")
    monkeypatch.setenv(bundled.BUNDLED_MODELS_ENV, str(shipped))
    mine = tmp_path / "home" / "models"
    _model(mine, "mine.gguf")
    _model(mine, "shared.gguf")

    listed = bundled.list_models(mine)
    assert [m.path for m in listed] == [mine / "mine.gguf", mine / "shared.gguf", shipped / "starter.gguf"]
    starter = listed[-1]
    assert starter.name == "Starter" and starter.license == "Apache-2.0"
    assert starter.external, "a bundled model is used in place: never deleted by LlamaDesk"
    assert not bundled.is_bundled(mine / "mine.gguf")


def test_the_users_folder_is_not_listed_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "models"
    _model(folder, "a.gguf")
    monkeypatch.setenv(bundled.BUNDLED_MODELS_ENV, str(folder))
    assert [m.path.name for m in bundled.list_models(folder)] == ["a.gguf"]

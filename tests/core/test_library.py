"""The local library: import (copy, move, in place), split models, find, delete, disk usage, other apps' models."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from gguf_factory import write_tiny_llama

from llamadesk.core import library
from llamadesk.core.downloads import DownloadQueue
from llamadesk.core.library import (
    ImportCancelled,
    LibraryError,
    delete_model,
    discover_other_apps,
    disk_usage,
    find_model,
    import_model,
    list_local_models,
    read_sidecar,
)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def source(tmp_path: Path, tiny_model: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return Path(shutil.copy(tiny_model, folder / "my-model-Q8_0.gguf"))


def test_copy_import_keeps_the_original_and_records_the_hash(models: Path, source: Path) -> None:
    seen: list[tuple[int, int]] = []
    model = import_model(source, models, "copy", progress=lambda done, total: seen.append((done, total)))
    assert source.is_file() and model.path == models / "imported" / source.name
    assert model.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert seen[-1] == (source.stat().st_size, source.stat().st_size)
    assert read_sidecar(model.path)["source"].startswith("imported from")
    assert [m.path for m in list_local_models(models)] == [model.path]
    with pytest.raises(LibraryError, match="already in your models folder"):
        import_model(source, models, "copy")


def test_move_import_removes_the_original(models: Path, source: Path) -> None:
    data = source.read_bytes()
    model = import_model(source, models, "move")
    assert not source.exists() and model.path.read_bytes() == data


def test_in_place_import_never_copies_and_rm_only_forgets(models: Path, source: Path) -> None:
    model = import_model(source, models, "in_place")
    assert model.external and model.path == source.resolve()
    assert not (models / "imported").exists()
    listed = list_local_models(models)
    assert [m.path for m in listed] == [source.resolve()] and listed[0].external
    assert delete_model(listed[0], models) == 0
    assert source.is_file() and list_local_models(models) == []


def test_a_broken_file_is_not_imported(models: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 10)
    with pytest.raises(LibraryError, match="cannot be imported"):
        import_model(bad, models, "copy")
    assert list_local_models(models) == []


def test_a_cancelled_copy_leaves_nothing(models: Path, source: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ImportCancelled):
        import_model(source, models, "copy", cancel=cancel)
    assert list_local_models(models) == [] and not any((models / "imported").iterdir())


def test_split_models_are_one_entry_and_deleted_together(models: Path, tiny_model: Path) -> None:
    folder = models / "owner" / "Repo-GGUF"
    folder.mkdir(parents=True)
    parts = [Path(shutil.copy(tiny_model, folder / f"big-Q8_0-0000{i}-of-00003.gguf")) for i in (1, 2, 3)]
    [model] = list_local_models(models)
    assert model.path == parts[0] and model.size_bytes == 3 * tiny_model.stat().st_size
    assert find_model("big-Q8_0-00001-of-00003", models) == model
    assert delete_model(model, models) == 3 * tiny_model.stat().st_size
    assert not any(p.exists() for p in parts) and not (models / "owner").exists()  # empty folders go too


def test_find_by_name_and_ambiguity(models: Path, tiny_model: Path) -> None:
    for sub in ("a", "b"):
        (models / sub).mkdir(parents=True)
        shutil.copy(tiny_model, models / sub / "same.gguf")
    with pytest.raises(LibraryError, match="matches 2 models"):
        find_model("same", models)
    assert find_model(str(models / "a" / "same.gguf"), models).path == models / "a" / "same.gguf"
    with pytest.raises(LibraryError, match="No model named"):
        find_model("nothing", models)


def test_nothing_outside_the_models_folder_is_deleted(models: Path, source: Path) -> None:
    fake = library.LocalModel(source, "x", 1, "", "", None)
    with pytest.raises(LibraryError, match="outside the models folder"):
        delete_model(fake, models)
    assert source.exists()


def test_disk_usage_counts_models_and_partial_downloads(models: Path, source: Path) -> None:
    model = import_model(source, models, "copy")
    queue = DownloadQueue(models)
    queue.state_dir.mkdir(parents=True)
    (queue.state_dir / "abc.part").write_bytes(b"x" * 1000)
    usage = disk_usage(models)
    assert usage.models_bytes == model.size_bytes and usage.partial_bytes == 1000
    assert 0 < usage.free_bytes <= usage.total_bytes
    assert [m.path for m in list_local_models(models)] == [model.path]  # .part files are never listed


def test_models_of_other_apps_are_found(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "home"
    lms = home / ".lmstudio" / "models" / "lmstudio-community" / "X-GGUF"
    lms.mkdir(parents=True)
    shutil.copy(tiny_model, lms / "x-Q4_K_M.gguf")
    gpt4all = home / ".local" / "share" / "nomic.ai" / "GPT4All"
    gpt4all.mkdir(parents=True)
    shutil.copy(tiny_model, gpt4all / "orca-mini.gguf")
    (gpt4all / "not-a-model.gguf").write_bytes(b"nope")
    ollama = home / ".ollama" / "models"
    digest = hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    (ollama / "blobs").mkdir(parents=True)
    shutil.copy(tiny_model, ollama / "blobs" / f"sha256-{digest}")
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "llama3.2" / "1b"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"},
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64},
    ]}))
    snapshot = home / ".cache" / "huggingface" / "hub" / "models--o--r-GGUF" / "snapshots" / "abc"
    blobs = home / ".cache" / "huggingface" / "hub" / "models--o--r-GGUF" / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir(parents=True)
    write_tiny_llama(blobs / "deadbeef", seed=7)
    (snapshot / "r-Q8_0.gguf").symlink_to(blobs / "deadbeef")
    found = {(m.app, m.name): m for m in discover_other_apps(home, env={})}
    assert set(found) == {("LM Studio", "x-Q4_K_M"), ("GPT4All", "orca-mini"), ("Ollama", "llama3.2:1b"),
                          ("Hugging Face cache", "r-Q8_0")}
    assert found[("Ollama", "llama3.2:1b")].path == (ollama / "blobs" / f"sha256-{digest}").resolve()
    assert found[("Hugging Face cache", "r-Q8_0")].path == (blobs / "deadbeef").resolve()
    # and one of them can be used in place, without a copy
    model = import_model(found[("Ollama", "llama3.2:1b")].path, tmp_path / "models", "in_place")
    assert model.external and model.path.parent == (ollama / "blobs").resolve()

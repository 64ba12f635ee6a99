"""Models on disk: the GGUF files in the models folder, with where each came from and its license."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llamadesk.core.errors import LlamaDeskError

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".llamadesk.json"  # next to the model: {"source": ..., "license": ..., "display_name": ...}
EXTERNAL_FILE = ".external.json"  # in the models folder: models used in place, where they are
IMPORTED_DIR = "imported"
_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
ImportMode = Literal["copy", "move", "in_place"]


class LibraryError(LlamaDeskError):
    """A model could not be imported, found or deleted."""


@dataclass(frozen=True)
class LocalModel:
    path: Path
    name: str
    size_bytes: int
    source: str  # where the file came from, in words (a URL or "imported from ...")
    license: str
    sha256: str | None
    external: bool = False  # used in place: LlamaDesk never deletes the file, only forgets it

    @property
    def description(self) -> str:
        parts = [self.name, f"{self.size_bytes / 1e6:.0f} MB"]
        if self.license:
            parts.append(self.license)
        return " · ".join(parts)


def read_sidecar(model_path: Path) -> dict[str, Any]:
    sidecar = model_path.with_name(model_path.name + SIDECAR_SUFFIX)
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("Ignoring unreadable model notes %s: %s", sidecar, exc)
        return {}
    return data if isinstance(data, dict) else {}


def write_sidecar(model_path: Path, data: dict[str, Any]) -> None:
    sidecar = model_path.with_name(model_path.name + SIDECAR_SUFFIX)
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, sidecar)


def split_parts(path: Path) -> list[Path]:
    """Every part of a split model (`-00001-of-00003.gguf`) that exists, first to last; [path] otherwise."""
    match = _SPLIT_RE.search(path.name)
    if not match:
        return [path]
    stem, count = path.name[:match.start()], int(match[2])
    return [p for i in range(1, count + 1) if (p := path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf")).exists()]


def _is_later_part(path: Path) -> bool:
    match = _SPLIT_RE.search(path.name)
    return bool(match) and int(match[1]) != 1  # type: ignore[index]


def describe(path: Path, notes: dict[str, Any] | None = None, *, external: bool = False) -> LocalModel:
    notes = read_sidecar(path) if notes is None else notes
    return LocalModel(
        path=path,
        name=str(notes.get("display_name") or _SPLIT_RE.sub("", path.name).removesuffix(".gguf")),
        size_bytes=sum(p.stat().st_size for p in split_parts(path)),
        source=str(notes.get("source") or "added by you"),
        license=str(notes.get("license") or ""),
        sha256=notes.get("sha256"),
        external=external,
    )


def is_projector(path: Path) -> bool:
    """A vision model's projector (`mmproj-*.gguf`, as published next to the model), not a model to chat with."""
    return path.suffix.lower() == ".gguf" and "mmproj" in path.name.lower()


def projector_for(model: Path) -> Path | None:
    """The projector beside a model in its folder, or None. With several, the one whose name after "mmproj" shares
    the longest start with the model's name (a repo of two models), then the largest file (f16 before q8_0)."""
    try:
        candidates = [p for p in model.parent.iterdir() if p != model and is_projector(p) and p.is_file()]
    except OSError:
        return None

    def rank(p: Path) -> tuple[int, int, str]:
        rest, stem = p.name.lower().split("mmproj", 1)[1].lstrip("-_."), model.name.lower()
        pairs = enumerate(zip(rest, stem, strict=False))
        shared = next((i for i, (a, b) in pairs if a != b), min(len(rest), len(stem)))
        return shared, p.stat().st_size, p.name

    return max(candidates, key=rank) if candidates and not is_projector(model) else None

def list_local_models(models_dir: Path, *, include_external: bool = True) -> list[LocalModel]:
    """Every .gguf under the models folder (a split model once), then the models used in place; sorted by name."""
    if not models_dir.is_dir():
        return []
    found: list[LocalModel] = []
    for path in sorted(models_dir.rglob("*.gguf")):
        try:
            if path.is_file() and not _is_later_part(path):
                found.append(describe(path))
        except OSError as exc:
            log.warning("Skipping %s: %s", path, exc)
    if include_external:
        for path, notes in _read_external(models_dir).items():
            try:
                if path.is_file():
                    found.append(describe(path, notes, external=True))
            except OSError as exc:
                log.warning("Skipping %s: %s", path, exc)
    return sorted(found, key=lambda m: m.name.lower())


# -- models used in place ---------------------------------------------------------------------------------------
_external_lock = threading.Lock()


def _read_external(models_dir: Path) -> dict[Path, dict[str, Any]]:
    try:
        data = json.loads((models_dir / EXTERNAL_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("Ignoring the unreadable list of models used in place: %s", exc)
        return {}
    entries = data.get("models", []) if isinstance(data, dict) else []
    return {Path(e["path"]): e for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)}


def _write_external(models_dir: Path, entries: dict[Path, dict[str, Any]]) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / EXTERNAL_FILE
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": 1, "models": list(entries.values())}, indent=2), encoding="utf-8")
    os.replace(tmp, target)


# -- import -----------------------------------------------------------------------------------------------------
CopyProgress = Callable[[int, int], None]  # (bytes copied, bytes in all)


class ImportCancelled(LibraryError):
    """The user cancelled an import; nothing was added."""


def import_model(
    source: Path, models_dir: Path, mode: ImportMode = "copy", *, progress: CopyProgress | None = None,
    cancel: threading.Event | None = None, license: str = "", display_name: str = "",
) -> LocalModel:
    """Adds a GGUF (every part of a split one): copied or moved into <models>/imported/, or used where it is."""
    from llamadesk.core.errors import ModelLoadError
    from llamadesk.core.gguf_header import validate_model_file

    source = Path(source).expanduser()
    try:
        validate_model_file(source)
    except ModelLoadError as exc:
        raise LibraryError(f"{source.name} cannot be imported: {exc}") from exc
    parts = split_parts(source)
    if mode == "in_place":
        resolved = source.resolve()
        with _external_lock:
            entries = _read_external(models_dir)
            entries[resolved] = {"path": str(resolved), "source": f"used in place from {resolved.parent}",
                                 "license": license, "display_name": display_name or resolved.stem}
            _write_external(models_dir, entries)
        return describe(resolved, entries[resolved], external=True)
    folder = models_dir / IMPORTED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    if any((folder / p.name).exists() for p in parts):
        raise LibraryError(f"{source.name} is already in your models folder; delete that copy first.")
    from llamadesk.core.download_queue import check_free_space

    total = sum(p.stat().st_size for p in parts)
    same_disk = os.stat(source).st_dev == os.stat(folder).st_dev
    if not (mode == "move" and same_disk):
        check_free_space(folder, total, source.name)
    digest = hashlib.sha256()
    done = 0
    for i, part in enumerate(parts):
        target = folder / part.name
        if mode == "move" and same_disk:
            os.replace(part, target)  # instant, and atomic on the same file system
            continue
        done = _copy(part, target, digest if i == 0 else None, done, total, progress, cancel)
        if mode == "move":
            part.unlink()
    notes = {"source": f"imported from {source.parent}", "license": license,
             "display_name": display_name or source.stem}
    if not (mode == "move" and same_disk) and len(parts) == 1:
        notes["sha256"] = digest.hexdigest()
    write_sidecar(folder / source.name, notes)
    return describe(folder / source.name)


def _copy(src: Path, dst: Path, digest: Any, done: int, total: int, progress: CopyProgress | None,
          cancel: threading.Event | None) -> int:
    tmp = dst.with_name(dst.name + ".importing")  # not .gguf: the library never lists a half copy
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(4 << 20):
                if cancel is not None and cancel.is_set():
                    raise ImportCancelled(f"The import of {src.name} was cancelled; nothing was added.")
                fout.write(chunk)
                if digest is not None:
                    digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        shutil.copystat(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return done


# -- find, delete, disk usage -----------------------------------------------------------------------------------
def find_model(query: str, models_dir: Path) -> LocalModel:
    """A model by display name, file name, stem or path; ambiguous or unknown names raise LibraryError."""
    models = list_local_models(models_dir)
    wanted = query.strip()
    as_path = Path(wanted).expanduser()
    exact = [m for m in models if as_path.is_absolute() and m.path.resolve() == as_path.resolve()]
    if not exact:
        exact = [m for m in models if wanted in (m.name, m.path.name, m.path.stem)]
    if not exact:
        exact = [m for m in models if wanted.lower() in (m.name.lower(), m.path.name.lower(), m.path.stem.lower())]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise LibraryError(f"'{wanted}' matches {len(exact)} models; give the file's full path.")
    raise LibraryError(f"No model named '{wanted}'; `llamadesk models list` shows the names.")


def delete_model(model: LocalModel, models_dir: Path) -> int:
    """Deletes a model's files and notes (a model used in place is only forgotten); returns the bytes freed."""
    if model.external:
        with _external_lock:
            entries = _read_external(models_dir)
            entries.pop(model.path, None)
            entries.pop(model.path.resolve(), None)
            _write_external(models_dir, entries)
        return 0
    root = models_dir.resolve()
    if not model.path.resolve().is_relative_to(root):
        raise LibraryError(f"{model.path} is outside the models folder; LlamaDesk does not delete it.")
    freed = 0
    for part in split_parts(model.path):
        freed += part.stat().st_size
        part.unlink()
    model.path.with_name(model.path.name + SIDECAR_SUFFIX).unlink(missing_ok=True)
    folder = model.path.parent
    while folder != root and folder.is_relative_to(root) and not any(folder.iterdir()):
        folder.rmdir()  # leave no empty owner/repo folders behind
        folder = folder.parent
    return freed


@dataclass(frozen=True)
class DiskUsage:
    models_bytes: int  # finished models inside the models folder (not those used in place)
    partial_bytes: int  # unfinished downloads
    free_bytes: int
    total_bytes: int


def disk_usage(models_dir: Path) -> DiskUsage:
    from llamadesk.core.download_queue import DownloadQueue

    models_dir.mkdir(parents=True, exist_ok=True)
    own = sum(m.size_bytes for m in list_local_models(models_dir, include_external=False))
    usage = shutil.disk_usage(models_dir)
    return DiskUsage(own, DownloadQueue(models_dir).partial_bytes(), usage.free, usage.total)


# -- models other apps downloaded -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FoundModel:
    app: str  # "LM Studio", "GPT4All", "Ollama", "Hugging Face cache"
    path: Path  # the real file (Ollama blobs and HF cache links resolved)
    name: str
    size_bytes: int


def _app_folders(home: Path, env: dict[str, str]) -> dict[str, list[Path]]:
    local = Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else home / "AppData" / "Local"
    xdg_data = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else home / ".local" / "share"
    hf_home = Path(env["HF_HOME"]) if env.get("HF_HOME") else home / ".cache" / "huggingface"
    return {
        "LM Studio": [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"],
        "GPT4All": [xdg_data / "nomic.ai" / "GPT4All", home / "Library" / "Application Support" / "nomic.ai" /
                    "GPT4All", local / "nomic.ai" / "GPT4All"],
        "Ollama": [Path(env["OLLAMA_MODELS"])] if env.get("OLLAMA_MODELS") else
                  [home / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")],
        "Hugging Face cache": [Path(env["HF_HUB_CACHE"]) if env.get("HF_HUB_CACHE") else hf_home / "hub"],
    }


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def _ollama_models(root: Path) -> list[tuple[Path, str]]:
    """Ollama keeps weights as content-addressed blobs; its manifests name them (library/<model>/<tag>)."""
    found: list[tuple[Path, str]] = []
    manifests = root / "manifests"
    if not manifests.is_dir():
        return found
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
        except (OSError, ValueError, AttributeError):
            continue
        for layer in layers if isinstance(layers, list) else []:
            digest = layer.get("digest", "") if isinstance(layer, dict) else ""
            if layer.get("mediaType") == "application/vnd.ollama.image.model" and re.fullmatch(
                    r"sha256:[0-9a-f]{64}", digest):
                blob = root / "blobs" / digest.replace(":", "-")
                name = f"{manifest.parent.name}:{manifest.name}"  # e.g. llama3.2:1b
                found.append((blob, name))
    return found


def discover_other_apps(home: Path | None = None, env: dict[str, str] | None = None) -> list[FoundModel]:
    """GGUF models that LM Studio, GPT4All, Ollama or the Hugging Face cache already hold, to use in place."""
    home = home or Path.home()
    env = dict(os.environ) if env is None else env
    found: dict[Path, FoundModel] = {}
    for app, folders in _app_folders(home, env).items():
        for folder in folders:
            if not folder.is_dir():
                continue
            candidates = _ollama_models(folder) if app == "Ollama" else [
                (p, p.stem) for p in sorted(folder.rglob("*.gguf")) if not _is_later_part(p)]
            for path, name in candidates:
                try:
                    real = path.resolve()
                    if real in found or not real.is_file() or not _is_gguf(real):
                        continue
                    found[real] = FoundModel(app, real, name, real.stat().st_size)
                except OSError as exc:
                    log.warning("Skipping %s: %s", path, exc)
    return list(found.values())

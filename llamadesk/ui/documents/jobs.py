"""The Documents pane's background work, as plain functions of core (no Qt): each opens the collections it needs in
the thread that runs it and closes them there (a collection's connection belongs to the thread that opened it), and
gives back frozen snapshots the GUI thread can read without touching a file."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llamadesk.core.documents.extract import is_document
from llamadesk.core.documents.index import (
    PAUSE_POLL_S,
    SKIPPED_FOLDERS,
    IndexReport,
    Pause,
    index_collection,
)
from llamadesk.core.documents.store import (
    Collection,
    Problem,
    create_collection,
    default_folder,
    delete_collection,
    list_collections,
    open_collection,
)
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.library import LocalModel

MAX_PROBLEMS_SHOWN = 500  # a folder of 10,000 unreadable files: the first ones say enough, the count says the rest
WATCH_PER_COLLECTION = 1000  # folders first (they see new, renamed and deleted files), then the files themselves


@dataclass(frozen=True)
class CollectionView:
    """What the pane shows of one collection: its figures, roots and problem files, and the paths to watch."""

    name: str
    files: int
    passages: int
    problems: int
    bytes_on_disk: int
    roots: tuple[Path, ...]
    problem_list: tuple[Problem, ...]
    watch: tuple[str, ...]  # folders (breadth first), then document files, at most WATCH_PER_COLLECTION
    watch_complete: bool  # every folder and file under the roots is in `watch`
    embedding: str = ""  # the embedding model's file name; "": searched by its words alone (BM25)
    embedding_path: str = ""
    vectors: int = 0  # passages with a vector


@dataclass(frozen=True)
class IndexResult:
    """One run: what it did, and the collection as it is after it. `embedded_with`: the model's file name when the
    run was choosing an embedding model (report.embedded passages got a vector), "" for an indexing run."""

    report: IndexReport
    view: CollectionView
    embedded_with: str = ""


@dataclass(frozen=True)
class EmbedProgress:
    """Passages embedded of those that had no vector when the run began."""

    done: int
    total: int


def folder_of(folder: Path | None) -> Path:
    return default_folder() if folder is None else folder


def watch_paths(roots: list[Path], exclude: Path, cap: int = WATCH_PER_COLLECTION) -> tuple[list[str], bool]:
    """The folders under the roots (breadth first, skipping what indexing skips and the collections' own folder),
    then their document files, at most `cap` in all; and whether that is all of them. Stops reading at the cap."""
    excluded = str(exclude.resolve()) if exclude.exists() else str(exclude)
    folders: list[str] = []
    files: list[str] = []
    queue: deque[str] = deque()
    for root in roots:
        if root.is_dir():
            queue.append(str(root))
        elif root.exists():
            files.append(str(root))
    complete = True
    while queue:
        folder = queue.popleft()
        if folder == excluded or folder.startswith(excluded + os.sep):
            continue  # the collection's own file changes with every index: watching it would index forever
        if len(folders) >= cap:
            complete = False
            break
        folders.append(folder)
        try:
            with os.scandir(folder) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    if entry.name.startswith(".") or entry.name in SKIPPED_FOLDERS:
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            queue.append(entry.path)
                        elif len(files) < cap and entry.is_file() and is_document(Path(entry.name)):
                            files.append(entry.path)
                        elif is_document(Path(entry.name)):
                            complete = False
                    except OSError:
                        continue
        except OSError:
            continue  # indexing lists an unreadable folder as a problem
    room = max(cap - len(folders), 0)
    complete = complete and len(files) <= room
    return folders + files[:room], complete


def view_of(collection: Collection, folder: Path) -> CollectionView:
    from llamadesk.core.documents import vectors

    stats = collection.stats()
    roots = collection.roots()
    watch, complete = watch_paths(roots, folder)
    model = collection.embedding_model()
    return CollectionView(
        collection.name, stats.files, stats.passages, stats.problems, stats.bytes_on_disk, tuple(roots),
        tuple(collection.problems()[:MAX_PROBLEMS_SHOWN]), tuple(watch), complete,
        model.name if model else "", model.path if model else "", vectors.count(collection) if model else 0,
    )  # fmt: skip


def read_one(name: str, folder: Path | None) -> CollectionView:
    with open_collection(name, folder) as collection:
        return view_of(collection, folder_of(folder))


def read_all(folder: Path | None) -> list[CollectionView]:
    """Every collection, by name. One that cannot be read is left out (the CLI's `docs list` says why)."""
    views = []
    for info in list_collections(folder):
        try:
            views.append(read_one(info.name, folder))
        except (LlamaDeskError, OSError):  # a broken file must not hide the others
            continue
    return views


def create(name: str, folder: Path | None) -> CollectionView:
    with create_collection(name, folder) as collection:
        return view_of(collection, folder_of(folder))


def add_roots(name: str, paths: list[Path], folder: Path | None) -> CollectionView:
    with open_collection(name, folder) as collection:
        collection.add_roots(paths)
        return view_of(collection, folder_of(folder))


def remove_roots(name: str, paths: list[Path], folder: Path | None) -> CollectionView:
    with open_collection(name, folder) as collection:
        collection.remove_roots(paths)
        return view_of(collection, folder_of(folder))


def delete(name: str, folder: Path | None) -> str:
    delete_collection(name, folder)
    return name


def index(
    name: str, folder: Path | None, progress: Callable[[object], object], cancel: threading.Event, pause: Pause
) -> IndexResult:
    """One incremental run (Progress of the files, then EmbedProgress of the new passages when the collection has an
    embedding model); a cancelled run keeps what it did (report.cancelled)."""
    with open_collection(name, folder) as collection:
        report = index_collection(collection, progress=progress, cancel=cancel, pause=pause,
                                  embed_progress=lambda done, total: progress(EmbedProgress(done, total)))  # fmt: skip
        return IndexResult(report, view_of(collection, folder_of(folder)))


def embedding_models(models_dir: Path | None) -> list[LocalModel]:
    """The models of the models folder (and the bundled ones) that can embed, by their GGUF header alone."""
    from llamadesk.bundled import list_models
    from llamadesk.core.documents.embeddings import model_role
    from llamadesk.paths import get_paths

    return [m for m in list_models(models_dir or get_paths().models) if model_role(m.path) == "embedding"]


def embed(
    name: str, folder: Path | None, model_path: Path, progress: Callable[[object], object], cancel: threading.Event,
    pause: threading.Event,
) -> IndexResult:  # fmt: skip
    """Makes `model_path` the collection's embedding model and embeds its passages that have no vector (all of them
    for another model than before), holding between batches while paused. A model that cannot embed is one sentence
    (EmbeddingError) and changes nothing; a cancelled run keeps the passages embedded so far."""
    from llamadesk.core.documents import vectors
    from llamadesk.core.documents.embeddings import Embedder
    from llamadesk.core.documents.store import EmbeddingModel
    from llamadesk.core.fileinfo import sha256_file

    with open_collection(name, folder) as collection:
        embedder = Embedder(model_path)  # loaded and closed in this thread, the one that uses it
        try:
            model = EmbeddingModel(str(model_path), model_path.name, sha256_file(model_path), embedder.dimension)
            collection.set_embedding_model(model)

            def step(done: int, total: int) -> None:
                progress(EmbedProgress(done, total))
                while pause.is_set() and not cancel.is_set():
                    cancel.wait(PAUSE_POLL_S)  # holds no write lock: each batch is committed before this

            step(0, vectors.pending(collection))
            report = IndexReport(embedded=vectors.embed_missing(collection, embedder, progress=step, cancel=cancel))
        finally:
            embedder.close()
        report.cancelled = cancel.is_set()
        return IndexResult(report, view_of(collection, folder_of(folder)), embedded_with=model.name)


def unembed(name: str, folder: Path | None) -> CollectionView:
    """No embedding model: the collection is searched by its words alone, its vectors deleted."""
    with open_collection(name, folder) as collection:
        collection.set_embedding_model(None)
        return view_of(collection, folder_of(folder))

"""Passage vectors of a collection: float32 BLOBs in its SQLite file (table `vectors`), found by a numpy scan.

Why a brute-force scan and not sqlite-vec. Measured on this project's 2-core machine, 100,000 normalized vectors,
top 50 of 20 queries (median), sqlite-vec 0.1.9 `vec0` (cosine) against numpy `matrix @ query` + argpartition
over the same vectors kept in memory:
    dimension 384: numpy 24 ms per query (the matrix read from SQLite once: 0.57 s, 205 MB file);
                   sqlite-vec 135 ms per query (157 MB file); the same top 50.
    dimension 768: numpy 32 ms (read once: 0.83 s, 411 MB file); sqlite-vec 265 ms (311 MB file); the same top 50.
sqlite-vec is also a loadable extension, and the Python this project builds with (pyenv's) has no
`enable_load_extension`: it could not be loaded at all there. So the vectors stay plain BLOBs, and each thread keeps a
collection's matrix in memory while the vectors do not change ((sequence, count) of the AUTOINCREMENT table).

Embedding is incremental: the passages without a vector get one, in batches, each batch committed (a cancel keeps
what was done). A passage deleted or re-read loses its vector with it (ON DELETE CASCADE), and a vector is written
only if its passage is still there with the same text (another connection may re-index meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llamadesk.core.documents.store import Collection

if TYPE_CHECKING:
    import numpy as np

    from llamadesk.core.documents.embeddings import Embedder

BATCH = 32  # passages per llama.cpp call and per commit


def pending(collection: Collection) -> int:
    """How many passages have no vector yet."""
    rows = collection.read("SELECT COUNT(*) FROM passages p WHERE NOT EXISTS"
                           " (SELECT 1 FROM vectors v WHERE v.passage_id = p.id)")  # fmt: skip
    return int(rows[0][0])  # type: ignore[call-overload]


def count(collection: Collection) -> int:
    return int(collection.read("SELECT COUNT(*) FROM vectors")[0][0])  # type: ignore[call-overload]


def embed_missing(
    collection: Collection,
    embedder: Embedder,
    *,
    progress: Callable[[int, int], object] | None = None,
    cancel: threading.Event | None = None,
    batch: int = BATCH,
) -> int:
    """Embeds every passage that has no vector, in passage order; returns how many got one. `progress(done,
    total)` after each batch; `cancel` is checked between batches (what was committed stays)."""
    total = pending(collection)
    done = 0
    last = -1
    while True:
        if cancel is not None and cancel.is_set():
            break
        rows = collection.read(
            "SELECT p.id, p.text FROM passages p WHERE p.id > ? AND NOT EXISTS"
            " (SELECT 1 FROM vectors v WHERE v.passage_id = p.id) ORDER BY p.id LIMIT ?",
            (last, int(batch)),
        )
        if not rows:
            break
        last = int(rows[-1][0])  # type: ignore[call-overload]
        matrix = embedder.embed_documents([str(r[1]) for r in rows])
        with collection.write() as db:
            for (passage_id, text), vector in zip(rows, matrix, strict=True):
                cur = db.execute(
                    "INSERT OR IGNORE INTO vectors (passage_id, vector) SELECT ?, ?"
                    " WHERE EXISTS (SELECT 1 FROM passages WHERE id = ? AND text = ?)",
                    (passage_id, vector.tobytes(), passage_id, text),
                )
                done += max(cur.rowcount, 0)
        if progress is not None:
            progress(done, max(total, done))
    return done


@dataclass
class _Matrix:
    version: tuple[int, int]
    ids: Any  # np.ndarray[int64]
    vectors: Any  # np.ndarray[float32], (n, dimension)


_local = threading.local()


def _version(collection: Collection) -> tuple[int, int]:
    seq = collection.read("SELECT seq FROM sqlite_sequence WHERE name = 'vectors'")
    return (int(seq[0][0]) if seq else 0, count(collection))  # type: ignore[call-overload]


def _matrix(collection: Collection, dimension: int) -> _Matrix:
    """The collection's vectors as one matrix, kept for this thread until they change."""
    import numpy as np

    cache: dict[str, _Matrix] = getattr(_local, "matrices", None) or {}
    _local.matrices = cache
    key = str(collection.path)
    version = _version(collection)
    cached = cache.get(key)
    if cached is not None and cached.version == version and cached.vectors.shape[1:] == (dimension,):
        return cached
    width = dimension * 4
    rows = [r for r in collection.read("SELECT passage_id, vector FROM vectors") if len(r[1]) == width]  # type: ignore[arg-type]
    ids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))  # type: ignore[call-overload]
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dimension)  # type: ignore[misc]
    cache[key] = cached = _Matrix(version, ids, vectors)
    return cached


def nearest(collection: Collection, query: np.ndarray, limit: int) -> list[tuple[int, float]]:
    """The `limit` passages whose vectors are closest to the (normalized) query: (passage id, cosine), best first."""
    import numpy as np

    matrix = _matrix(collection, int(query.shape[0]))
    n = len(matrix.ids)
    if n == 0 or limit <= 0:
        return []
    scores = matrix.vectors @ query.astype(np.float32, copy=False)
    k = min(limit, n)
    top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    top = top[np.lexsort((matrix.ids[top], -scores[top]))]
    return [(int(matrix.ids[i]), float(scores[i])) for i in top]


def forget_cached() -> None:
    """Drops the calling thread's matrices (tests; a thread that ends)."""
    _local.matrices = {}

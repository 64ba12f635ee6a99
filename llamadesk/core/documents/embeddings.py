"""Embeddings of passages and queries from a GGUF embedding model, in process through llama.cpp.

An Embedder loads the model with `Llama(embedding=True)` and the pooling the GGUF declares (mean, CLS or last
token: `{arch}.pooling_type`), and turns a batch of texts into L2-normalized float32 vectors of the model's
dimension; `embed_query` and `embed_documents` write the model's task prefixes first when it needs them
(prefixes.py: nomic's "search_query: ", EmbeddingGemma's, BGE's query instruction). A GGUF that declares no pooling
is a chat model, one that declares `rank` a reranker: neither is an embedding model, and saying so in one sentence
beats filling a collection with poor vectors.

Like every Llama, an Embedder belongs to the thread that made it. `cached_embedder` keeps the last few for the
calling thread only (loading a model per query costs far more than the query), so the window's search thread
(ui/chat/session.py) and the CLI's main thread never share one.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llamadesk.core.errors import LlamaDeskError

if TYPE_CHECKING:
    import numpy as np

    from llamadesk.core.documents.prefixes import Prefixes

# enum llama_pooling_type
POOLING_UNSPECIFIED, POOLING_NONE, POOLING_MEAN, POOLING_CLS, POOLING_LAST, POOLING_RANK = -1, 0, 1, 2, 3, 4
POOLING_NAMES = {POOLING_NONE: "none", POOLING_MEAN: "mean", POOLING_CLS: "cls", POOLING_LAST: "last",
                 POOLING_RANK: "rank"}  # fmt: skip
MAX_CONTEXT = 2048  # a passage is ~1,000 characters (chunks.py): 2,048 tokens hold several of them per batch
MAX_CACHED = 2  # embedders kept per thread (a collection's model, and another collection's)
# Encoder-only architectures of llama.cpp: embedding (or reranking) models even when a GGUF declares no pooling.
ENCODER_ARCHITECTURES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3",
                                   "neo-bert", "modern-bert"})  # fmt: skip


class EmbeddingError(LlamaDeskError):
    """An embedding model could not be used; the text is one sentence."""


class Embedder:
    """One embedding model loaded in process, for the thread that made it."""

    def __init__(self, path: Path | str, *, pooling: int | None = None, n_threads: int | None = None,
                 n_gpu_layers: int = 0) -> None:  # fmt: skip
        """`pooling`: None takes the GGUF's own (and refuses a model that declares none); a POOLING_* value
        overrides it (the bench uses a chat model with mean pooling when no embedding model is at hand)."""
        self.path = Path(path)
        self.name = self.path.name
        self.owner = threading.get_ident()
        declared, n_ctx_train, self.prefixes = _declared(self.path)
        if pooling is None:
            if declared in (None, POOLING_NONE):
                raise EmbeddingError(f"{self.name} is not an embedding model (it declares no pooling, as a chat model "
                                     "does); choose one such as bge-small-en or nomic-embed-text.")  # fmt: skip
            if declared == POOLING_RANK:
                raise EmbeddingError(f"{self.name} is a reranking model, not an embedding model; choose one such as "
                                     "bge-small-en or nomic-embed-text.")  # fmt: skip
        self.pooling = declared if pooling is None else pooling
        n_ctx = min(n_ctx_train or 512, MAX_CONTEXT)
        self._llm = _load(self.path, n_ctx, pooling, n_threads, n_gpu_layers)
        # Loaded verbose (see _load); from here on quiet, or every embed() resets and prints llama.cpp's timings.
        self._llm.verbose = False
        self.dimension = int(self._llm.n_embd())
        self.context = n_ctx

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalized float32 row per text, (len(texts), dimension); a text longer than the context is cut."""
        import numpy as np

        if threading.get_ident() != self.owner:
            raise RuntimeError("an Embedder is used only by the thread that made it")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        try:
            rows = self._llm.embed([t if t.strip() else " " for t in texts], normalize=False, truncate=True)
        except (RuntimeError, ValueError) as exc:
            raise EmbeddingError(f"{self.name} could not embed the passages ({exc}).") from exc
        vectors = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.maximum(norms, 1e-12)
        return vectors

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Passages' vectors, each passage after the model's document prefix (prefixes.py) when it needs one."""
        prefix = self.prefixes.document
        return self.embed([prefix + t for t in texts] if prefix else texts)

    def embed_query(self, query: str) -> np.ndarray:
        """A search query's vector, after the model's query prefix (prefixes.py) when it needs one."""
        return self.embed([self.prefixes.query + query])[0]

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


_roles: dict[tuple[str, int, int], str] = {}
_roles_lock = threading.Lock()


def model_role(path: Path | str) -> str:
    """Whether a GGUF is an "embedding", "reranking" or "chat" model, from its header alone (no model loaded;
    remembered while the file's size and mtime stay): a declared `{arch}.pooling_type` of mean, CLS or last, or an
    encoder architecture (bert, nomic-bert, jina-bert…), is an embedding model; rank pooling a reranker; anything
    else, and a file whose header cannot be read (loading it says why in one sentence), is "chat"."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return "chat"
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _roles_lock:
        role = _roles.get(key)
    if role is None:
        from llamadesk.core.gguf_header import read_header

        try:
            header = read_header(path)
        except LlamaDeskError:
            return "chat"
        pooling = header.metadata.get(f"{header.architecture}.pooling_type")
        if pooling == POOLING_RANK:
            role = "reranking"
        elif pooling in (POOLING_MEAN, POOLING_CLS, POOLING_LAST) or header.architecture in ENCODER_ARCHITECTURES:
            role = "embedding"
        else:
            role = "chat"
        with _roles_lock:
            _roles[key] = role
    return role


def _declared(path: Path) -> tuple[int | None, int | None, Prefixes]:
    """The pooling the GGUF declares, its training context and the prefixes it wants before queries and passages; a
    file that is not a readable GGUF is one sentence."""
    from llamadesk.core.documents.prefixes import prefixes_for
    from llamadesk.core.gguf_header import validate_model_file

    try:
        header = validate_model_file(path)
    except LlamaDeskError as exc:
        raise EmbeddingError(str(exc)) from exc
    pooling = header.metadata.get(f"{header.architecture}.pooling_type")
    prefixes = prefixes_for(path, header.architecture, header.name)
    return (int(pooling) if isinstance(pooling, int) else None), header.n_ctx_train, prefixes


def _load(path: Path, n_ctx: int, pooling: int | None, n_threads: int | None, n_gpu_layers: int) -> Any:
    import llama_cpp

    from llamadesk.core import llama_log

    llama_log.install()
    mark = llama_log.mark()
    captured = io.StringIO()
    try:
        # verbose=True: Llama() must not dup2() the whole process's stdout/stderr away (NOTES-llama-cpp.md); the
        # lines it prints are dropped, llama.cpp's own log goes through llama_log.
        with contextlib.redirect_stderr(captured):
            return llama_cpp.Llama(
                model_path=str(path),
                embedding=True,
                n_ctx=n_ctx,
                n_batch=n_ctx,
                n_ubatch=n_ctx,  # an encoder (BERT) needs a whole passage in one micro-batch
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=n_gpu_layers,
                pooling_type=POOLING_UNSPECIFIED if pooling is None else pooling,
                verbose=True,
            )
    except (ValueError, RuntimeError, OSError) as exc:
        reason = (llama_log.reason_since(mark) or str(exc)).rstrip(".")
        raise EmbeddingError(f"{path.name} could not be loaded as an embedding model ({reason}).") from exc


_local = threading.local()


def cached_embedder(path: Path | str) -> Embedder:
    """The calling thread's Embedder for this model file, loaded once (again when the file changed)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise EmbeddingError(f"The embedding model {path} is gone ({exc.strerror or exc}); choose it again with "
                             "`llamadesk docs embed NAME --model PATH`.") from exc  # fmt: skip
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    cache: OrderedDict[tuple[str, int, int], Embedder] = getattr(_local, "embedders", None) or OrderedDict()
    _local.embedders = cache
    embedder = cache.get(key)
    if embedder is None:
        embedder = cache[key] = Embedder(path)
        while len(cache) > MAX_CACHED:
            cache.popitem(last=False)[1].close()
    cache.move_to_end(key)
    return embedder


def release_cached() -> None:
    """Closes the calling thread's cached embedders (a worker thread that ends, the app quitting, tests)."""
    cache: OrderedDict[Any, Embedder] | None = getattr(_local, "embedders", None)
    while cache:
        cache.popitem()[1].close()

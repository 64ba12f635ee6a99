"""An importance matrix, computed as llama.cpp's `llama-imatrix` does: the text is evaluated in windows of n_ctx
tokens, and for every weight matrix of the layers (blk.*) the mean of the squared input activations of each column is
accumulated from its matrix multiplications. llama_model_quantize then weighs its rounding errors with it, which the
IQ1/IQ2 types require and every other type benefits from.

Hand-written because the wheel has no binding for llama-imatrix: the activations are read in llama.cpp's graph
evaluation callback (cb_eval), through a ctypes copy of ggml's `struct ggml_tensor` (ggml.h of the pinned wheel).
Runs in the quantizer's child process (core/quantize.py): dense models only; a mixture of experts is refused."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError

N_CTX = 512  # llama-imatrix's default window
MAX_CHUNKS = 32  # the texts that ship with the app hold fewer; a longer text is cut (minutes per chunk on big models)
MIN_TOKENS_PER_CALL = 16  # llama-imatrix ignores smaller multiplications (single-token decodes)
GGML_TYPE_F32 = 0
GGML_OP_MUL_MAT = 29  # enum ggml_op in ggml.h (0.3.36's llama.cpp)
GGML_OP_MUL_MAT_ID = 30
GGML_MAX_DIMS, GGML_MAX_SRC, GGML_MAX_NAME = 4, 10, 64


class ImatrixError(LlamaDeskError):
    """The importance matrix could not be computed."""


class Tensor(ctypes.Structure):
    """ggml.h's struct ggml_tensor, field for field (read only, never allocated here)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def _tensor(address: int | None) -> Tensor | None:
    return Tensor.from_address(address) if address else None


class Collector:
    """Sums of squared activations per weight matrix column, and how many rows (tokens) went into them."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.mixture_of_experts = False
        self.error: BaseException | None = None

    def wants(self, node: Tensor) -> bool:
        if node.op == GGML_OP_MUL_MAT_ID:
            self.mixture_of_experts = True
            return False
        if node.op != GGML_OP_MUL_MAT:
            return False
        w, x = _tensor(node.src[0]), _tensor(node.src[1])
        if w is None or x is None or x.type != GGML_TYPE_F32 or x.ne[1] < MIN_TOKENS_PER_CALL:
            return False
        return _weight_name(w).startswith("blk.")

    def collect(self, node: Tensor) -> None:
        import numpy as np

        w, x = _tensor(node.src[0]), _tensor(node.src[1])
        assert w is not None and x is not None and x.data
        name = _weight_name(w)
        n_mat = int(w.ne[2]) * int(w.ne[3])
        ne0 = int(x.ne[0])
        # the activations: ne0 floats per row, rows x.ne[1] × planes x.ne[2] × x.ne[3], strides nb[1..3] in bytes
        span = (int(x.ne[3]) - 1) * x.nb[3] + (int(x.ne[2]) - 1) * x.nb[2] + (int(x.ne[1]) - 1) * x.nb[1] + ne0 * 4
        raw = np.ctypeslib.as_array((ctypes.c_uint8 * span).from_address(x.data))
        view = np.lib.stride_tricks.as_strided(
            raw.view(np.float32), shape=(int(x.ne[3]), int(x.ne[2]), int(x.ne[1]), ne0),
            strides=(x.nb[3], x.nb[2], x.nb[1], 4), writeable=False,
        )  # fmt: skip
        sums = self.sums.get(name)
        if sums is None:
            sums = self.sums[name] = np.zeros((n_mat, ne0), dtype=np.float64)
        for i3 in range(view.shape[0]):
            for i2 in range(view.shape[1]):
                mat = (i3 % int(w.ne[3])) * int(w.ne[2]) + (i2 % int(w.ne[2]))
                rows = view[i3, i2].astype(np.float64)
                sums[mat] += (rows * rows).sum(axis=0)
        self.counts[name] = self.counts.get(name, 0) + int(x.ne[1]) * int(x.ne[2]) * int(x.ne[3]) // n_mat

    def callback(self) -> Any:
        import llama_cpp

        def on_node(address: int, ask: bool, _user: Any) -> bool:
            try:
                node = Tensor.from_address(address)
                if ask:
                    return self.wants(node)
                self.collect(node)
            except Exception as exc:  # an exception must not cross into C: kept, raised after the decode
                self.error = exc
                return False
            return True

        return llama_cpp.ggml_backend_sched_eval_callback(on_node)

    def matrix(self) -> dict[str, Any]:
        """Name → float32 means (sums / counts), as llama-quantize hands them to llama_model_quantize."""
        import numpy as np

        out = {}
        for name, sums in self.sums.items():
            count = self.counts.get(name, 0)
            if count > 0:
                means = (sums / count).astype(np.float32).reshape(-1)
                if not np.all(np.isfinite(means)):
                    raise ImatrixError(f"The importance matrix of {name} holds non-finite values; the model's "
                                       "weights may be damaged.")  # fmt: skip
                out[name] = means
        return out


def _weight_name(t: Tensor) -> str:
    """The weight's name, without the `#...#` decoration llama.cpp gives views (llama-imatrix's filter)."""
    name = t.name.decode("utf-8", "replace")
    if "#" in name:
        part = name.split("#", 2)
        return part[1] if len(part) > 1 else name
    return name


def compute(
    model_path: Path, text: str, *, n_ctx: int = N_CTX, threads: int = 0, max_chunks: int = MAX_CHUNKS,
    progress: Callable[[int, int], None] | None = None, cancel: threading.Event | None = None,
) -> tuple[dict[str, Any], int]:
    """(the importance matrix, the number of windows evaluated) for the model at `model_path` on `text`."""
    import llama_cpp

    collector = Collector()
    callback = collector.callback()  # kept alive for the context's whole life
    model_params = llama_cpp.llama_model_default_params()
    model_params.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), model_params)
    if not model:
        raise ImatrixError(f"{Path(model_path).name} could not be loaded to compute an importance matrix.")
    ctx = batch = None
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        data = text.encode("utf-8")
        buffer = (llama_cpp.llama_token * (len(data) + 16))()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buffer, len(buffer), True, False)
        tokens = list(buffer[: max(n, 0)])
        train = int(llama_cpp.llama_model_n_ctx_train(model)) or n_ctx
        n_ctx = min(n_ctx, train)
        n_chunks = min(len(tokens) // n_ctx, max_chunks)
        if n_chunks < 1:
            raise ImatrixError(f"The text holds {len(tokens)} tokens, fewer than one window of {n_ctx}; give a "
                               "longer text for the importance matrix.")  # fmt: skip
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = ctx_params.n_batch = n_ctx
        ctx_params.n_ubatch = min(512, n_ctx)
        ctx_params.n_seq_max = 1
        if threads > 0:
            ctx_params.n_threads = ctx_params.n_threads_batch = threads
        ctx_params.cb_eval = callback
        ctx = llama_cpp.llama_init_from_model(model, ctx_params)
        if not ctx:
            raise ImatrixError(f"llama.cpp could not make a context of {n_ctx} tokens for {Path(model_path).name}.")
        batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
        bos = int(llama_cpp.llama_vocab_bos(vocab)) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
        for c in range(n_chunks):
            if cancel is not None and cancel.is_set():
                raise ImatrixError("Computing the importance matrix was stopped.")
            if progress is not None:
                progress(c, n_chunks)
            chunk = tokens[c * n_ctx : (c + 1) * n_ctx]
            if bos is not None:
                chunk[0] = bos  # each window starts as the text does, as llama-imatrix does
            for i, token in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, i, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = True  # every row through the last layer too, as llama-imatrix (it scores them)
            batch.n_tokens = len(chunk)
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            code = llama_cpp.llama_decode(ctx, batch)
            if collector.error is not None:
                raise ImatrixError(f"Reading the activations failed ({collector.error}).") from collector.error
            if code != 0:
                raise ImatrixError(f"llama.cpp could not evaluate the text (llama_decode returned {code}).")
        if collector.mixture_of_experts:
            raise ImatrixError("This model is a mixture of experts; LlamaDesk computes importance matrices for "
                               "dense models only, so quantize it without one or use llama-imatrix.")  # fmt: skip
        if progress is not None:
            progress(n_chunks, n_chunks)
        matrix = collector.matrix()
        if not matrix:
            raise ImatrixError(f"No weight of {Path(model_path).name} was seen during the evaluation.")
        return matrix, n_chunks
    finally:
        if batch is not None:
            llama_cpp.llama_batch_free(batch)
        if ctx:
            llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)


def as_params(matrix: dict[str, Any]) -> tuple[Any, list[Any]]:
    """The C array llama_model_quantize_params.imatrix points to (a NULL name ends it), and what keeps it alive."""
    import llama_cpp
    import numpy as np

    keep: list[Any] = []
    entries = (llama_cpp.llama_model_imatrix_data * (len(matrix) + 1))()
    for i, (name, values) in enumerate(sorted(matrix.items())):
        arr = np.ascontiguousarray(values, dtype=np.float32)
        encoded = name.encode()
        keep += [arr, encoded]
        entries[i].name = encoded
        entries[i].data = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[i].size = arr.size
    entries[len(matrix)].name = None
    keep.append(entries)
    return entries, keep

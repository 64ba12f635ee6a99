"""Will a model fit: weights + KV cache + compute buffer against free RAM and VRAM, with the GPU-layer split."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from llamadesk.core.gguf_header import GGUFHeader

MiB = 1 << 20
# Bytes per element of the KV cache types llama.cpp accepts (block size / bytes per block for quantized ones).
KV_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
    "q4_1": 20 / 32, "q4_0": 18 / 32, "iq4_nl": 18 / 32,
}
CONTEXT_STEP = 256  # llama.cpp pads the KV cache to 256 cells
MIN_CONTEXT = 512
DEFAULT_UBATCH = 512
# Room left to the OS, the app and the GPU driver: a model that uses the very last byte is swapped or fails.
RAM_RESERVE = 512 * MiB
VRAM_RESERVE = 384 * MiB  # the CUDA/Vulkan context and scratch buffers outside the compute graph
_LAYER_RE = re.compile(r"^blk\.(\d+)\.")


class Verdict(str, Enum):
    FITS = "fits"
    PARTIAL = "partial"  # fits with some layers on the GPU and the rest on the CPU
    TOO_LARGE = "too_large"


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model: read from a GGUF header or given by the catalog."""

    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    n_vocab: int
    n_ctx_train: int
    layer_bytes: tuple[int, ...]  # weights of each repeating block
    input_bytes: int  # token embeddings and everything outside the blocks but the output layer: stays on the CPU
    output_bytes: int  # the output layer: on the GPU only when every block is

    @property
    def weights_bytes(self) -> int:
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes

    @classmethod
    def from_header(cls, header: GGUFHeader, total_weights: int | None = None) -> ModelShape:
        """From a header; `total_weights` (all parts of a split model) spreads the parts not seen over the blocks."""
        n_layers = header.n_layers or 1
        per_layer = [0] * n_layers
        input_bytes = output_bytes = embd_bytes = 0
        for t in header.tensors:
            match = _LAYER_RE.match(t.name)
            if match and int(match[1]) < n_layers:
                per_layer[int(match[1])] += t.n_bytes
            elif t.name.startswith("output."):
                output_bytes += t.n_bytes
            else:
                input_bytes += t.n_bytes
                if t.name == "token_embd.weight":
                    embd_bytes = t.n_bytes
        if header.tensor("output.weight") is None:  # tied embeddings: llama.cpp copies them to the output's device
            output_bytes += embd_bytes
        seen = sum(per_layer) + input_bytes + output_bytes
        if total_weights is not None and total_weights > seen:
            extra, rest = divmod(total_weights - seen, n_layers)
            per_layer = [b + extra + (1 if i < rest else 0) for i, b in enumerate(per_layer)]
        n_embd = header.n_embd or 0
        n_head = header.n_head or 1
        return cls(
            n_layers=n_layers, n_embd=n_embd, n_head=n_head, n_head_kv=header.n_head_kv or n_head,
            head_dim_k=header.head_dim_k or 0, head_dim_v=header.head_dim_v or 0, n_vocab=header.n_vocab or 0,
            n_ctx_train=header.n_ctx_train or 0, layer_bytes=tuple(per_layer), input_bytes=input_bytes,
            output_bytes=output_bytes,
        )

    @classmethod
    def approximate(
        cls, *, n_layers: int, n_embd: int, n_head: int, n_head_kv: int, head_dim: int, n_vocab: int,
        n_ctx_train: int, weights_bytes: int,
    ) -> ModelShape:
        """For a file not yet read (catalog entries): the embeddings' share is guessed from the vocabulary."""
        params = 2 * n_vocab * n_embd + 12 * n_layers * n_embd * n_embd  # the classic transformer count
        embd = weights_bytes * n_vocab * n_embd // max(1, params)
        layer, rest = divmod(max(0, weights_bytes - 2 * embd), n_layers)
        return cls(n_layers, n_embd, n_head, n_head_kv, head_dim, head_dim, n_vocab, n_ctx_train,
                   tuple([layer] * n_layers), embd + rest, embd)


def kv_bytes_per_token_layer(shape: ModelShape, type_k: str = "f16", type_v: str = "f16") -> float:
    return shape.n_head_kv * (shape.head_dim_k * kv_type_bytes(type_k) + shape.head_dim_v * kv_type_bytes(type_v))


def kv_type_bytes(type_name: str) -> float:
    try:
        return KV_TYPE_BYTES[type_name.lower()]
    except KeyError:
        raise ValueError(f"Unknown KV cache type {type_name!r}; use one of {', '.join(KV_TYPE_BYTES)}.") from None


def kv_cache_bytes(shape: ModelShape, n_ctx: int, type_k: str = "f16", type_v: str = "f16") -> int:
    """n_layer · n_ctx · n_head_kv · (head_dim_k · b(type_k) + head_dim_v · b(type_v))."""
    return int(shape.n_layers * n_ctx * kv_bytes_per_token_layer(shape, type_k, type_v))


def compute_buffer_bytes(shape: ModelShape, n_ctx: int, *, n_ubatch: int = DEFAULT_UBATCH,
                         flash_attn: bool = False) -> int:
    """llama.cpp's graph scratch for one micro-batch: logits, a few activations, and (without flash
    attention) the f32 attention scores of one layer. An upper-side estimate, not the allocator's figure."""
    logits = 4 * n_ubatch * shape.n_vocab
    activations = 4 * n_ubatch * shape.n_embd * 8
    scores = 0 if flash_attn else 4 * n_ctx * n_ubatch * shape.n_head
    return logits + activations + scores


@dataclass(frozen=True)
class FitEstimate:
    verdict: Verdict
    n_ctx: int
    n_layers: int
    gpu_layers: int  # repeating blocks on the GPU, 0 … n_layers
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    ram_needed: int
    vram_needed: int
    max_ctx: int  # the largest context (a multiple of 256, at most the trained one) that fits at all; 0 if none
    output_on_gpu: bool = False  # the output layer, the first one llama.cpp offloads
    draft_bytes: int = 0  # a draft model beside it (engines/draft.py): weights, KV cache, compute buffer, logits

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes + self.draft_bytes

    @property
    def n_gpu_layers(self) -> int:
        """The value for llama.cpp's n_gpu_layers: the output layer counts as one, then each block on the GPU."""
        return self.gpu_layers + 1 if self.output_on_gpu else 0

    @property
    def message(self) -> str:
        if self.verdict is Verdict.TOO_LARGE:
            return "too large"
        if self.verdict is Verdict.PARTIAL:
            return f"fits with {self.gpu_layers} of {self.n_layers} layers on GPU"
        return "fits"


def gpu_blocks(n_gpu_layers: int, n_layers: int) -> int:
    """How many repeating blocks llama.cpp puts on the GPU for an n_gpu_layers value (-1: all).

    llama.cpp (llama-model.cpp, load_tensors) numbers the slots 0 … n_layers, the output layer being slot
    n_layers, and offloads the top n_gpu_layers slots: 1 puts only the output layer on the GPU, k the output
    layer and the last k - 1 blocks, n_layers + 1 everything but the input layer (which always stays on the CPU).
    """
    if n_gpu_layers < 0:
        return n_layers
    return min(max(n_gpu_layers - 1, 0), n_layers)


def _split_needs(shape: ModelShape, n_gpu_layers: int, kv_per_layer: int, compute: int) -> tuple[int, int]:
    """(RAM, VRAM) for llama.cpp's n_gpu_layers (see gpu_blocks): the KV cache of a block lives with it."""
    blocks = gpu_blocks(n_gpu_layers, shape.n_layers)
    gpu_w = sum(shape.layer_bytes[shape.n_layers - blocks :]) + (shape.output_bytes if n_gpu_layers else 0)
    vram = gpu_w + blocks * kv_per_layer + (compute if n_gpu_layers else 0)
    ram = shape.weights_bytes - gpu_w + (shape.n_layers - blocks) * kv_per_layer
    ram += compute if blocks < shape.n_layers else compute // 8  # the CPU keeps a small graph for the input layer
    return ram, vram


def layers_for_vram(
    model: ModelShape | GGUFHeader, n_ctx: int, free_vram: int, *, type_k: str = "f16", type_v: str = "f16",
    n_ubatch: int = DEFAULT_UBATCH, flash_attn: bool = False, reserve: int = VRAM_RESERVE,
) -> int:
    """n_gpu_layers for llama.cpp: the largest value whose weights, KV cache and compute buffer fit in
    `free_vram` - `reserve` (n_layers + 1: everything; 1: the output layer alone; 0: nothing fits)."""
    shape = model if isinstance(model, ModelShape) else ModelShape.from_header(model)
    budget = free_vram - reserve
    if budget <= 0:
        return 0
    kv_layer = int(n_ctx * kv_bytes_per_token_layer(shape, type_k, type_v))
    compute = compute_buffer_bytes(shape, n_ctx, n_ubatch=n_ubatch, flash_attn=flash_attn)
    lo, hi = 0, shape.n_layers + 1
    while lo < hi:  # the VRAM need grows with every slot offloaded
        mid = (lo + hi + 1) // 2
        if _split_needs(shape, mid, kv_layer, compute)[1] <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fit_at(shape: ModelShape, n_ctx: int, ram_free: int, vram_free: int, type_k: str, type_v: str,
            n_ubatch: int, flash_attn: bool) -> tuple[Verdict, int, int, int]:
    """(verdict, llama.cpp's n_gpu_layers, RAM, VRAM) at `n_ctx`."""
    kv_layer = int(n_ctx * kv_bytes_per_token_layer(shape, type_k, type_v))
    compute = compute_buffer_bytes(shape, n_ctx, n_ubatch=n_ubatch, flash_attn=flash_attn)
    ram_budget = ram_free - RAM_RESERVE
    has_gpu = vram_free > 0
    n_gpu = 0
    if has_gpu:
        n_gpu = layers_for_vram(shape, n_ctx, vram_free, type_k=type_k, type_v=type_v, n_ubatch=n_ubatch,
                                flash_attn=flash_attn)
    ram, vram = _split_needs(shape, n_gpu, kv_layer, compute)
    if ram > ram_budget:
        return Verdict.TOO_LARGE, n_gpu, ram, vram
    if has_gpu and n_gpu <= shape.n_layers:
        return Verdict.PARTIAL, n_gpu, ram, vram
    return Verdict.FITS, n_gpu, ram, vram


def max_context(
    shape: ModelShape, *, ram_free: int, vram_free: int = 0, type_k: str = "f16", type_v: str = "f16",
    n_ubatch: int = DEFAULT_UBATCH, flash_attn: bool = False,
) -> int:
    """The largest context (multiple of 256, ≤ the trained one) at which the model fits at all; 0 if none."""
    limit = shape.n_ctx_train or 4096
    lo, hi = 0, limit // CONTEXT_STEP
    while lo < hi:  # needs grow with the context, so bisect over multiples of 256
        mid = (lo + hi + 1) // 2
        ok = _fit_at(shape, mid * CONTEXT_STEP, ram_free, vram_free, type_k, type_v, n_ubatch, flash_attn)[0]
        if ok is not Verdict.TOO_LARGE:
            lo = mid
        else:
            hi = mid - 1
    best = lo * CONTEXT_STEP
    if best == 0 and limit < CONTEXT_STEP and _fit_at(shape, limit, ram_free, vram_free, type_k, type_v, n_ubatch,
                                                      flash_attn)[0] is not Verdict.TOO_LARGE:
        best = limit
    return best


def estimate(
    model: ModelShape | GGUFHeader, n_ctx: int, *, ram_free: int, vram_free: int = 0, type_k: str = "f16",
    type_v: str = "f16", n_ubatch: int = DEFAULT_UBATCH, flash_attn: bool = False, draft: ModelShape | None = None,
) -> FitEstimate:
    """The verdict at `n_ctx` for the given free RAM and VRAM (pure: pass hardware.snapshot() figures). A `draft`
    model loads beside it with the same context, all on the GPU when the main model has layers there (local_load):
    its needs come off the GPU's free memory when it fits there, else off the RAM, before the main model's; the main
    model's logits for every position come off the RAM."""
    shape = model if isinstance(model, ModelShape) else ModelShape.from_header(model)
    n_ubatch = min(n_ubatch, max(1, n_ctx))
    draft_bytes = draft_ram = draft_vram = 0
    if draft is not None:
        # and the main model then keeps every position's logits (float32 rows of n_vocab; llama-cpp-python's
        # Llama.generate checks a draft against them): 2.5 GB for Qwen2.5 7B at 4,096 tokens, in RAM
        logits = n_ctx * shape.n_vocab * 4
        draft_bytes = (draft.weights_bytes + kv_cache_bytes(draft, n_ctx, type_k, type_v)
                       + compute_buffer_bytes(draft, n_ctx, n_ubatch=n_ubatch, flash_attn=flash_attn))
        if vram_free - VRAM_RESERVE > draft_bytes:
            draft_vram, vram_free = draft_bytes, vram_free - draft_bytes
        else:
            draft_ram, ram_free = draft_bytes, ram_free - draft_bytes
        draft_ram, ram_free, draft_bytes = draft_ram + logits, ram_free - logits, draft_bytes + logits
    verdict, n_gpu, ram, vram = _fit_at(shape, n_ctx, ram_free, vram_free, type_k, type_v, n_ubatch, flash_attn)
    ram, vram = ram + draft_ram, vram + draft_vram
    return FitEstimate(
        verdict=verdict, n_ctx=n_ctx, n_layers=shape.n_layers, gpu_layers=gpu_blocks(n_gpu, shape.n_layers),
        output_on_gpu=n_gpu > 0, weights_bytes=shape.weights_bytes,
        kv_bytes=kv_cache_bytes(shape, n_ctx, type_k, type_v),
        compute_bytes=compute_buffer_bytes(shape, n_ctx, n_ubatch=n_ubatch, flash_attn=flash_attn),
        ram_needed=ram, vram_needed=vram, draft_bytes=draft_bytes,
        max_ctx=max_context(shape, ram_free=ram_free, vram_free=vram_free, type_k=type_k, type_v=type_v,
                            n_ubatch=n_ubatch, flash_attn=flash_attn),
    )

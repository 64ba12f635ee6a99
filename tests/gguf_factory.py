"""Writes tiny llama-architecture GGUF models with random weights, for tests and benchmarks."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import gguf
import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = [
    "the",
    "a",
    "an",
    "and",
    "or",
    "of",
    "to",
    "in",
    "is",
    "it",
    "you",
    "he",
    "she",
    "we",
    "they",
    "this",
    "that",
    "for",
    "on",
    "with",
    "as",
    "at",
    "by",
    "from",
    "be",
    "are",
    "was",
    "were",
    "hello",
    "world",
    "model",
    "chat",
    "reply",
    "token",
    "answer",
    "question",
    "four",
    "two",
    "plus",
    "equals",
    "yes",
    "no",
    "good",
    "bad",
    "local",
    "desk",
    "llama",
    "python",
    "qt",
    "window",
    "stream",
    "stop",
    "seed",
    "sample",
    "test",
    "file",
    "data",
    "cache",
    "history",
]


END_OF_TURN = (2, 4)  # "</s>" and "<|im_end|>", the end-of-generation tokens of write_tiny_llama's vocabulary
FIRST_BYTE_TOKEN = 5  # <unk> <s> </s> <|im_start|> <|im_end|>, then <0x00> … <0xFF>


def _vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types = [2, 3, 3, 3, 3]  # UNKNOWN, CONTROL...
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256  # BYTE
    pieces = ["\u2581" + w for w in _WORDS] + list("abcdefghijklmnopqrstuvwxyz0123456789.,!?") + ["\u2581"]
    seen = set(tokens)
    for p in pieces:
        if p not in seen:
            seen.add(p)
            tokens.append(p)
            types.append(1)  # NORMAL
    scores = [0.0] * 261 + [-float(i) for i in range(len(tokens) - 261)]
    return tokens, scores, types


def write_tiny_llama(
    path: Path,
    *,
    chat_template: str | None = CHATML_TEMPLATE,
    n_layers: int = 2,
    n_embd: int = 64,
    n_head: int = 2,
    n_ctx_train: int = 2048,
    architecture: str = "llama",
    seed: int = 1234,
    name: str = "tiny-test-llama",
    pooling: int | None = None,
    extra: dict[str, int | float] | None = None,
) -> Path:
    """A llama model small enough to load in milliseconds; head_dim = n_embd / n_head (keep it ≥ 32).

    `pooling` (a llama_pooling_type: 1 mean, 2 CLS, 3 last, 4 rank) writes `{arch}.pooling_type` among the model's
    parameters, before the vocabulary as converters do: what makes it an embedding model (or a reranker)."""
    rng = np.random.default_rng(seed)
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    n_ff = n_embd * 2
    head_dim = n_embd // n_head

    w = gguf.GGUFWriter(str(path), architecture)
    w.add_name(name)
    for key, value in (extra or {}).items():  # e.g. general.sampling.temp: int32 for ints, float32 for the rest
        (w.add_int32 if isinstance(value, int) else w.add_float32)(key, value)
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    if pooling is not None:
        w.add_pooling_type(gguf.PoolingType(pooling))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(4 if chat_template else 2)
    w.add_add_bos_token(True)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    def tensor(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    w.add_tensor("token_embd.weight", tensor(n_vocab, n_embd))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", tensor(n_vocab, n_embd))
    for i in range(n_layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", tensor(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_k.weight", tensor(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_v.weight", tensor(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_output.weight", tensor(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", tensor(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", tensor(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", tensor(n_embd, n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert head_dim >= 32 or n_head == 1
    return path


def edit_output_rows(
    src: Path,
    dst: Path,
    *,
    zero: Sequence[int] | Literal["all"],
    rows: Mapping[int, float] | None = None,
    seed: int = 0,
) -> Path:
    """Copy a model to `dst` and edit its output matrix (one row per token; a token's logit is its row times the
    hidden state): the rows in `zero` (or all) become 0, so those tokens' logit is 0, far below the top-k; each
    token in `rows` gets one shared random row times its factor (a row and its negative: one of them always has
    the largest logit by far)."""
    shutil.copy(src, dst)
    reader = gguf.GGUFReader(dst, "r+")
    output = next(t for t in reader.tensors if t.name == "output.weight")
    if zero == "all":
        output.data[:] = 0
    else:
        output.data[list(zero)] = 0
    if rows:
        row = np.random.default_rng(seed).standard_normal(output.data.shape[1]).astype(output.data.dtype) * 50
        for token, factor in rows.items():
            output.data[token] = row * factor
    reader.data.flush()
    del reader
    return dst

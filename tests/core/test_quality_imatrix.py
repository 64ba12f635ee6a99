"""An importance matrix computed as llama-imatrix does (core/imatrix.py): on a generated model its values are the
mean squared inputs of each weight matrix (1 after an RMS norm whose weights are 1), and with it the app makes the
IQ2 types llama.cpp refuses without one; the source of the quant records it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core import imatrix, library, quality
from llamadesk.core.gguf_header import read_header
from llamadesk.core.quantize import QuantizeError, quantize

TEXT = "en-cc0-1.0"


@pytest.fixture(scope="module")
def medium_f32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """256-wide rows: the K and IQ types apply."""
    return write_tiny_llama(tmp_path_factory.mktemp("imatrix") / "medium-F32.gguf", n_embd=256, n_head=8, n_layers=2)


def text(chars: int = 3000) -> str:
    return quality.eval_texts()[TEXT].read_text(encoding="utf-8")[:chars]


def test_the_matrix_holds_every_layer_weight_with_its_mean_squared_inputs(medium_f32: Path) -> None:
    seen: list[tuple[int, int]] = []
    matrix, windows = imatrix.compute(medium_f32, text(), n_ctx=128, threads=1,
                                      progress=lambda i, n: seen.append((i, n)))  # fmt: skip
    names = {f"blk.{i}.{w}.weight" for i in range(2)
             for w in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")}  # fmt: skip
    assert set(matrix) == names  # the last layer's too: every row goes through it, as llama-imatrix scores them
    assert windows >= 2 and seen[-1] == (windows, windows)
    for name, values in matrix.items():
        assert values.dtype == np.float32 and np.all(np.isfinite(values)) and np.all(values >= 0), name
    header = read_header(medium_f32)
    ffn = next(t for t in header.tensors if t.name == "blk.0.ffn_down.weight")
    assert matrix["blk.0.ffn_down.weight"].shape == (ffn.shape[0],)  # one value per input column
    # the attention's input is RMS-normalized with weights of 1: its mean square per token is 1
    assert float(matrix["blk.0.attn_q.weight"].mean()) == pytest.approx(1.0, rel=1e-3)
    assert np.array_equal(matrix["blk.0.attn_q.weight"], matrix["blk.0.attn_k.weight"])  # the same input


def test_iq2_needs_it_and_is_made_with_it(medium_f32: Path, tmp_path: Path, llamadesk_home: Path) -> None:
    with pytest.raises(QuantizeError, match="needs an importance matrix; ask for one"):
        quantize(medium_f32, "IQ2_XS", tmp_path / "no.gguf")
    stages: list[str] = []
    made = quantize(medium_f32, "IQ2_XS", tmp_path / "medium-IQ2_XS.gguf", imatrix_text=text(),
                    progress=lambda p: stages.append(p.stage), threads=1)  # fmt: skip
    assert read_header(made.path).quantization == "IQ2_XS" and "imatrix" in stages
    notes = library.read_sidecar(made.path)
    assert notes["imatrix"]["chunks"] >= 1 and len(notes["imatrix"]["text_sha256"]) == 64
    assert not multiprocessing.active_children()
    # it loads and scores like any other quant of the model
    result = quality.compare([medium_f32, made.path], text(), n_ctx=128, keep=False)
    assert result.files[1].type == "IQ2_XS" and result.files[1].kld > 0


def test_a_text_shorter_than_one_window_is_one_sentence(medium_f32: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizeError, match="fewer than one window of 512; give a longer text for the importance"):
        quantize(medium_f32, "Q4_K_M", tmp_path / "short.gguf", imatrix_text="hello world")
    assert not list(tmp_path.iterdir())

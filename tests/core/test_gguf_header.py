"""Tests of the fast GGUF header reader and the model-file validation, including hostile files."""

from __future__ import annotations

import os
import random
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from gguf_factory import CHATML_TEMPLATE, write_tiny_llama

from llamadesk.core import gguf_header
from llamadesk.core.errors import ModelLoadError
from llamadesk.core.gguf_header import (
    GGUFHeader,
    LocalSource,
    MemorySource,
    read_header,
    validate_model_file,
)

# -- a raw GGUF builder, for files GGUFWriter refuses to write ----------------------------------------------------


def _s(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(data)) + data


def kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<II", 4, value)


def kv_str(key: str, value: str) -> bytes:
    return _s(key) + struct.pack("<I", 8) + _s(value)


def kv_strings(key: str, items: Sequence[str]) -> bytes:
    return _s(key) + struct.pack("<IIQ", 9, 8, len(items)) + b"".join(_s(i) for i in items)


def kv_f32s(key: str, values: np.ndarray) -> bytes:
    return _s(key) + struct.pack("<IIQ", 9, 6, len(values)) + values.astype("<f4").tobytes()


def tinfo(name: str, dims: Sequence[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    return _s(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, ggml_type, offset)


def gguf_bytes(
    kvs: Sequence[bytes],
    tensors: Sequence[bytes] = (),
    *,
    data: bytes = b"",
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
) -> bytes:
    counts = struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                         len(kvs) if n_kv is None else n_kv)
    head = b"GGUF" + counts + b"".join(kvs) + b"".join(tensors)
    return head + b"\0" * (-len(head) % 32) + data


VOCAB = ["<unk>", "a", "b", "c"]


def model_kvs(**overrides: int) -> list[bytes]:
    values = {"llama.block_count": 1, "llama.context_length": 128, **overrides}
    return [kv_str("general.architecture", "llama"), *(kv_u32(k, v) for k, v in values.items()),
            kv_strings("tokenizer.ggml.tokens", VOCAB)]


def minimal_model(*, n_vocab_rows: int = len(VOCAB), **overrides: int) -> bytes:
    return gguf_bytes(model_kvs(**overrides), [tinfo("token_embd.weight", (8, n_vocab_rows))],
                      data=b"\0" * (32 * n_vocab_rows))


def error_of(data: bytes) -> str:
    with pytest.raises(ModelLoadError) as info:
        read_header(MemorySource(data, "m.gguf"))
    return check_sentence(info.value, "m.gguf")


def check_sentence(exc: BaseException, name: str) -> str:
    text = str(exc)
    assert name in text and text.endswith(".") and "\n" not in text, text
    return text


def validate_error(path: Path, name: str | None = None) -> str:
    with pytest.raises(ModelLoadError) as info:
        validate_model_file(path)
    return check_sentence(info.value, name or path.name)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


# -- agreement with gguf.GGUFReader ------------------------------------------------------------------------------


def test_agrees_with_gguf_reader(tiny: Path) -> None:
    header = read_header(tiny)
    reader = gguf.GGUFReader(tiny)
    scalars, arrays = {}, {}
    for name, fld in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        if fld.types[0] == gguf.GGUFValueType.ARRAY:
            arrays[name] = (len(fld.data), fld.types[-1])
        else:
            scalars[name] = fld.contents()
    assert header.metadata.keys() == scalars.keys()
    for key, value in scalars.items():
        assert header.metadata[key] == (pytest.approx(value) if isinstance(value, float) else value)
    assert {k: (n, header.array_types[k]) for k, n in header.array_lengths.items()} == arrays
    assert [t.name for t in header.tensors] == [t.name for t in reader.tensors]
    for mine, theirs in zip(header.tensors, reader.tensors, strict=True):
        assert mine.shape == tuple(int(d) for d in theirs.shape)
        assert mine.ggml_type == theirs.tensor_type
        assert header.data_offset + mine.offset == theirs.data_offset
        assert (mine.n_bytes, mine.n_elements) == (theirs.n_bytes, theirs.n_elements)
    assert header.version == 3 and header.alignment == 32
    assert header.n_vocab == len(reader.fields["tokenizer.ggml.tokens"].data)
    assert header.parameter_count == sum(t.n_elements for t in reader.tensors)


def test_convenience_properties(tiny: Path) -> None:
    header = validate_model_file(tiny)
    assert header.architecture == "llama" and header.name == "tiny-test-llama"
    assert header.file_type == gguf.LlamaFileType.ALL_F32 and header.quantization == "F32"
    assert (header.n_layers, header.n_embd, header.n_head, header.n_head_kv) == (2, 64, 2, 2)
    assert (header.head_dim_k, header.head_dim_v, header.n_ctx_train) == (32, 32, 2048)
    assert header.chat_template == CHATML_TEMPLATE and header.chat_templates == {}
    size = tiny.stat().st_size
    assert header.file_size == size and 0 <= size - header.total_size < header.alignment
    assert header.tensor("token_embd.weight") is not None and header.tensor("nope") is None
    assert header.tensor("output_norm.weight").type_name == "F32"  # type: ignore[union-attr]


def test_no_chat_template_and_other_shapes(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "t.gguf", chat_template=None, n_layers=3, n_embd=128, n_head=4,
                            n_ctx_train=4096, architecture="qwen2")
    header = read_header(path)
    assert header.chat_template is None and header.architecture == "qwen2"
    shape = (header.n_layers, header.n_embd, header.n_head, header.head_dim_k, header.n_ctx_train)
    assert shape == (3, 128, 4, 32, 4096)


def test_named_templates_and_big_template_are_kept() -> None:
    big = "{{ x }}" * 150_000  # ~1 MiB
    header = read_header(MemorySource(gguf_bytes([
        kv_str("general.architecture", "llama"), kv_str("tokenizer.chat_template", big),
        kv_str("tokenizer.chat_template.tool_use", "T"), kv_u32("llama.attention.key_length", 128),
    ])))
    assert header.chat_template == big and header.chat_templates == {"tool_use": "T"}
    assert header.head_dim_k == 128 and header.head_dim_v is None and header.quantization == "unknown"


def test_quantization_labels(tmp_path: Path) -> None:
    base = [kv_str("general.architecture", "llama")]
    q41 = read_header(MemorySource(gguf_bytes([*base, kv_u32("general.file_type", 3)])))
    assert q41.quantization == "Q4_1"
    tensors = [tinfo("a", (64, 4), 1), tinfo("b", (64, 4), 1, 512), tinfo("n", (64,), 0, 1024)]
    derived = read_header(MemorySource(gguf_bytes(base, tensors)))
    assert derived.file_type is None and derived.quantization == "F16"
    assert derived.tensor_data_size == 1024 + 256


def test_small_arrays_can_be_kept() -> None:
    data = minimal_model()
    assert read_header(MemorySource(data)).arrays == {}
    kept = read_header(MemorySource(data), max_string_array_items=10)
    assert kept.arrays == {"tokenizer.ggml.tokens": VOCAB}
    per_layer = _s("llama.attention.head_count_kv") + struct.pack("<IIQ3i", 9, 5, 3, 2, 8, 4)
    header = read_header(MemorySource(gguf_bytes([*model_kvs(), per_layer, kv_u32("llama.attention.head_count", 8)])))
    assert header.arrays == {"llama.attention.head_count_kv": [2, 8, 4]} and header.n_head_kv == 8


# -- arrays are skipped: a 200k vocab and a 20 MB array cost only a few MB of reads ------------------------------


def test_big_arrays_are_skipped(tmp_path: Path) -> None:
    n_vocab, n_embd = 200_000, 32
    kvs = [*model_kvs()[:-1], kv_strings("tokenizer.ggml.tokens", [f"{i:x}" for i in range(n_vocab)]),
           kv_f32s("dummy.big", np.zeros(5_000_000)), kv_f32s("tokenizer.ggml.scores", np.zeros(n_vocab))]
    data = gguf_bytes(kvs, [tinfo("token_embd.weight", (n_embd, n_vocab), 1)], data=b"\0" * (2 * n_embd * n_vocab))
    path = tmp_path / "big.gguf"
    path.write_bytes(data)
    started = time.perf_counter()
    with LocalSource(path) as source:
        header = read_header(source)
    elapsed = time.perf_counter() - started
    assert source.bytes_read < 5_000_000 and source.fetches <= 5, (source.bytes_read, source.fetches)
    assert path.stat().st_size > 30_000_000 and elapsed < 3.0
    assert header.bytes_read == source.bytes_read
    assert header.n_vocab == n_vocab and header.array_lengths["dummy.big"] == 5_000_000
    assert header.array_types["dummy.big"] == gguf.GGUFValueType.FLOAT32
    assert validate_model_file(path).total_size == len(data)


# -- hostile and broken files --------------------------------------------------------------------------------------


def test_minimal_model_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(minimal_model())
    assert validate_model_file(path).n_vocab == len(VOCAB)
    assert gguf.GGUFReader(path).tensors[0].name == "token_embd.weight"


def test_empty_random_and_wrong_magic(tmp_path: Path) -> None:
    assert "empty" in error_of(b"")
    assert "not a GGUF" in error_of(random.Random(7).randbytes(100_000))
    assert "not a GGUF" in error_of(b"PK\3\4" + b"\0" * 100)
    assert "truncated" in error_of(b"GG")
    empty = tmp_path / "empty.gguf"
    empty.touch()
    assert "empty" in validate_error(empty)


@pytest.mark.parametrize("version", [1, 4, 0xFFFFFFFF])
def test_unsupported_versions(version: int) -> None:
    assert f"version {version}" in error_of(gguf_bytes(model_kvs(), version=version))


def test_big_endian() -> None:
    assert "big-endian" in error_of(gguf_bytes([], version=0x03000000))


def test_truncated_anywhere_in_the_header(tiny: Path) -> None:
    data = tiny.read_bytes()
    header_end = read_header(tiny).data_offset - 32  # at most 31 bytes of padding follow the tensor infos
    cuts = sorted({*range(1, 64), *range(64, header_end, 97), header_end - 1, header_end})
    for cut in cuts:
        assert "truncated" in error_of(data[:cut]), cut


def test_truncated_points_on_disk(tiny: Path, tmp_path: Path) -> None:
    data = tiny.read_bytes()
    header = read_header(tiny)
    infos_at = data.index(b"token_embd.weight") - 8
    for label, cut in [("magic", 3), ("kvs", 200), ("tensor infos", infos_at + 10),
                       ("data", header.data_offset + 1000), ("last byte", header.total_size - 1)]:
        path = tmp_path / "cut.gguf"
        path.write_bytes(data[:cut])
        assert "truncated" in validate_error(path), label
    path.write_bytes(data[: header.data_offset + 1000])
    assert "MB" in validate_error(path) or "bytes" in validate_error(path)


def test_absurd_counts_and_lengths() -> None:
    assert "damaged" in error_of(gguf_bytes([], n_kv=2**63))
    assert "damaged" in error_of(gguf_bytes([], n_tensors=2**63))
    assert "damaged" in error_of(gguf_bytes([], n_kv=1_000_001))
    key_2_40 = struct.pack("<Q", 2**40) + b"abc"
    assert "damaged" in error_of(gguf_bytes([key_2_40], n_kv=1))
    value_2_40 = _s("k") + struct.pack("<IQ", 8, 2**40)
    assert "damaged" in error_of(gguf_bytes([value_2_40]))
    assert "truncated" in error_of(gguf_bytes([_s("k") + struct.pack("<IQ", 8, 1_000_000)]))
    huge_array = _s("k") + struct.pack("<IIQ", 9, 8, 2**62)
    assert "damaged" in error_of(gguf_bytes([huge_array]))
    assert "truncated" in error_of(gguf_bytes([_s("k") + struct.pack("<IIQ", 9, 6, 1_000_000)]))
    assert "truncated" in error_of(gguf_bytes([_s("k") + struct.pack("<IIQ", 9, 8, 100_000)]))
    long_item = _s("k") + struct.pack("<IIQQQ", 9, 8, 2, 2**40, 0)
    assert "damaged" in error_of(gguf_bytes([long_item]))


def test_bad_types_and_duplicates() -> None:
    assert "unknown value type 99" in error_of(gguf_bytes([_s("k") + struct.pack("<I", 99)]))
    assert "element type 9" in error_of(gguf_bytes([_s("k") + struct.pack("<IIQ", 9, 9, 1)]))
    assert "element type 77" in error_of(gguf_bytes([_s("k") + struct.pack("<IIQ", 9, 77, 1)]))
    assert "twice" in error_of(gguf_bytes([kv_u32("a.b", 1), kv_u32("a.b", 2)]))
    assert "'x?y'" in error_of(gguf_bytes([kv_u32("x\ny", 1), kv_u32("x\ny", 2)]))  # quoted on one line
    long_key = "k" * 5000
    assert len(error_of(gguf_bytes([kv_u32(long_key, 1), kv_u32(long_key, 2)]))) < 200
    assert "twice" in error_of(gguf_bytes([kv_u32("a.b", 1), kv_strings("a.b", ["x"])]))
    assert "twice" in error_of(gguf_bytes(model_kvs(), [tinfo("t", (32,)), tinfo("t", (32,), 0, 128)]))
    assert "not a power of two" in error_of(gguf_bytes([kv_u32("general.alignment", 24)]))
    assert "not a power of two" in error_of(gguf_bytes([kv_u32("general.alignment", 0)]))


def test_bad_tensor_infos() -> None:
    assert "dimensions" in error_of(gguf_bytes([], [tinfo("t", (1,) * 9)]))
    assert "overflow" in error_of(gguf_bytes([], [tinfo("t", (2**32, 2**32))]))
    assert "tensor type 200" in error_of(gguf_bytes([], [tinfo("t", (32,), 200)]))
    assert "multiple of 32" in error_of(gguf_bytes([], [tinfo("t", (33,), 2)]))
    assert "unaligned" in error_of(gguf_bytes([], [tinfo("t", (32,), 0, 3)]))
    assert "damaged" in error_of(gguf_bytes([], [_s(b"x" * 70_000)]))


def test_model_level_checks(tmp_path: Path) -> None:
    def check(data: bytes, phrase: str) -> None:
        path = tmp_path / "x.gguf"
        path.write_bytes(data)
        assert phrase in validate_error(path)

    check(gguf_bytes(model_kvs()), "no tensors")
    no_arch = [kv for kv in model_kvs() if b"general.architecture" not in kv]
    check(gguf_bytes(no_arch, [tinfo("t", (32,))], data=b"\0" * 128), "architecture")
    no_vocab = model_kvs()[:-1]
    check(gguf_bytes(no_vocab, [tinfo("t", (32,))], data=b"\0" * 128), "vocabulary")
    check(minimal_model(n_vocab_rows=6), "its vocabulary has 4 tokens but its embedding table has 6")
    check(minimal_model(**{"llama.context_length": 20_000_000}), "context")
    check(minimal_model(**{"llama.block_count": 20_000}), "layers")


def test_file_system_problems(tmp_path: Path, tiny: Path) -> None:
    missing = tmp_path / "missing.gguf"
    assert "No model file" in validate_error(missing, str(missing))
    with pytest.raises(ModelLoadError, match="No model file"):
        read_header(missing)
    assert "folder" in validate_error(tmp_path, str(tmp_path))
    loop = tmp_path / "loop.gguf"
    loop.symlink_to(loop)
    assert "loop" in validate_error(loop, str(loop))
    dangling = tmp_path / "dangling.gguf"
    dangling.symlink_to(tmp_path / "gone.gguf")
    assert "link" in validate_error(dangling, str(dangling))
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)
    assert "regular file" in validate_error(fifo, str(fifo))
    good_link = tmp_path / "link.gguf"
    good_link.symlink_to(tiny)
    assert validate_model_file(good_link).architecture == "llama"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path, tiny: Path) -> None:
    path = tmp_path / "locked.gguf"
    path.write_bytes(tiny.read_bytes())
    path.chmod(0)
    try:
        assert "permission denied" in validate_error(path, str(path))
    finally:
        path.chmod(0o600)


def test_permission_error_from_open(tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The branch test_unreadable_file covers for non-root users, reached here as root too."""

    def deny(path: Path) -> gguf_header.LocalSource:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(gguf_header, "LocalSource", deny)
    assert "permission denied" in validate_error(tiny, str(tiny))


def test_random_corruption_never_escapes(tiny: Path) -> None:
    """Flipping bytes in the header gives a header or a ModelLoadError, never another exception."""
    data = tiny.read_bytes()
    end = read_header(tiny).data_offset
    rng = random.Random(42)
    for _ in range(300):
        mutated = bytearray(data[:end])
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            assert isinstance(read_header(MemorySource(bytes(mutated))), GGUFHeader)
        except ModelLoadError as exc:
            check_sentence(exc, "the model file")


def test_chunk_cache_counts_reads(tiny: Path) -> None:
    with LocalSource(tiny, chunk_size=4096) as source:
        assert source.read_at(0, 4) == b"GGUF" and source.read_at(2, 2) == b"UF"
        assert source.fetches == 1 and source.bytes_read == 4096
        assert source.read_at(4090, 10) == tiny.read_bytes()[4090:4100] and source.fetches == 2
        assert source.read_at(3 * 4096 + 100, 4) == tiny.read_bytes()[3 * 4096 + 100:][:4]
        assert source.bytes_read == 3 * 4096 - 100  # after a seek only the tail of a chunk is fetched
        assert source.read_at(3 * 4096, 4) == tiny.read_bytes()[3 * 4096:][:4] and source.fetches == 4
        assert source.read_at(source.size or 0, 10) == b""

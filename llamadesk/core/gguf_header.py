"""Fast, defensive GGUF header reader: metadata scalars and tensor infos, seeking past arrays."""

from __future__ import annotations

import collections
import errno
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import gguf

from llamadesk.core.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
CHUNK_SIZE = 1 << 20
MAX_KV = 1_000_000
MAX_TENSORS = 1_000_000
MAX_STRING = 64 << 20  # chat templates (~1 MiB at most in practice) fit easily
MAX_KEY = 1 << 16  # keys and tensor names are short; this only bounds hostile files
MAX_ARRAY_ITEMS = 1 << 32
KEEP_NUMERIC_ITEMS = 1024  # small numeric arrays (per-layer head counts, ...) are always kept
MAX_DIMS = 8
MAX_CONTEXT_LENGTH = 10_000_000
MAX_BLOCK_COUNT = 10_000
_INT64_MAX = (1 << 63) - 1
_U64 = struct.Struct("<Q")

_VT = gguf.GGUFValueType
# value type → (struct format, size) for fixed-size scalars
_SCALARS: dict[int, tuple[str, int]] = {
    _VT.UINT8: ("<B", 1), _VT.INT8: ("<b", 1), _VT.UINT16: ("<H", 2), _VT.INT16: ("<h", 2),
    _VT.UINT32: ("<I", 4), _VT.INT32: ("<i", 4), _VT.FLOAT32: ("<f", 4), _VT.BOOL: ("<B", 1),
    _VT.UINT64: ("<Q", 8), _VT.INT64: ("<q", 8), _VT.FLOAT64: ("<d", 8),
}


class ByteSource(Protocol):
    """Random-access bytes: a local file now, an HTTP Range reader later."""

    label: str  # how error sentences name the file

    @property
    def size(self) -> int | None:
        """Total length in bytes, or None when unknown."""

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset`; fewer only at the end of the data."""


class ChunkedSource:
    """Caches fixed-size chunks so a header walk costs few reads; subclasses implement `_fetch`.

    An HTTP source passes the Content-Length as `size` and fetches with `Range: bytes=offset-(offset+size-1)`.
    """

    def __init__(self, label: str, size: int | None, *, chunk_size: int = CHUNK_SIZE, max_chunks: int = 8) -> None:
        self.label = label
        self._size = size
        self.chunk_size = chunk_size
        self.max_chunks = max_chunks
        self.bytes_read = 0  # bytes fetched from the underlying file or server
        self.fetches = 0
        self._chunks: collections.OrderedDict[int, tuple[int, bytes]] = collections.OrderedDict()

    @property
    def size(self) -> int | None:
        return self._size

    def _fetch(self, offset: int, size: int) -> bytes:
        raise NotImplementedError

    def _counted_fetch(self, offset: int, size: int) -> bytes:
        data = self._fetch(offset, size)
        self.bytes_read += len(data)
        self.fetches += 1
        return data

    def _chunk(self, index: int, start: int) -> tuple[int, bytes]:
        """Chunk `index` from `start` on: after a seek only the chunk's tail is fetched."""
        entry = self._chunks.get(index)
        if entry is None or entry[0] > start:
            entry = (start, self._counted_fetch(index * self.chunk_size + start, self.chunk_size - start))
            self._chunks[index] = entry
            if len(self._chunks) > self.max_chunks:
                self._chunks.popitem(last=False)
        else:
            self._chunks.move_to_end(index)
        return entry

    def read_at(self, offset: int, size: int) -> bytes:
        if self._size is not None:
            size = max(0, min(size, self._size - offset))
        if size <= 0 or offset < 0:
            return b""
        if size > 2 * self.chunk_size:  # a big string: read it straight through, do not flood the cache
            return self._counted_fetch(offset, size)
        parts: list[bytes] = []
        pos, end = offset, offset + size
        while pos < end:
            index, start = divmod(pos, self.chunk_size)
            first, chunk = self._chunk(index, start)
            part = chunk[start - first:start - first + end - pos]
            if not part:
                break
            parts.append(part)
            pos += len(part)
            if len(chunk) < self.chunk_size - first:  # end of data
                break
        return b"".join(parts)


class LocalSource(ChunkedSource):
    """A local file, read in cached chunks; use as a context manager or call close()."""

    def __init__(self, path: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE) -> None:
        self.path = Path(path)
        self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        super().__init__(self.path.name, os.fstat(self._file.fileno()).st_size, chunk_size=chunk_size)

    def _fetch(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> LocalSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemorySource(ChunkedSource):
    """Bytes already in memory (tests, or a header prefix fetched some other way)."""

    def __init__(self, data: bytes, label: str = "the model file", *, chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__(label, len(data), chunk_size=chunk_size)
        self._data = data

    def _fetch(self, offset: int, size: int) -> bytes:
        return self._data[offset:offset + size]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the fastest-moving dimension (ne[0])
    ggml_type: int
    offset: int  # relative to GGUFHeader.data_offset
    n_elements: int
    n_bytes: int

    @property
    def type_name(self) -> str:
        return gguf.GGMLQuantizationType(self.ggml_type).name


@dataclass
class GGUFHeader:
    label: str
    version: int
    alignment: int
    metadata: dict[str, Any]  # scalar KVs only: str, int, float, bool
    array_lengths: dict[str, int]
    array_types: dict[str, gguf.GGUFValueType]  # element type of each skipped array
    tensors: list[TensorInfo]
    data_offset: int
    tensor_data_size: int
    file_size: int | None = None
    bytes_read: int = 0
    # values of numeric arrays of up to KEEP_NUMERIC_ITEMS items and string arrays of up to max_string_array_items
    arrays: dict[str, list[Any]] = field(default_factory=dict)

    def _int(self, key: str) -> int | None:
        value = self.metadata.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        items = self.arrays.get(key)  # per-layer values (e.g. head_count) kept when small enough
        if items and all(isinstance(v, int) for v in items):
            return max(items)
        return None

    def _str(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def _arch_int(self, suffix: str) -> int | None:
        return self._int(f"{self.architecture}.{suffix}") if self.architecture else None

    @property
    def architecture(self) -> str:
        """general.architecture, or "" when the file does not name one."""
        return self._str("general.architecture") or ""

    @property
    def name(self) -> str | None:
        return self._str("general.name")

    @property
    def file_type(self) -> int | None:
        return self._int("general.file_type")

    @property
    def quantization(self) -> str:
        """"Q4_K_M", "F16", ...: from general.file_type, else the most common weight tensor type."""
        try:
            label = gguf.LlamaFileType(self.file_type).name if self.file_type is not None else "GUESSED"
        except ValueError:
            label = "GUESSED"
        if label != "GUESSED":
            return label.split("_", 1)[1] if label.startswith(("MOSTLY_", "ALL_")) else label
        weights = [t.ggml_type for t in self.tensors if len(t.shape) >= 2] or [t.ggml_type for t in self.tensors]
        if not weights:
            return "unknown"
        return gguf.GGMLQuantizationType(collections.Counter(weights).most_common(1)[0][0]).name

    @property
    def n_layers(self) -> int | None:
        return self._arch_int("block_count")

    @property
    def n_embd(self) -> int | None:
        return self._arch_int("embedding_length")

    @property
    def n_head(self) -> int | None:
        return self._arch_int("attention.head_count")

    @property
    def n_head_kv(self) -> int | None:
        value = self._arch_int("attention.head_count_kv")
        return self.n_head if value is None else value

    def _default_head_dim(self) -> int | None:
        n_embd, n_head = self.n_embd, self.n_head
        return n_embd // n_head if n_embd and n_head else None

    @property
    def head_dim_k(self) -> int | None:
        value = self._arch_int("attention.key_length")
        return self._default_head_dim() if value is None else value

    @property
    def head_dim_v(self) -> int | None:
        value = self._arch_int("attention.value_length")
        return self._default_head_dim() if value is None else value

    @property
    def n_ctx_train(self) -> int | None:
        return self._arch_int("context_length")

    @property
    def n_vocab(self) -> int | None:
        return self.array_lengths.get("tokenizer.ggml.tokens")

    @property
    def chat_template(self) -> str | None:
        return self._str("tokenizer.chat_template")

    @property
    def chat_templates(self) -> dict[str, str]:
        """Named extra templates (tokenizer.chat_template.<name>, e.g. "tool_use")."""
        prefix = "tokenizer.chat_template."
        return {k[len(prefix):]: v for k, v in self.metadata.items() if k.startswith(prefix) and isinstance(v, str)}

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def total_size(self) -> int:
        return self.data_offset + self.tensor_data_size

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


class _Cursor:
    """Sequential reader over a ByteSource with a local window; every failure is a ModelLoadError sentence."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.label = source.label
        self.size = source.size
        self.pos = 0
        self._buf = b""
        self._buf_start = 0

    @staticmethod
    def show(text: str) -> str:
        """A name from the file, made safe to quote in a one-line sentence."""
        shown = "".join(c if c.isprintable() else "?" for c in text[:80])
        return f"'{shown}…'" if len(text) > 80 else f"'{shown}'"

    def damaged(self, what: str) -> ModelLoadError:
        return ModelLoadError(f"{self.label} is damaged: {what}.")

    def truncated(self) -> ModelLoadError:
        return ModelLoadError(f"{self.label} is truncated: its header ends early; download it again.")

    def need(self, n: int) -> None:
        if self.size is not None and self.pos + n > self.size:
            raise self.truncated()

    def take(self, n: int) -> bytes:
        self.need(n)
        rel = self.pos - self._buf_start
        if rel < 0 or rel + n > len(self._buf):  # refill up to the end of the source's chunk, not beyond
            chunk = getattr(self.source, "chunk_size", CHUNK_SIZE)
            self._buf = self.source.read_at(self.pos, max(n, chunk - self.pos % chunk))
            self._buf_start, rel = self.pos, 0
        data = self._buf[rel:rel + n]
        if len(data) < n:
            raise self.truncated()
        self.pos += n
        return data

    def unpack(self, fmt: str, n: int) -> Any:
        return struct.unpack(fmt, self.take(n))[0]

    def u32(self) -> int:
        return int(self.unpack("<I", 4))

    def u64(self) -> int:
        return int(self.unpack("<Q", 8))

    def string(self, what: str, limit: int = MAX_STRING) -> str:
        n = self.u64()
        if n > limit:
            raise self.damaged(f"{what} claims to be {n} bytes long")
        return self.take(n).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        """Walks `count` strings reading only their lengths (a 128k vocab costs ~2 MB of reads)."""
        unpack_from = _U64.unpack_from
        for _ in range(count):
            rel = self.pos - self._buf_start  # never negative: pos only grows after a refill
            if rel + 8 > len(self._buf):
                self.take(8)  # refills the window (or raises truncated)
                self.pos -= 8
                rel = 0
            n = unpack_from(self._buf, rel)[0]
            if n > MAX_STRING:
                raise self.damaged(f"an array string claims to be {n} bytes long")
            self.pos += 8 + n
        self.need(0)

    def skip(self, n: int) -> None:
        self.need(n)
        self.pos += n


def _read_value(cur: _Cursor, vtype: int, key: str) -> Any:
    if vtype == _VT.STRING:
        return cur.string(f"the value of {cur.show(key)}")
    if vtype not in _SCALARS:
        raise cur.damaged(f"{cur.show(key)} has unknown value type {vtype}")
    fmt, n = _SCALARS[vtype]
    value = cur.unpack(fmt, n)
    return bool(value) if vtype == _VT.BOOL else value


def _read_array(cur: _Cursor, key: str, header: GGUFHeader, keep_items: int) -> None:
    etype, count = cur.u32(), cur.u64()
    if etype not in _SCALARS and etype != _VT.STRING:
        raise cur.damaged(f"the array {cur.show(key)} has unsupported element type {etype}")
    if count > MAX_ARRAY_ITEMS:
        raise cur.damaged(f"the array {cur.show(key)} claims {count} items")
    header.array_lengths[key] = count
    header.array_types[key] = gguf.GGUFValueType(etype)
    if 0 < count <= (keep_items if etype == _VT.STRING else KEEP_NUMERIC_ITEMS):
        header.arrays[key] = [_read_value(cur, etype, key) for _ in range(count)]
    elif etype == _VT.STRING:
        cur.need(8 * count)
        cur.skip_strings(count)
    else:
        cur.skip(_SCALARS[etype][1] * count)


def _read_tensor_info(cur: _Cursor) -> TensorInfo:
    name = cur.string("a tensor name", MAX_KEY)
    n_dims = cur.u32()
    if n_dims > MAX_DIMS:
        raise cur.damaged(f"tensor {cur.show(name)} claims {n_dims} dimensions")
    shape = tuple(cur.u64() for _ in range(n_dims))
    ggml_type, offset = cur.u32(), cur.u64()
    n_elements = 1
    for dim in shape:
        n_elements *= dim
        if n_elements > _INT64_MAX:
            raise cur.damaged(f"tensor {cur.show(name)} has dimensions {list(shape)} that overflow")
    if ggml_type not in gguf.GGML_QUANT_SIZES:
        raise ModelLoadError(
            f"{cur.label} uses tensor type {ggml_type} (in {cur.show(name)}), which this version of LlamaDesk "
            "does not know; update the app or pick another quantization."
        )
    block_size, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
    if shape and shape[0] % block_size:
        raise cur.damaged(f"tensor {cur.show(name)} has rows of {shape[0]} values, not a multiple of {block_size}")
    return TensorInfo(name, shape, ggml_type, offset, n_elements, n_elements // block_size * type_size)


def _parse(cur: _Cursor, keep_items: int) -> GGUFHeader:
    head = cur.source.read_at(0, 4)
    if cur.size == 0 or (cur.size is None and not head):
        raise ModelLoadError(f"{cur.label} is empty (0 bytes); it is not a model file.")
    if head != GGUF_MAGIC:
        if head and len(head) < 4 and GGUF_MAGIC.startswith(head):
            raise cur.truncated()
        raise ModelLoadError(f"{cur.label} is not a GGUF model file.")
    cur.skip(4)
    version = cur.u32()
    if version not in SUPPORTED_VERSIONS:
        if int.from_bytes(version.to_bytes(4, "little"), "big") in SUPPORTED_VERSIONS:
            raise ModelLoadError(f"{cur.label} is a big-endian GGUF file, which LlamaDesk cannot load.")
        raise ModelLoadError(
            f"{cur.label} uses GGUF version {version}, which LlamaDesk does not support; get a newer conversion."
        )
    n_tensors, n_kv = cur.u64(), cur.u64()
    if n_tensors > MAX_TENSORS:
        raise cur.damaged(f"its header claims {n_tensors} tensors")
    if n_kv > MAX_KV:
        raise cur.damaged(f"its header claims {n_kv} metadata entries")
    header = GGUFHeader(cur.label, version, DEFAULT_ALIGNMENT, {}, {}, {}, [], 0, 0, cur.size)
    for _ in range(n_kv):
        key = cur.string("a metadata key", MAX_KEY)
        if key in header.metadata or key in header.array_lengths:
            raise cur.damaged(f"the metadata key {cur.show(key)} appears twice")
        vtype = cur.u32()
        if vtype == _VT.ARRAY:
            _read_array(cur, key, header, keep_items)
        else:
            header.metadata[key] = _read_value(cur, vtype, key)
    alignment = header.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise cur.damaged(f"its alignment {alignment!r} is not a power of two")
    header.alignment = alignment
    names: set[str] = set()
    for _ in range(n_tensors):
        info = _read_tensor_info(cur)
        if info.name in names:
            raise cur.damaged(f"the tensor {cur.show(info.name)} appears twice")
        if info.offset % alignment:
            raise cur.damaged(f"tensor {cur.show(info.name)} starts at an unaligned offset")
        names.add(info.name)
        header.tensors.append(info)
    header.data_offset = -(-cur.pos // alignment) * alignment
    header.tensor_data_size = max((t.offset + t.n_bytes for t in header.tensors), default=0)
    header.bytes_read = int(getattr(cur.source, "bytes_read", cur.pos))
    return header


def _open_local(path: Path) -> LocalSource:
    """Opens a local model file, turning every OS failure into a sentence."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelLoadError(f"{path} is a symbolic link that loops back on itself; fix or remove it.") from exc
        if exc.errno == errno.EACCES:
            raise ModelLoadError(f"{path} cannot be read: permission denied.") from exc
        if path.is_symlink():
            raise ModelLoadError(f"{path} is a link to a file that no longer exists.") from exc
        raise ModelLoadError(f"No model file at {path}.") from exc
    if stat.S_ISDIR(st.st_mode):
        raise ModelLoadError(f"{path} is a folder, not a model file.")
    if not stat.S_ISREG(st.st_mode):
        raise ModelLoadError(f"{path} is not a regular file, so it cannot be a model file.")
    try:
        return LocalSource(path)
    except PermissionError as exc:
        raise ModelLoadError(f"{path} cannot be read: permission denied.") from exc
    except OSError as exc:
        raise ModelLoadError(f"{path} cannot be read: {exc.strerror or exc}.") from exc


def read_header(source_or_path: ByteSource | str | os.PathLike[str], *, max_string_array_items: int = 0) -> GGUFHeader:
    """Reads a GGUF header; long arrays are skipped, keeping only their element type and length.

    String arrays of at most `max_string_array_items` items and numeric arrays of at most KEEP_NUMERIC_ITEMS
    items are decoded into `GGUFHeader.arrays`. Every problem raises ModelLoadError with one sentence.
    """
    if isinstance(source_or_path, (str, os.PathLike)):
        with _open_local(Path(source_or_path)) as source:
            return _read_source(source, max_string_array_items)
    return _read_source(source_or_path, max_string_array_items)


def _read_source(source: ByteSource, keep_items: int) -> GGUFHeader:
    try:
        return _parse(_Cursor(source), keep_items)
    except OSError as exc:
        raise ModelLoadError(f"{source.label} could not be read: {exc.strerror or exc}.") from exc


def _size_pair(have: int, want: int) -> str:
    a, b = f"{have / 1e6:.1f}", f"{want / 1e6:.1f}"
    return f"{a} MB of the {b} MB" if a != b else f"{have} bytes of the {want} bytes"


def validate_model_file(path: str | os.PathLike[str]) -> GGUFHeader:
    """Checks a local file before llama.cpp sees it (some broken files abort the process there)."""
    path = Path(path)
    with _open_local(path) as source:
        header = _read_source(source, 0)
    label = header.label
    size = header.file_size or 0
    if size < header.total_size:
        raise ModelLoadError(
            f"{label} is truncated: it holds {_size_pair(size, header.total_size)} its header announces; "
            "download it again."
        )
    if not header.tensors:
        raise ModelLoadError(f"{label} holds no tensors (it may be a vocabulary-only file); choose a full model.")
    if not header.architecture:
        raise ModelLoadError(f"{label} is damaged: it does not name its architecture (general.architecture).")
    if not header.n_vocab:
        raise ModelLoadError(f"{label} has no tokenizer vocabulary (tokenizer.ggml.tokens), so it cannot chat.")
    embd = header.tensor("token_embd.weight")
    if embd is not None and len(embd.shape) >= 2 and embd.shape[1] != header.n_vocab:
        raise ModelLoadError(
            f"{label} is damaged: its vocabulary has {header.n_vocab} tokens but its embedding table has "
            f"{embd.shape[1]}."
        )
    n_ctx = header.n_ctx_train
    if n_ctx is not None and not 0 < n_ctx <= MAX_CONTEXT_LENGTH:
        raise ModelLoadError(f"{label} is damaged: it announces a training context of {n_ctx} tokens.")
    n_layers = header.n_layers
    if n_layers is not None and not 0 < n_layers <= MAX_BLOCK_COUNT:
        raise ModelLoadError(f"{label} is damaged: it announces {n_layers} layers.")
    return header

"""Makes your own quant: an F32/F16/BF16/Q8_0 GGUF to a smaller type through the wheel's llama_model_quantize,
in a child process (the C call has no cancel hook: Stop kills the child), into a temporary file next to the target
renamed at the end, then registered in the library with its source recorded."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError, storage_sentence

log = logging.getLogger(__name__)

# Bits per weight of each target, as llama.cpp's `llama-quantize --help` lists them (the estimate of the output
# size and the check of free space use them; a type missing here is estimated at 8.5, erring on the safe side).
BITS_PER_WEIGHT: dict[str, float] = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_1": 6.0, "Q5_K_M": 5.7, "Q5_K_S": 5.54,
    "Q5_0": 5.5, "Q4_1": 5.0, "Q4_K_M": 4.89, "Q4_K_S": 4.58, "Q4_0": 4.5, "IQ4_NL": 4.5, "NVFP4": 4.5,
    "Q3_K_L": 4.27, "IQ4_XS": 4.25, "MXFP4_MOE": 4.25, "Q3_K_M": 3.91, "IQ3_M": 3.66, "Q3_K_S": 3.5, "IQ3_S": 3.44,
    "IQ3_XS": 3.3, "IQ3_XXS": 3.06, "Q2_K": 2.96, "Q2_K_S": 2.9, "IQ2_M": 2.7, "IQ2_S": 2.5, "IQ2_XS": 2.31,
    "IQ2_XXS": 2.06, "TQ2_0": 2.06, "IQ1_M": 1.75, "TQ1_0": 1.69, "IQ1_S": 1.56,
}
SOURCE_TYPES = ("F32", "F16", "BF16", "Q8_0")  # precise enough to quantize from
# llama.cpp refuses these without an importance matrix (quantize(imatrix_text=...) computes one: core/imatrix.py).
NEEDS_IMATRIX = frozenset({"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "Q2_K_S"})
PARTIAL_SUFFIX = ".quantizing"  # not .gguf: the library never lists a half-written quant
POLL_S = 0.1
_TYPE_IN_NAME = re.compile(r"(?i)([-._])(F32|F16|BF16|Q\d_[01K](?:_[SML])?|Q\d_K|IQ\d_[A-Z]+|TQ\d_0)(?=\.gguf$)")

Progress = Callable[["QuantizeProgress"], None]


class QuantizeError(LlamaDeskError):
    """A quant could not be made (bad source, unknown type, no room, llama.cpp failed)."""


class QuantizeCancelled(QuantizeError):
    """The user stopped a quantization; the partial file was removed."""


@dataclass(frozen=True)
class QuantizeProgress:
    stage: str  # "checking", "imatrix" (tensors_done/total: windows of the text), "quantizing", "hashing", "done"
    elapsed: float  # seconds since the start
    bytes_written: int  # the output file so far
    estimate: int  # the output's expected size
    tensors_done: int = 0
    tensors_total: int = 0

    @property
    def fraction(self) -> float:
        """The output's size so far against the estimate (capped below 1 until the end)."""
        if self.stage == "done":
            return 1.0
        return min(self.bytes_written / self.estimate, 0.99) if self.estimate else 0.0


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    type: str
    source: Path
    source_type: str
    size_bytes: int
    seconds: float
    sha256: str


def available_types() -> dict[str, int]:
    """Target type name → llama_ftype, for the types this wheel's llama.cpp has."""
    import llama_cpp

    types = {"F32": int(llama_cpp.LLAMA_FTYPE_ALL_F32)}
    for name in dir(llama_cpp):
        if name.startswith("LLAMA_FTYPE_MOSTLY_"):
            types[name.removeprefix("LLAMA_FTYPE_MOSTLY_")] = int(getattr(llama_cpp, name))
    return types


def resolve_type(name: str, *, imatrix: bool = False) -> tuple[str, int]:
    """The canonical name and llama_ftype of a target type; an unknown one is a sentence naming the known ones."""
    types = available_types()
    wanted = name.strip().upper()
    if wanted not in types:
        known = ", ".join(t for t in BITS_PER_WEIGHT if t in types)
        raise QuantizeError(f"This llama.cpp cannot quantize to '{name}'; choose one of {known}.")
    if wanted in NEEDS_IMATRIX and not imatrix:
        raise QuantizeError(f"{wanted} needs an importance matrix; ask for one (--imatrix) or choose Q3_K_S or a "
                            "larger type.")
    return wanted, types[wanted]


def estimate_size(header: Any, type_name: str) -> int:
    """The output's expected size: weight matrices at the type's bits per weight, 1-D tensors kept in F32."""
    bits = BITS_PER_WEIGHT.get(type_name, 8.5)
    total = header.data_offset
    for t in header.tensors:
        total += int(t.n_elements * bits / 8) if len(t.shape) >= 2 else t.n_elements * 4
    return int(total * 1.02) + 65536  # alignment padding and the mixes K-quants keep for a few tensors


def default_output(source: Path, type_name: str, models_dir: Path) -> Path:
    """<models>/quantized/<name with the new type>.gguf: `x-F16.gguf` → `x-Q4_K_M.gguf`, else `x-Q4_K_M.gguf`."""
    name = source.name
    new = _TYPE_IN_NAME.sub(lambda m: f"{m[1]}{type_name}", name, count=1)
    if new == name:
        new = f"{source.stem}-{type_name}.gguf"
    return models_dir / "quantized" / new


def _check_source(source: Path) -> tuple[Any, str]:
    from llamadesk.core.errors import ModelLoadError
    from llamadesk.core.gguf_header import validate_model_file

    try:
        header = validate_model_file(source)
    except ModelLoadError as exc:
        raise QuantizeError(str(exc)) from exc
    kind = header.quantization.upper()
    if kind not in SOURCE_TYPES:
        raise QuantizeError(f"{source.name} is already quantized ({kind}); quantize from an F32, F16, BF16 or Q8_0 "
                            "file, since requantizing loses quality twice.")
    return header, kind


def quantize(
    source: Path, type_name: str, output: Path | None = None, *, models_dir: Path | None = None,
    progress: Progress | None = None, cancel: threading.Event | None = None, threads: int = 0,
    imatrix_text: str | None = None,
) -> QuantizeResult:
    """Writes `source` quantized to `type_name` at `output` (default: the models folder's quantized/ folder) and
    registers it in the library. Raises QuantizeError (QuantizeCancelled on `cancel`) with one sentence; the
    partial file never outlives a failure, a cancel or a Ctrl+C. `imatrix_text`: compute an importance matrix on
    this text first (as llama-imatrix does, in the same child process) and quantize with it."""
    from llamadesk.core.download_queue import DiskFullError, check_free_space
    from llamadesk.paths import get_paths

    started = time.monotonic()
    source = Path(source).expanduser()
    models_dir = models_dir or get_paths().models
    name, ftype = resolve_type(type_name, imatrix=imatrix_text is not None)
    header, source_type = _check_source(source)
    if BITS_PER_WEIGHT.get(name, 8.5) >= BITS_PER_WEIGHT[source_type]:
        raise QuantizeError(f"{source.name} is {source_type}; {name} would not be smaller, so choose a smaller type.")
    target = Path(output).expanduser() if output else default_output(source, name, models_dir)
    if target.suffix.lower() != ".gguf":
        raise QuantizeError(f"The output {target.name} must end in .gguf.")
    if target.exists():
        raise QuantizeError(f"{target} already exists; delete it or choose another output with -o.")
    estimate = estimate_size(header, name)

    def report(stage: str, written: int = 0, done: int = 0, total: int = 0) -> None:
        if progress is not None:
            progress(QuantizeProgress(stage, time.monotonic() - started, written, estimate, done, total))

    report("checking")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QuantizeError(storage_sentence(target.parent, exc)) from exc
    try:
        check_free_space(target.parent, estimate, f"the {name} quant of {source.name}")
    except DiskFullError as exc:
        raise QuantizeError(str(exc)) from exc
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    try:
        imatrix_chunks = _run_child(source, partial, ftype, source_type == "Q8_0", threads, report, cancel,
                                    imatrix_text)
        report("hashing", partial.stat().st_size)
        from llamadesk.core import fileinfo

        digest = fileinfo.sha256_file(partial)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    size = target.stat().st_size
    with contextlib.suppress(OSError):  # the next compare or load need not hash it again
        from llamadesk.core import fileinfo

        fileinfo.remember(get_paths().cache / "sha256.json", fileinfo.file_version_key(target), digest)
    imatrix_note = None
    if imatrix_text is not None:
        import hashlib

        imatrix_note = {"chunks": imatrix_chunks, "text_sha256": hashlib.sha256(imatrix_text.encode()).hexdigest()}
    _register(target, source, source_type, name, digest, models_dir, imatrix_note)
    report("done", size)
    return QuantizeResult(target, name, source, source_type, size, time.monotonic() - started, digest)


def _register(target: Path, source: Path, source_type: str, name: str, digest: str, models_dir: Path,
              imatrix_note: dict[str, Any] | None = None) -> None:
    """The sidecar records where the quant came from; outside the models folder it is also used in place."""
    from llamadesk.core import library

    notes = library.read_sidecar(source)
    display = str(notes.get("display_name") or _TYPE_IN_NAME.sub("", source.name).removesuffix(".gguf"))
    license, display_name = str(notes.get("license") or ""), f"{display} · {name}"
    record: dict[str, Any] = {
        "source": f"quantized by LlamaDesk from {source.name} ({source_type}) to {name}",
        "license": license,
        "display_name": display_name,
        "sha256": digest,
        "quantized_from": {"path": str(source.resolve()), "type": source_type, "sha256": notes.get("sha256"),
                           "source": notes.get("source")},
    }
    if imatrix_note is not None:
        record["imatrix"] = imatrix_note  # computed by LlamaDesk on a text (its SHA-256) of that many windows
    try:
        library.write_sidecar(target, record)
        if not target.resolve().is_relative_to(models_dir.resolve()):
            library.import_model(target, models_dir, "in_place", license=license, display_name=display_name)
    except OSError as exc:
        raise QuantizeError(storage_sentence(target, exc)) from exc


# -- the child process ----------------------------------------------------------------------------------------
_TENSOR_LINE = re.compile(r"\[\s*(\d+)/\s*(\d+)\]")


def _child_main(conn: Connection, source: str, partial: str, ftype: int, requantize: bool, threads: int,
                imatrix_text: str | None = None) -> None:
    """Runs llama_model_quantize; sends ("imatrix", i, n) per window while computing an importance matrix,
    ("tensor", i, n) as llama.cpp logs each tensor, then ("ok", windows) or ("error", llama.cpp's last error line
    or the importance matrix's sentence)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle: it kills this child
    import llama_cpp

    from llamadesk.core import llama_log

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            match = _TENSOR_LINE.search(record.getMessage())
            if match:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(("tensor", int(match[1]), int(match[2])))

    llama_log.install()
    llama_log.log.addHandler(Forward())
    llama_log.log.setLevel(logging.INFO)
    llama_log.log.propagate = False
    mark = llama_log.mark()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    params.allow_requantize = requantize
    chunks, keep = 0, None
    if imatrix_text is not None:
        from llamadesk.core import imatrix

        try:
            matrix, chunks = imatrix.compute(Path(source), imatrix_text, threads=threads,
                                             progress=lambda i, n: conn.send(("imatrix", i, n)))
        except imatrix.ImatrixError as exc:
            conn.send(("refused", str(exc)))
            conn.close()
            return
        params.imatrix, keep = imatrix.as_params(matrix)
        mark = llama_log.mark()
    code = llama_cpp.llama_model_quantize(source.encode(), partial.encode(), params)
    del keep  # the importance matrix is read during the call only
    if code == 0:
        conn.send(("ok", chunks))
    else:
        conn.send(("error", llama_log.reason_since(mark) or ""))
    conn.close()


def _run_child(source: Path, partial: Path, ftype: int, requantize: bool, threads: int,
               report: Callable[..., None], cancel: threading.Event | None, imatrix_text: str | None = None) -> int:
    """Quantizes in a child process; returns the windows the importance matrix was computed on (0: none)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_child_main,
                          args=(child, str(source), str(partial), ftype, requantize, threads, imatrix_text),
                          name="llamadesk-quantize", daemon=True)
    process.start()
    child.close()
    done, total, answer, stage = 0, 0, None, "quantizing"
    try:
        while answer is None:
            if cancel is not None and cancel.is_set():
                raise QuantizeCancelled(f"Quantizing {source.name} was stopped; the partial file was removed.")
            ready = wait([parent, process.sentinel], POLL_S)
            if parent in ready or (ready and parent.poll()):
                try:
                    message = parent.recv()
                except (EOFError, OSError):
                    message = ("died",)
                if message[0] in ("tensor", "imatrix"):
                    stage, done, total = ("quantizing" if message[0] == "tensor" else "imatrix"), message[1], message[2]
                else:
                    answer = message
            elif ready:
                answer = ("died",)
            with contextlib.suppress(OSError):
                report(stage, partial.stat().st_size if partial.exists() else 0, done, total)
    finally:
        if process.is_alive():
            process.kill()
        process.join(10)
        parent.close()
    if cancel is not None and cancel.is_set():  # Stop came as the child finished: the file is not kept either
        raise QuantizeCancelled(f"Quantizing {source.name} was stopped; the partial file was removed.")
    if answer[0] == "ok":
        return int(answer[1]) if len(answer) > 1 else 0
    if answer[0] == "refused":  # the importance matrix's own sentence
        raise QuantizeError(answer[1])
    reason = answer[1].rstrip(".") if answer[0] == "error" else ""
    if "no space" in reason.lower() or _disk_is_full(partial):
        raise QuantizeError(f"The disk holding {partial.parent} filled up while quantizing {source.name}; the partial "
                            "file was removed, so free some space and try again.")
    if answer[0] == "died":
        raise QuantizeError(f"llama.cpp stopped while quantizing {source.name} (exit code {process.exitcode}); "
                            "nothing was added.")
    raise QuantizeError(f"llama.cpp could not quantize {source.name}" + (f": {reason}." if reason else "."))


def _disk_is_full(partial: Path) -> bool:
    import shutil

    try:
        return shutil.disk_usage(partial.parent).free < (1 << 20)
    except OSError:
        return False

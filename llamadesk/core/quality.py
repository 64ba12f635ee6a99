"""Measures quantizations of one model on one text, as llama.cpp's `llama-perplexity --kl-divergence` does:
perplexity, and KL divergence and top-token agreement against the most precise file (the reference), plus speed and
memory; results are kept per file SHA-256."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import io
import logging
import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError

log = logging.getLogger(__name__)

DEFAULT_CTX = 512  # llama-perplexity's default
MIN_CTX = 128
GEN_TOKENS = 32  # single-token decodes timed for the generation speed
RESULTS_FILE = "quality.json"  # in the data folder: {sha256: {measurement key: result}}


class QualityError(LlamaDeskError):
    """Files could not be compared (different models, a short text, a file that does not load)."""


class QualityCancelled(QualityError):
    """The user stopped a comparison."""


@dataclass(frozen=True)
class FileResult:
    path: str
    name: str
    type: str  # "Q4_K_M", "F16", ...
    size_bytes: int
    bits_per_weight: float
    sha256: str
    perplexity: float
    kld: float | None  # mean KL divergence from the reference (0 for the reference itself)
    kld_p99: float | None
    top1: float | None  # fraction of scored tokens whose most likely next token is the reference's
    prompt_tps: float  # tokens/s evaluating the chunks
    gen_tps: float  # tokens/s decoding one token at a time
    memory_bytes: int  # peak resident memory over the process's before loading the file
    is_reference: bool = False


@dataclass(frozen=True)
class Comparison:
    files: list[FileResult]
    n_ctx: int
    n_chunks: int
    tokens_scored: int  # per file
    text_sha256: str
    seconds: float
    recommendation: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def reference(self) -> FileResult:
        return next(f for f in self.files if f.is_reference)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reference"] = self.reference.name
        return data


@dataclass(frozen=True)
class CompareProgress:
    file_index: int  # 0-based, reference first
    n_files: int
    name: str
    stage: str  # "checking", "loading", "scoring", "generating"
    chunk: int
    n_chunks: int
    elapsed: float


Progress = Callable[[CompareProgress], None]


# -- which files, which reference ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Model:
    path: Path
    header: Any
    bpw: float
    vocab_hash: str


def _inspect(path: Path, *, vocabulary: bool = True) -> _Model:
    """The header; with `vocabulary`, a digest of every token too (parsing a 150k-token vocabulary takes seconds, so
    a single file, which has nothing to be compared with, skips it)."""
    from llamadesk.core.errors import ModelLoadError
    from llamadesk.core.gguf_header import read_header, validate_model_file

    try:
        validate_model_file(path)
        header = read_header(path, max_string_array_items=1 << 22 if vocabulary else 0)
    except ModelLoadError as exc:
        raise QualityError(str(exc)) from exc
    tokens = (header.arrays.get("tokenizer.ggml.tokens") or []) if vocabulary else []
    digest = hashlib.sha256("\0".join(map(str, tokens)).encode("utf-8", "surrogatepass")).hexdigest()
    params = header.parameter_count or 1
    return _Model(path, header, header.tensor_data_size * 8 / params, digest)


def check_same_model(models: Sequence[_Model]) -> None:
    """Refuses, with one sentence, files that are not quantizations of one model (architecture, vocabulary)."""
    first = models[0]
    for other in models[1:]:
        a, b = first.header, other.header
        what = ""
        if a.architecture != b.architecture:
            what = f"architectures differ ({a.architecture} and {b.architecture})"
        elif a.n_vocab != b.n_vocab:
            what = f"vocabularies differ ({a.n_vocab} and {b.n_vocab} tokens)"
        elif first.vocab_hash != other.vocab_hash:
            what = "their vocabularies hold different tokens"
        elif {t.name: t.shape for t in a.tensors} != {t.name: t.shape for t in b.tensors}:
            what = "their tensors have different shapes"
        if what:
            raise QualityError(f"{first.path.name} and {other.path.name} are not the same model: {what}; compare "
                               "quantizations of one model.")


# -- the measurement ----------------------------------------------------------------------------------------------
def compare(
    paths: Sequence[Path], text: str, *, n_ctx: int | None = None, threads: int | None = None,
    progress: Progress | None = None, cancel: threading.Event | None = None, work_dir: Path | None = None,
    keep: bool = True,
    speed: bool = True,
) -> Comparison:
    """Scores every file on `text` in chunks of n_ctx tokens (the second half of each chunk), the most precise file
    first: its log-probabilities go to a temporary file, and each other file is compared with them.
    n_ctx None: 512, or less (down to 128) when the text is shorter. `keep`: store the results per SHA-256.
    `speed`: also time GEN_TOKENS single-token decodes (gen_tps); without it gen_tps is 0 and the run does what
    `llama-perplexity` does, no more (bench/bench_quality.py times the two against each other)."""
    from llamadesk.core import fileinfo
    from llamadesk.paths import get_paths

    started = time.monotonic()
    notes: list[str] = []
    if len(paths) < 1:
        raise QualityError("Name at least one model file to measure.")
    resolved = [Path(p).expanduser() for p in paths]
    if len({p.resolve() for p in resolved}) != len(resolved):
        raise QualityError("The same file is named twice; name each file once.")
    models = [_inspect(p, vocabulary=len(resolved) > 1) for p in resolved]
    check_same_model(models)
    models.sort(key=lambda m: -m.bpw)  # the most precise file is the reference
    shas = {m.path: fileinfo.sha256_cached(m.path) for m in models}
    text_sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    threads = threads or _default_threads()

    def report(i: int, stage: str, chunk: int = 0, n_chunks: int = 0) -> None:
        if cancel is not None and cancel.is_set():
            raise QualityCancelled("The comparison was stopped; nothing was stored.")
        if progress is not None:
            progress(CompareProgress(i, len(models), models[i].path.name, stage, chunk, n_chunks,
                                     time.monotonic() - started))

    work_dir = work_dir or get_paths().cache
    work_dir.mkdir(parents=True, exist_ok=True)
    results: list[FileResult] = []
    report(0, "checking")
    plan = _plan(_tokenize(models[0].path, text), text, n_ctx, models[0])
    if n_ctx is None and plan.n_ctx != DEFAULT_CTX:
        notes.append(f"The text holds {len(plan.tokens)} tokens, so the context is {plan.n_ctx} instead of "
                     f"{DEFAULT_CTX}.")
    n_vocab = int(models[0].header.n_vocab)
    with tempfile.TemporaryDirectory(prefix="quality-", dir=work_dir) as tmp, \
            contextlib.closing(_ReferenceStore(Path(tmp), plan, n_vocab, needed=len(models) > 1)) as ref_store:
        for i, model in enumerate(models):
            report(i, "loading")
            with _Scorer(model.path, plan.n_ctx, threads) as scorer:
                if scorer.n_vocab != n_vocab or (i > 0 and scorer.tokenize(text) != plan.tokens):
                    raise QualityError(f"{model.path.name} reads the text into other tokens than "
                                       f"{models[0].path.name}; they are not the same model.")
                measured = _score_file(scorer, plan, ref_store, is_reference=(i == 0),
                                       report=functools.partial(report, i), speed=speed)
            results.append(FileResult(
                path=str(model.path), name=model.path.name, type=model.header.quantization,
                size_bytes=model.path.stat().st_size, bits_per_weight=round(model.bpw, 2), sha256=shas[model.path],
                is_reference=(i == 0), **measured))
    comparison = Comparison(results, plan.n_ctx, plan.n_chunks, plan.n_chunks * plan.scored_per_chunk, text_sha,
                            time.monotonic() - started, notes=notes)
    comparison = Comparison(**{**comparison.__dict__, "recommendation": recommend(comparison)})
    if keep:
        store_results(comparison)
    return comparison


def _default_threads() -> int:
    from llamadesk.core.engines.local import default_threads

    return default_threads()


@dataclass(frozen=True)
class _Plan:
    tokens: list[int]
    n_ctx: int
    n_chunks: int
    bos: int | None  # replaces each chunk's first token, as llama-perplexity does, when the model adds one

    @property
    def first(self) -> int:
        return self.n_ctx // 2

    @property
    def scored_per_chunk(self) -> int:
        return self.n_ctx - 1 - self.first


def _tokenize(path: Path, text: str) -> tuple[list[int], int | None]:
    """The text's tokens (with BOS where the model adds one) and that BOS, from the vocabulary alone."""
    import llama_cpp

    from llamadesk.core import llama_log

    llama_log.install()
    with contextlib.redirect_stderr(io.StringIO()):
        vocab_llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=True)
    try:
        tokens = list(vocab_llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        vocab = llama_cpp.llama_model_get_vocab(vocab_llama.model)
        bos = int(llama_cpp.llama_vocab_bos(vocab)) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
    finally:
        vocab_llama.close()
    return tokens, bos


def _plan(tokenized: tuple[list[int], int | None], text: str, n_ctx: int | None, model: _Model) -> _Plan:
    tokens, bos = tokenized
    train = model.header.n_ctx_train or 1 << 20
    if n_ctx is None:
        n_ctx = DEFAULT_CTX
        while n_ctx > MIN_CTX and len(tokens) < n_ctx:
            n_ctx //= 2
    if n_ctx > train:
        raise QualityError(f"A context of {n_ctx} tokens is longer than {model.path.name} was trained for ({train}); "
                           "choose a smaller --ctx.")
    if n_ctx < 16:
        raise QualityError("A context of fewer than 16 tokens measures nothing; choose a larger --ctx.")
    if len(tokens) < n_ctx:
        raise QualityError(f"The text holds {len(tokens)} tokens, fewer than one context of {n_ctx}; give a longer "
                           "text or a smaller --ctx.")
    return _Plan(tokens, n_ctx, len(tokens) // n_ctx, bos)


class _ReferenceStore:
    """The reference's log-probabilities of every scored token, in a temporary file (float32) read back a chunk at a
    time with plain reads: big models × long texts do not fit in memory (151,936 tokens of vocabulary × 255 scored
    per chunk is 155 MB a chunk), and unlike a memory map the page cache does not count as this process's memory."""

    def __init__(self, folder: Path, plan: _Plan, n_vocab: int, *, needed: bool = True) -> None:
        from llamadesk.core.download_queue import DiskFullError, check_free_space

        self.shape = (plan.scored_per_chunk, n_vocab)
        self.chunk_bytes = 4 * math.prod(self.shape)
        self._file: Any = None
        if not needed:  # one file alone: nothing will be compared with it, so nothing is written
            return
        try:
            check_free_space(folder, self.chunk_bytes * plan.n_chunks, "the reference's log-probabilities")
        except DiskFullError as exc:
            raise QualityError(str(exc)) from exc
        self.path = folder / "reference.f32"
        self._file = open(self.path, "w+b")  # noqa: SIM115 - closed by close()

    def write(self, chunk: int, logp: Any) -> None:
        if self._file is None:
            return
        self._file.seek(chunk * self.chunk_bytes)
        self._file.write(logp.astype("float32", copy=False).tobytes())

    def read(self, chunk: int) -> Any:
        import numpy as np

        self._file.seek(chunk * self.chunk_bytes)
        data = self._file.read(self.chunk_bytes)
        return np.frombuffer(data, dtype=np.float32).reshape(self.shape)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _score_file(scorer: _Scorer, plan: _Plan, ref_store: _ReferenceStore, *, is_reference: bool,
                report: Callable[[str, int, int], None], speed: bool = True) -> dict[str, Any]:
    import numpy as np

    memory = scorer.memory
    nll_sum, n_scored = 0.0, 0
    kld_parts: list[Any] = []
    same_top = 0
    decode_seconds = 0.0
    scorer.score(plan.tokens[:min(plan.n_ctx, 32)], 0)  # warm up: weights paged in, threads started, untimed
    # Two buffers reused for every chunk (n_ctx/2 × n_vocab float32 each, 50 MB for a 49k vocabulary): the log-softmax
    # is computed in place, not in four fresh arrays a chunk (their page faults cost as much as the arithmetic).
    rows = np.empty((plan.n_ctx - plan.first, scorer.n_vocab), dtype=np.float32)
    work = np.empty((plan.scored_per_chunk, scorer.n_vocab), dtype=np.float32)
    for c in range(plan.n_chunks):
        report("scoring", c, plan.n_chunks)
        chunk = plan.tokens[c * plan.n_ctx:(c + 1) * plan.n_ctx]
        if plan.bos is not None:
            chunk[0] = plan.bos
        t0 = time.perf_counter()
        scorer.score(chunk, plan.first, out=rows)  # rows: positions first .. n_ctx-1
        decode_seconds += time.perf_counter() - t0
        memory.sample()
        logp = rows[:plan.scored_per_chunk]  # the log-softmax, in place
        logp -= logp.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp, out=work).sum(axis=1, keepdims=True))
        targets = np.asarray(chunk[plan.first + 1:], dtype=np.int64)
        nll_sum -= float(logp[np.arange(len(targets)), targets].astype(np.float64).sum())
        n_scored += len(targets)
        if is_reference:
            ref_store.write(c, logp)
        else:
            ref = ref_store.read(c)
            kld_parts.append((np.exp(ref) * (ref - logp)).sum(axis=1, dtype=np.float64))
            same_top += int((ref.argmax(axis=1) == logp.argmax(axis=1)).sum())
    gen_tps = 0.0
    if speed:
        report("generating", plan.n_chunks, plan.n_chunks)
        gen_tps = scorer.generation_speed(plan.tokens[:GEN_TOKENS + 1])
    memory.sample()
    kld = np.concatenate(kld_parts) if kld_parts else None
    return {
        "perplexity": math.exp(nll_sum / n_scored),
        "kld": 0.0 if is_reference else float(kld.mean()) if kld is not None else None,
        "kld_p99": 0.0 if is_reference else float(np.percentile(kld, 99)) if kld is not None else None,
        "top1": 1.0 if is_reference else same_top / n_scored,
        "prompt_tps": plan.n_chunks * plan.n_ctx / decode_seconds if decode_seconds else 0.0,
        "gen_tps": gen_tps,
        "memory_bytes": memory.peak_delta(),
    }


class _PeakMemory:
    """The process's peak resident memory over what it held before the model loaded: Linux's VmHWM (reset through
    /proc/self/clear_refs when the file is loaded) where it can, else the largest of the samples taken after each
    chunk."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._hwm_reset = True
        except OSError:
            self._hwm_reset = False
        self.before = int(self._process.memory_info().rss)
        self._peak = self.before

    def sample(self) -> None:
        self._peak = max(self._peak, int(self._process.memory_info().rss))

    def peak_delta(self) -> int:
        hwm = _read_hwm() if self._hwm_reset else None
        return max(0, max(self._peak, hwm or 0) - self.before)


def _read_hwm() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class _Scorer:
    """One file loaded for scoring: a llama.cpp context of n_ctx tokens evaluated a whole chunk per decode, with
    outputs only for the scored half (llama-perplexity's way, through the low-level API)."""

    def __init__(self, path: Path, n_ctx: int, threads: int) -> None:
        import llama_cpp

        from llamadesk.core import llama_log
        from llamadesk.core.engines.local_load import ParamsHook

        self.path, self.n_ctx = path, n_ctx
        self.memory = _PeakMemory()
        llama_log.install()
        ParamsHook.install()
        mark = llama_log.mark()
        self.llama: Any = None
        try:
            with ParamsHook.active(None, None), contextlib.redirect_stderr(io.StringIO()):
                self.llama = llama_cpp.Llama(
                    model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=min(512, n_ctx), n_threads=threads,
                    n_threads_batch=threads, n_gpu_layers=0, logits_all=False, verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            reason = (llama_log.reason_since(mark) or "llama.cpp could not load it").rstrip(".")
            raise QualityError(f"{path.name} could not be loaded: {reason}.") from exc
        self._ctx = self.llama.ctx
        vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self._batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)

    def __enter__(self) -> _Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        import llama_cpp

        if getattr(self, "_batch", None) is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "llama", None) is not None:
            self.llama.close()
            self.llama = None

    def tokenize(self, text: str) -> list[int]:
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    def _decode(self, tokens: Sequence[int], start_pos: int, outputs_from: int) -> None:
        import llama_cpp

        batch = self._batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = start_pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i >= outputs_from
        batch.n_tokens = len(tokens)
        code = llama_cpp.llama_decode(self._ctx, batch)
        if code != 0:
            raise QualityError(f"llama.cpp could not evaluate {self.path.name} (llama_decode returned {code}); "
                               "try a smaller --ctx.")

    def _clear(self) -> None:
        import llama_cpp

        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)

    def score(self, chunk: Sequence[int], first: int, out: Any = None) -> Any:
        """The logits (float32, one row per position from `first` to the chunk's end) of one chunk, into `out` when
        given (an array of that shape)."""
        import llama_cpp
        import numpy as np

        self._clear()
        self._decode(chunk, 0, first)
        n_out = len(chunk) - first
        pointer = llama_cpp.llama_get_logits(self._ctx)
        view = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(n_out, self.n_vocab))
        if out is None:
            return view.copy()
        np.copyto(out, view)
        return out

    def generation_speed(self, tokens: Sequence[int]) -> float:
        """Tokens/s decoding one token at a time after the first (the text's own tokens, as if generated)."""
        self._clear()
        self._decode(tokens[:1], 0, 0)
        t0 = time.perf_counter()
        for i, token in enumerate(tokens[1:], start=1):
            self._decode([token], i, 0)
        seconds = time.perf_counter() - t0
        return (len(tokens) - 1) / seconds if seconds > 0 else 0.0


# -- the verdict ----------------------------------------------------------------------------------------------------
AGREEMENT_GOAL = 0.9  # the smallest file keeping this share of the reference's top tokens is recommended


def recommend(comparison: Comparison) -> str:
    """One sentence: the smallest file that keeps AGREEMENT_GOAL of the reference's top tokens, with its memory and
    speed against the reference; or the most faithful one when none does."""
    ref = comparison.reference
    others = [f for f in comparison.files if not f.is_reference]
    if not others:
        return f"{ref.type} has a perplexity of {ref.perplexity:.2f} on this text; add quantizations to compare."
    good = [f for f in others if (f.top1 or 0) >= AGREEMENT_GOAL]
    pick = min(good, key=memory_of) if good else max(others, key=lambda f: f.top1 or 0)
    share = f"{(pick.top1 or 0):.0%}"
    memory = memory_of(pick) / max(memory_of(ref), 1)
    ref_speed, pick_speed = (ref.gen_tps, pick.gen_tps) if ref.gen_tps and pick.gen_tps else (ref.prompt_tps,
                                                                                              pick.prompt_tps)
    speed = pick_speed / ref_speed if ref_speed else 1.0
    sentence = (f"{pick.type} keeps {share} of {ref.type}'s top tokens at {memory:.0%} of its memory and "
                f"{speed:.1f}× its speed here.")
    if not good:
        sentence = (f"No file keeps {AGREEMENT_GOAL:.0%} of {ref.type}'s top tokens here; {pick.type} comes closest: "
                    f"it keeps {share} at {memory:.0%} of {ref.type}'s memory and {speed:.1f}× its speed.")
    return sentence


def memory_of(f: FileResult) -> int:
    """The measured peak memory, or the file's size where the measurement saw nothing (a tiny model)."""
    return f.memory_bytes if f.memory_bytes > f.size_bytes // 2 else f.size_bytes


# -- results per file -------------------------------------------------------------------------------------------
def store_results(comparison: Comparison, results_file: Path | None = None) -> None:
    """Keeps each file's result under its SHA-256 (and the text, context and reference it was measured with)."""
    from llamadesk.core import fileinfo
    from llamadesk.paths import get_paths

    results_file = results_file or get_paths().data / RESULTS_FILE
    ref = comparison.reference
    key = f"text={comparison.text_sha256[:16]};ctx={comparison.n_ctx};reference={ref.sha256[:16]}"
    for f in comparison.files:
        known = fileinfo.recall(results_file, f.sha256)
        entries = dict(known) if isinstance(known, dict) else {}
        entries[key] = {**asdict(f), "reference_type": ref.type, "n_ctx": comparison.n_ctx,
                        "tokens_scored": comparison.tokens_scored, "measured_at": time.time()}
        fileinfo.remember(results_file, f.sha256, entries)


def stored_results(sha256: str, results_file: Path | None = None) -> list[dict[str, Any]]:
    """What earlier comparisons measured for the file with this SHA-256, newest first."""
    from llamadesk.core import fileinfo
    from llamadesk.paths import get_paths

    known = fileinfo.recall(results_file or get_paths().data / RESULTS_FILE, sha256)
    entries = list(known.values()) if isinstance(known, dict) else []
    return sorted((e for e in entries if isinstance(e, dict)), key=lambda e: -float(e.get("measured_at", 0)))


def read_text(path: Path) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise QualityError(f"{path} could not be read ({exc.strerror or exc}).") from exc


def eval_texts() -> dict[str, Path]:
    """The evaluation texts that come with LlamaDesk, by name (assets/eval/*.txt)."""
    from llamadesk.paths import resource_path

    folder = resource_path("eval")
    return {p.stem: p for p in sorted(folder.glob("*.txt"))} if folder.is_dir() else {}


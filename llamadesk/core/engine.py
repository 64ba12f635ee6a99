"""The in-process llama.cpp engine: load one GGUF, stream chat replies as events, stop, report figures."""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import io
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from llamadesk import __version__
from llamadesk.core import fileinfo, hardware, llama_log, probe
from llamadesk.core.engine_api import (
    GPU_LAYERS_ALL,
    Done,
    FinishReason,
    GenerationStats,
    LoadOptions,
    LoadProgress,
    Message,
    ModelInfo,
    StreamEvent,
    Token,
)
from llamadesk.core.errors import GenerationError, InvalidSetting, ModelLoadError, TemplateError
from llamadesk.core.gguf_header import validate_model_file
from llamadesk.core.sampling import MAX_SEED, SamplingParams
from llamadesk.core.templates import TemplateRenderer, choose_template

log = logging.getLogger(__name__)

MIN_CTX, MAX_CTX = 256, 1_048_576


def default_threads() -> int:
    """Physical cores; on machines with many, one is left for the GUI so the window stays responsive."""
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return cores - 1 if cores > 4 else cores


class _ParamsHook:
    """Llama() takes neither a progress callback nor flash attention "auto": it reads
    llama_model_default_params() and passes its context params to llama_init_from_model(). Both are
    wrapped (in llama_cpp.llama_cpp, the module Llama() calls them through) to apply the loading thread's
    settings, kept thread-local."""

    _local = threading.local()
    _installed = False

    @classmethod
    def install(cls) -> None:
        if cls._installed:
            return
        import llama_cpp.llama_cpp as lcpp

        default_params, init_from_model = lcpp.llama_model_default_params, lcpp.llama_init_from_model

        def model_default_params() -> Any:
            params = default_params()
            callback = getattr(cls._local, "callback", None)
            if callback is not None:
                params.progress_callback = callback
            return params

        def init_context(model: Any, params: Any) -> Any:
            flash_attn_type = getattr(cls._local, "flash_attn_type", None)
            if flash_attn_type is not None:
                params.flash_attn_type = flash_attn_type
            return init_from_model(model, params)

        lcpp.llama_model_default_params = model_default_params
        lcpp.llama_init_from_model = init_context
        cls._installed = True

    @classmethod
    @contextlib.contextmanager
    def active(cls, progress: LoadProgress | None, flash_attn: bool | None) -> Iterator[None]:
        import llama_cpp

        def on_progress(value: float, _data: ctypes.c_void_p) -> bool:
            try:
                return bool(progress(min(max(value, 0.0), 1.0))) if progress is not None else True
            except Exception:  # an exception must not unwind through C
                log.exception("Load progress callback failed")
                return True

        cls._local.callback = llama_cpp.llama_progress_callback(on_progress) if progress is not None else None
        cls._local.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO if flash_attn is None else None
        try:
            yield
        finally:
            cls._local.callback = None
            cls._local.flash_attn_type = None


@contextlib.contextmanager
def _llama_log_lines(lines: list[str], down_to: int) -> Iterator[None]:
    """Collects llama.cpp's log lines down to level `down_to` into `lines` while loading (where layers and
    buffers went, whether flash attention is on, a cancel); the logger passes on only what it did before.
    Layer placement is logged at DEBUG, about 2,000 lines for a small model: asked for only with GPU layers."""
    logger = llama_log.log
    threshold, level = logger.getEffectiveLevel(), logger.level

    def keep(record: logging.LogRecord) -> bool:
        lines.append(record.getMessage())
        return record.levelno >= threshold

    logger.addFilter(keep)
    logger.setLevel(min(threshold, down_to))
    try:
        yield
    finally:
        logger.removeFilter(keep)
        logger.setLevel(level)


class _StopText:
    """Holds back text that may be the start of a stop string, so a stop string never reaches the user."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to show, whether a stop string was found)."""
        self.pending += text
        for stop in self.stops:
            index = self.pending.find(stop)
            if index >= 0:
                out, self.pending = self.pending[:index], ""
                return out, True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class LlamaCppEngine:
    """Owns one llama_cpp.Llama. Not thread-safe: one thread calls every method; other threads only
    set the `cancel` event they passed to `stream` or the `progress` callback's answer to `load`."""

    def __init__(self) -> None:
        self._llama: Any = None
        self._info: ModelInfo | None = None
        self._renderer: TemplateRenderer | None = None
        self._cancel: threading.Event | None = None
        self._abort_cb: Any = None
        self._no_abort: Any = None

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    def capabilities(self) -> dict[str, Any]:
        import llama_cpp

        return {
            "kind": "llama.cpp in-process",
            "llama_cpp_python": llama_cpp.__version__,
            # not llama_supports_gpu_offload(): it is true on CPU builds that have the RPC backend
            "gpu_offload": any(d.can_offload for d in hardware.list_devices()),
            "streaming": True,
            "stop_during_prompt": True,
        }

    # -- loading ---------------------------------------------------------------------------------

    def load(self, options: LoadOptions, progress: LoadProgress | None = None) -> ModelInfo:
        path = Path(options.path)
        if not MIN_CTX <= options.n_ctx <= MAX_CTX:
            raise ModelLoadError(f"Context length must be between {MIN_CTX} and {MAX_CTX} tokens.")
        try:
            options.check()
        except InvalidSetting as exc:  # every load failure is a ModelLoadError for callers; same sentence
            raise ModelLoadError(str(exc)) from exc
        header = validate_model_file(path)  # raises ModelLoadError with a sentence for broken files
        # Some malformed files make llama.cpp abort the whole process: read the vocabulary in a child first
        # (once per file version; remembered in the cache folder).
        probe.probe_model(path)
        self.unload()
        llama_log.install()
        _ParamsHook.install()
        n_threads = options.n_threads or default_threads()
        started = time.perf_counter()
        n_all = (header.n_layers or 0) + 1  # llama.cpp counts the output layer as one more
        asked = n_all if options.n_gpu_layers == GPU_LAYERS_ALL and header.n_layers else options.n_gpu_layers
        gpus = [d.name for d in hardware.list_devices() if d.can_offload] if asked != 0 else []
        # Out of GPU memory: try again with fewer layers (halving, then 0); without a GPU retrying cannot help.
        attempts = hardware.fallback_layers(min(asked, n_all)) if asked > 0 and gpus else [asked]
        for n_gpu in attempts:
            try:
                llama, placement = self._new_llama(path, options, n_threads, n_gpu, progress)
                break
            except _LoadFailed as failed:
                if n_gpu == attempts[-1] or not hardware.is_memory_failure(failed.reason):
                    raise ModelLoadError(_load_failure_sentence(path, failed.reason, options)) from failed.cause
                log.warning("%s did not fit with %d GPU layers (%s); trying fewer", path.name, n_gpu, failed.reason)
        llama.verbose = False  # from here on, no per-request prints to stderr

        try:
            template = choose_template(
                header.chat_template,
                header.architecture,
                lambda text: len(llama.tokenize(text.encode(), add_bos=False, special=True)) == 1,
                options.chat_template,
            )
            bos = llama.token_bos()
            eos = llama.token_eos()
            self._renderer = TemplateRenderer(
                template,
                bos_token=llama._model.token_get_text(bos) if bos >= 0 else "",
                eos_token=llama._model.token_get_text(eos) if eos >= 0 else "",
            )
        except TemplateError:
            llama.close()
            raise
        self._install_abort_callback(llama)
        self._llama = llama
        placed = (
            placement.gpu_layers if placement.layer_devices or not gpus else (n_all if n_gpu < 0 else min(n_gpu, n_all))
        )
        self._info = ModelInfo(
            path=path,
            file_name=path.name,
            size_bytes=path.stat().st_size,
            sha256=fileinfo.sha256_cached(path),
            architecture=header.architecture,
            quantization=header.quantization,
            n_ctx=llama.n_ctx(),
            n_ctx_train=header.n_ctx_train or 0,
            n_layers=header.n_layers or 0,
            n_gpu_layers=placed,
            n_threads=n_threads,
            template_name=template.name,
            template_source=template.source,
            has_chat_template=header.chat_template is not None,
            load_seconds=time.perf_counter() - started,
            n_gpu_layers_requested=options.n_gpu_layers,
            offload_note=hardware.offload_note(
                asked, placed, n_all, placement.gpu_devices or gpus, out_of_memory=n_gpu != attempts[0]
            ),
            flash_attn=placement.flash_attn if options.flash_attn is None else ("on" if options.flash_attn else "off"),
            type_k=options.type_k,
            type_v=options.type_v,
            use_mmap=options.use_mmap,
            use_mlock=options.use_mlock,
            gpu_buffers={k: v for k, v in placement.buffers.items() if not k.startswith("CPU")},
        )
        log.info("Loaded %s in %.2f s (template %s)", path.name, self._info.load_seconds, template.name)
        if self._info.offload_note:
            log.info("%s", self._info.offload_note)
        return self._info

    def _new_llama(
        self, path: Path, options: LoadOptions, n_threads: int, n_gpu_layers: int, progress: LoadProgress | None
    ) -> tuple[Any, hardware.Placement]:
        import llama_cpp

        mark = llama_log.mark()
        captured = io.StringIO()
        lines: list[str] = []
        try:
            # verbose=True keeps Llama() from dup2()-ing the whole process's stdout/stderr to /dev/null;
            # the few lines it prints with Python's print() are captured here and logged at debug level.
            with _ParamsHook.active(progress, options.flash_attn), contextlib.redirect_stderr(captured), \
                    _llama_log_lines(lines, logging.DEBUG if n_gpu_layers else logging.INFO):  # fmt: skip
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=options.n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    n_gpu_layers=n_gpu_layers,
                    flash_attn=bool(options.flash_attn),  # None ("auto") is set by _ParamsHook
                    type_k=_GGML_TYPES[options.type_k],
                    type_v=_GGML_TYPES[options.type_v],
                    use_mmap=options.use_mmap,
                    use_mlock=options.use_mlock,
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            reason = llama_log.reason_since(mark)
            if progress is not None and any("cancelled model load" in line for line in lines):
                raise ModelLoadError(f"Loading {path.name} was cancelled.") from exc
            raise _LoadFailed(reason, exc) from exc
        finally:
            log.debug("llama_cpp.Llama() printed: %s", captured.getvalue()[:20000])
        return llama, hardware.Placement.parse(lines)

    def _install_abort_callback(self, llama: Any) -> None:
        """Lets a Stop interrupt a long prompt evaluation inside llama_decode (it then returns 2)."""
        import llama_cpp

        def should_abort(_data: ctypes.c_void_p) -> bool:
            cancel = self._cancel
            return cancel is not None and cancel.is_set()

        self._abort_cb = llama_cpp.ggml_abort_callback(should_abort)
        self._no_abort = llama_cpp.ggml_abort_callback()  # a NULL function pointer: no callback
        llama_cpp.llama_set_abort_callback(llama.ctx, self._abort_cb, None)

    def unload(self) -> None:
        if self._llama is not None:
            self._llama.close()
        self._llama = None
        self._info = None
        self._renderer = None

    def close(self) -> None:
        self.unload()

    # -- generation ------------------------------------------------------------------------------

    def _prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        if self._llama is None or self._renderer is None:
            raise GenerationError("No model is loaded; choose a model first.")
        prompt = self._renderer.render(messages)
        # The template writes the BOS token itself when it wants one; parse special tokens in the text.
        tokens: list[int] = self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self._prompt_tokens(messages))

    def stream(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[StreamEvent]:
        import llama_cpp

        cancel = cancel or threading.Event()
        tokens = self._prompt_tokens(messages)
        llama = self._llama
        info = self._info
        assert llama is not None and info is not None and self._renderer is not None
        n_ctx = llama.n_ctx()
        if len(tokens) >= n_ctx - 1:
            raise GenerationError(
                f"The conversation ({len(tokens)} tokens) no longer fits the model's context of {n_ctx} tokens; "
                "start a new chat or load the model with a larger context."
            )
        cached = _common_prefix(llama.input_ids[: llama.n_tokens], tokens)
        seed = params.seed if params.seed is not None else random.SystemRandom().randint(0, MAX_SEED)
        llama.set_seed(seed)
        llama.last_n_tokens_size = params.repeat_last_n
        budget = min(params.max_tokens, n_ctx - len(tokens))
        vocab = llama._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stop_text = _StopText(self._renderer.stop)
        generated = 0
        ttft = 0.0
        first_at = 0.0
        reason = FinishReason.LENGTH
        error: str | None = None
        at_start = True
        started = time.perf_counter()
        self._cancel = cancel
        if self._abort_cb is not None:  # for the prompt's evaluation
            llama_cpp.llama_set_abort_callback(llama.ctx, self._abort_cb, None)
        gen = llama.generate(
            tokens,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            typical_p=params.typical_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
            frequency_penalty=params.frequency_penalty,
            presence_penalty=params.presence_penalty,
            mirostat_mode=params.mirostat_mode,
            mirostat_tau=params.mirostat_tau,
            mirostat_eta=params.mirostat_eta,
        )
        try:
            if cancel.is_set():
                reason = FinishReason.CANCELLED
            else:
                for token in gen:
                    if generated == 0:
                        first_at = time.perf_counter()
                        ttft = first_at - started
                        # The prompt is evaluated: from here a Stop is seen between tokens. The callback runs in
                        # Python for every graph node (with the GIL, while the other threads wait): ~5 % of the
                        # decode speed, more when the GUI thread holds the GIL.
                        if self._no_abort is not None:
                            llama_cpp.llama_set_abort_callback(llama.ctx, self._no_abort, None)
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        reason = FinishReason.STOP
                        break
                    generated += 1
                    text, stopped = stop_text.feed(decoder.decode(llama._model.detokenize([token])))
                    if at_start:  # SentencePiece models start a reply with the space of "▁Word"
                        text = text.lstrip()
                        at_start = not text
                    if text:
                        yield Token(text)
                    if stopped:
                        reason = FinishReason.STOP
                        break
                    if cancel.is_set():
                        reason = FinishReason.CANCELLED
                        break
                    if generated >= budget:
                        reason = FinishReason.LENGTH
                        break
        except RuntimeError as exc:  # llama_decode returned 2: aborted by the callback; else a real failure
            if cancel.is_set():
                reason = FinishReason.CANCELLED
            else:
                reason = FinishReason.ERROR
                error = f"Generation failed: {llama_log.reason_since(0) or exc}."
        finally:
            gen.close()
            self._cancel = None
        if reason is not FinishReason.STOP:
            tail = stop_text.flush() + decoder.decode(b"", final=True)
            if tail and not at_start:
                yield Token(tail)
        ended = time.perf_counter()
        stats = GenerationStats(
            prompt_tokens=len(tokens),
            cached_tokens=cached,
            generated_tokens=generated,
            ttft_s=ttft,
            tokens_per_s=(generated - 1) / (ended - first_at) if generated > 1 and ended > first_at else 0.0,
            total_s=ended - started,
            finish_reason=reason,
            seed=seed,
            error=error,
        )
        yield Done(stats, self._receipt(params, stats))
        if error is not None:
            raise GenerationError(error)

    def _receipt(self, params: SamplingParams, stats: GenerationStats) -> dict[str, Any]:
        import llama_cpp

        info = self._info
        assert info is not None
        return {
            "model_file": info.file_name,
            "sha256": info.sha256,
            "quantization": info.quantization,
            "architecture": info.architecture,
            "n_ctx": info.n_ctx,
            "template": info.template_name,
            "template_source": info.template_source,
            "sampling": {**params.to_dict(), "seed": stats.seed},
            "seed": stats.seed,
            **{k: v for k, v in stats.to_dict().items() if k not in ("seed", "error")},
            "llama_cpp_version": llama_cpp.__version__,
            "app_version": __version__,
        }


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class _LoadFailed(Exception):
    def __init__(self, reason: str | None, cause: Exception) -> None:
        super().__init__(reason or str(cause))
        self.reason, self.cause = reason, cause


_GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}  # enum ggml_type


def _load_failure_sentence(path: Path, reason: str | None, options: LoadOptions) -> str:
    text = (reason or "").rstrip(".")
    lower = text.lower()
    if "unknown model architecture" in lower:
        return f"{path.name} uses a model architecture this version of llama.cpp does not support ({text})."
    if "out of memory" in lower or "failed to allocate" in lower or "unable to allocate" in lower:
        return (
            f"{path.name} does not fit in memory at a context of {options.n_ctx} tokens; "
            "try a smaller context length or a smaller quantization."
        )
    if "failed to create context" in lower or "failed to initialize the context" in lower:
        return f"{path.name} loaded, but its context of {options.n_ctx} tokens could not be created; try a smaller one."
    if text:
        return f"{path.name} could not be loaded: {text}."
    return f"{path.name} could not be loaded; see the log for llama.cpp's reason."

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
from llamadesk.core import fileinfo, llama_log
from llamadesk.core.engine_api import (
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
from llamadesk.core.errors import GenerationError, ModelLoadError, TemplateError
from llamadesk.core.gguf_header import validate_model_file
from llamadesk.core.sampling import MAX_SEED, SamplingParams
from llamadesk.core.templates import TemplateRenderer, choose_template

log = logging.getLogger(__name__)

MIN_CTX, MAX_CTX = 256, 1_048_576


def default_threads() -> int:
    """Physical cores; on machines with many, one is left for the GUI so the window stays responsive."""
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return cores - 1 if cores > 4 else cores


class _ProgressHook:
    """Llama() has no progress_callback argument, but reads llama_model_default_params() once while
    loading: this wraps that function so the loading thread's callback (thread-local) is installed."""

    _local = threading.local()
    _installed = False

    @classmethod
    def install(cls) -> None:
        if cls._installed:
            return
        import llama_cpp

        original = llama_cpp.llama_model_default_params

        def default_params() -> Any:
            params = original()
            callback = getattr(cls._local, "callback", None)
            if callback is not None:
                params.progress_callback = callback
            return params

        llama_cpp.llama_model_default_params = default_params
        cls._installed = True

    @classmethod
    @contextlib.contextmanager
    def active(cls, progress: LoadProgress | None) -> Iterator[None]:
        import llama_cpp

        if progress is None:
            yield
            return

        def on_progress(value: float, _data: ctypes.c_void_p) -> bool:
            try:
                return bool(progress(min(max(value, 0.0), 1.0)))
            except Exception:  # an exception must not unwind through C
                log.exception("Load progress callback failed")
                return True

        cls._local.callback = llama_cpp.llama_progress_callback(on_progress)
        try:
            yield
        finally:
            cls._local.callback = None


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

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    def capabilities(self) -> dict[str, Any]:
        import llama_cpp

        return {
            "kind": "llama.cpp in-process",
            "llama_cpp_python": llama_cpp.__version__,
            "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
            "streaming": True,
            "stop_during_prompt": True,
        }

    # -- loading ---------------------------------------------------------------------------------

    def load(self, options: LoadOptions, progress: LoadProgress | None = None) -> ModelInfo:
        path = Path(options.path)
        if not MIN_CTX <= options.n_ctx <= MAX_CTX:
            raise ModelLoadError(f"Context length must be between {MIN_CTX} and {MAX_CTX} tokens.")
        header = validate_model_file(path)  # raises ModelLoadError with a sentence for broken files
        self.unload()
        import llama_cpp

        llama_log.install()
        _ProgressHook.install()
        n_threads = options.n_threads or default_threads()
        started = time.perf_counter()
        mark = llama_log.mark()
        captured = io.StringIO()
        try:
            # verbose=True keeps Llama() from dup2()-ing the whole process's stdout/stderr to /dev/null;
            # the few lines it prints with Python's print() are captured here and logged at debug level.
            with _ProgressHook.active(progress), contextlib.redirect_stderr(captured):
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=options.n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    n_gpu_layers=options.n_gpu_layers,
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            reason = llama_log.reason_since(mark)
            if progress is not None and reason and "cancelled" in reason.lower():
                raise ModelLoadError(f"Loading {path.name} was cancelled.") from exc
            raise ModelLoadError(_load_failure_sentence(path, reason, options)) from exc
        finally:
            log.debug("llama_cpp.Llama() printed: %s", captured.getvalue()[:20000])
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
            n_gpu_layers=options.n_gpu_layers,
            n_threads=n_threads,
            template_name=template.name,
            template_source=template.source,
            has_chat_template=header.chat_template is not None,
            load_seconds=time.perf_counter() - started,
        )
        log.info("Loaded %s in %.2f s (template %s)", path.name, self._info.load_seconds, template.name)
        return self._info

    def _install_abort_callback(self, llama: Any) -> None:
        """Lets a Stop interrupt a long prompt evaluation inside llama_decode (it then returns 2)."""
        import llama_cpp

        def should_abort(_data: ctypes.c_void_p) -> bool:
            cancel = self._cancel
            return cancel is not None and cancel.is_set()

        self._abort_cb = llama_cpp.ggml_abort_callback(should_abort)
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

"""Loading helpers of the in-process engine: the hook that gives Llama() a progress callback, flash attention "auto"
and a device list; llama.cpp's log lines during a load; RPC registration; a failed load as one sentence."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llamadesk.core import llama_log, rpc
from llamadesk.core.engines.api import LoadOptions, LoadProgress
from llamadesk.core.errors import ModelLoadError

log = logging.getLogger("llamadesk.core.engines.local")  # the engine's log: these lines were always its own


class ParamsHook:
    """Llama() takes neither a progress callback, flash attention "auto" nor a device list: it reads
    llama_model_default_params() and passes its context params to llama_init_from_model(). Both are
    wrapped (in llama_cpp.llama_cpp, the module Llama() calls them through) to apply the loading thread's
    settings, kept thread-local. The device list (core/rpc.devices_for) keeps RPC hosts registered in this
    process for an earlier load out of a load that did not ask for them."""

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
            devices = getattr(cls._local, "devices", None)
            if devices is not None:
                params.devices = ctypes.cast(devices, ctypes.c_void_p)
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
    def active(cls, progress: LoadProgress | None, flash_attn: bool | None, devices: Any = None) -> Iterator[None]:
        import llama_cpp

        def on_progress(value: float, _data: ctypes.c_void_p) -> bool:
            try:
                return bool(progress(min(max(value, 0.0), 1.0))) if progress is not None else True
            except Exception:  # an exception must not unwind through C
                log.exception("Load progress callback failed")
                return True

        cls._local.callback = llama_cpp.llama_progress_callback(on_progress) if progress is not None else None
        cls._local.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO if flash_attn is None else None
        cls._local.devices = devices  # kept alive here until the load has copied it
        try:
            yield
        finally:
            cls._local.callback = None
            cls._local.flash_attn_type = None
            cls._local.devices = None


@contextlib.contextmanager
def llama_log_lines(lines: list[str], down_to: int) -> Iterator[None]:
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


def register_rpc(hosts: Sequence[str]) -> None:
    """Makes the RPC hosts' devices known to llama.cpp (core/rpc.py); a host that does not answer is one sentence.
    llama.cpp abort()s the process when a host goes away later: engines/rpc_child.py loads RPC models in a child."""
    if hosts:
        try:
            rpc.register(hosts)
        except rpc.RpcError as exc:
            raise ModelLoadError(str(exc)) from exc


class LoadFailed(Exception):
    """A Llama() that raised, with llama.cpp's own reason when its log gave one."""

    def __init__(self, reason: str | None, cause: Exception) -> None:
        super().__init__(reason or str(cause))
        self.reason, self.cause = reason, cause


GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}  # enum ggml_type


def load_failure_sentence(path: Path, reason: str | None, options: LoadOptions) -> str:
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


class PromptLookup:
    """Speculative decoding by prompt lookup: llama-cpp-python's LlamaPromptLookupDecoding drafts the tokens that
    followed the last n-gram where it appeared earlier in the context, and Llama.generate verifies them in one batch
    (a draft is kept only as far as it equals what the sampler picks, so the output is the same). The library does not
    report how many drafted tokens were accepted: this wrapper counts them, each draft against the tokens that came
    after it (the next draft's input, or at the end the reply's tokens)."""

    def __init__(self, max_ngram_size: int = 3, num_pred_tokens: int = 10) -> None:
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        self._lookup = LlamaPromptLookupDecoding(max_ngram_size=max_ngram_size, num_pred_tokens=num_pred_tokens)
        self.drafted = self.accepted = 0
        self._pending: tuple[int, Any] | None = None  # (position of the draft's first token, the draft)

    def __call__(self, input_ids: Any, /, **kwargs: Any) -> Any:
        self._settle(input_ids)
        draft = self._lookup(input_ids)
        if len(draft):
            self._pending = (len(input_ids), draft.copy())
            self.drafted += len(draft)
        return draft

    def _settle(self, truth: Any) -> None:
        if self._pending is None:
            return
        start, draft = self._pending
        self._pending = None
        seen = truth[start : start + len(draft)]
        for a, b in zip(seen, draft, strict=False):
            if a != b:
                break
            self.accepted += 1

    def take(self, llama: Any, n_prompt: int, n_generated: int) -> dict[str, Any]:
        """The receipt's "speculation" field for the reply that just ended; the counts start again at zero."""
        self._settle(llama.input_ids[: min(n_prompt + n_generated, int(llama.n_tokens))])
        field = {"method": "prompt lookup", "drafted": self.drafted, "accepted": self.accepted}
        self.drafted = self.accepted = 0
        return field


def draft_for(options: LoadOptions) -> PromptLookup | None:
    """The draft model Llama() gets for these load options (None: no speculative decoding)."""
    return PromptLookup() if options.prompt_lookup else None


def drafts(options: LoadOptions) -> bool:
    """Whether the main model drafts: Llama.generate then checks a draft against every position's logits."""
    return options.prompt_lookup or options.draft_model is not None


def attach_draft_model(llama: Any, options: LoadOptions, n_threads: int, n_gpu_layers: int) -> None:
    """Loads LoadOptions.draft_model beside `llama` as its draft model (engines/draft.py); ModelLoadError when it
    cannot be loaded or has another vocabulary. Its layers go where the main model's do (all, or none)."""
    if options.draft_model is None:
        return
    from llamadesk.core.engines.draft import DraftModel

    llama.draft_model = DraftModel.load(
        Path(options.draft_model), llama, options.n_ctx, n_threads, -1 if n_gpu_layers else 0
    )


def begin_reply(llama: Any, messages: Sequence[Any]) -> None:
    """Tells a draft model which conversation the next reply belongs to (it is switched off where it loses)."""
    draft = getattr(llama, "draft_model", None)
    if draft is not None and hasattr(draft, "begin"):
        from llamadesk.core.engines.draft import conversation_key

        draft.begin(conversation_key(messages))


def prefill_draft(llama: Any, tokens: list[int], cancel: threading.Event) -> None:
    """A draft model reads the prompt that the main model has just prepared (engine.prefill)."""
    draft = getattr(llama, "draft_model", None)
    if draft is not None and hasattr(draft, "prefill"):
        draft.prefill(tokens, cancel)


def close_draft(llama: Any) -> None:
    """Closes a draft model's own Llama (Llama.close() leaves its draft_model alone)."""
    draft = getattr(llama, "draft_model", None)
    if draft is not None and hasattr(draft, "close"):
        draft.close()
        llama.draft_model = None


def speculation_field(llama: Any, n_prompt: int, n_generated: int) -> dict[str, Any]:
    """{"speculation": {...drafted, accepted}} for a reply's receipt when the model drafts; else {}."""
    draft: Any = getattr(llama, "draft_model", None)
    return {"speculation": draft.take(llama, n_prompt, n_generated)} if hasattr(draft, "take") else {}

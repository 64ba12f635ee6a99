"""The in-process llama.cpp engine: load one GGUF, stream chat replies as events, stop, report figures."""

from __future__ import annotations

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

import llamadesk.core.engines.vision as vision
from llamadesk import __version__
from llamadesk.core import fileinfo, hardware, llama_log, probe, rpc, structured
from llamadesk.core.engines import prompt_cache
from llamadesk.core.engines.api import (
    GPU_LAYERS_ALL,
    GPU_LAYERS_AUTO,
    Capabilities,
    Done,
    GenerationMode,
    GenerationStats,
    LoadOptions,
    LoadProgress,
    Message,
    ModelInfo,
    StreamEvent,
)
from llamadesk.core.engines.control_text import ControlTexts
from llamadesk.core.engines.local_load import (
    GGML_TYPES,
    LoadFailed,
    ParamsHook,
    attach_draft_model,
    begin_reply,
    close_draft,
    draft_for,
    drafts,
    llama_log_lines,
    load_failure_sentence,
    prefill_draft,
    register_rpc,
    speculation_field,
)
from llamadesk.core.engines.local_stream import Outcome, common_prefix, marker_tokens, stream_tokens
from llamadesk.core.errors import (
    GenerationError,
    InvalidSetting,
    ModelLoadError,
    StructuredOutputError,
    TemplateError,
)
from llamadesk.core.gguf_header import validate_model_file
from llamadesk.core.sampling import MAX_SEED, SamplingParams
from llamadesk.core.structured import ResponseFormat
from llamadesk.core.templates import TemplateRenderer, choose_template
from llamadesk.core.token_probs import receipt_field as token_probs_field
from llamadesk.core.tools.spec import without_texts

log = logging.getLogger(__name__)

MIN_CTX, MAX_CTX = 256, 1_048_576


def default_threads() -> int:
    """Physical cores; on machines with many, one is left for the GUI so the window stays responsive."""
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return cores - 1 if cores > 4 else cores


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
        self._markers: frozenset[int] = frozenset()  # special tokens the stream shows as text (harmony's markers)
        self._controls = ControlTexts(())  # the control tokens' texts: a message holding one is tokenized apart
        self._vision: vision.Projector | None = None  # a vision model's projector: messages may carry images
        self._prompt_cache: prompt_cache.PromptCache | None = None  # saved prompt states (warm reopen, switching)

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    def capabilities(self) -> Capabilities:
        import llama_cpp

        return {
            "kind": "llama.cpp in-process",
            "llama_cpp_python": llama_cpp.__version__,
            # not llama_supports_gpu_offload(): it is true on CPU builds that have the RPC backend
            "gpu_offload": any(d.can_offload for d in hardware.list_devices()),
            "streaming": True,
            "stop_during_prompt": True,
            "modes": [m.value for m in GenerationMode],
            "token_probs": True,
            "prefill": True,
            "images": self._vision is not None,
            "response_format": True,
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
        probe.probe_model(path, projector=options.mmproj)  # a projector too: read against the model
        if options.draft_model is not None:  # the draft model is checked the same way
            validate_model_file(options.draft_model)
            probe.probe_model(Path(options.draft_model))
        self.unload()
        llama_log.install()
        ParamsHook.install()
        register_rpc(options.rpc_servers)  # before GPUs are counted: to llama.cpp the hosts' devices are GPUs
        n_threads = options.n_threads or default_threads()
        started = time.perf_counter()
        n_all = (header.n_layers or 0) + 1  # llama.cpp counts the output layer as one more
        asked = n_all if options.n_gpu_layers == GPU_LAYERS_ALL and header.n_layers else options.n_gpu_layers
        auto_note = ""
        if options.n_gpu_layers == GPU_LAYERS_AUTO:
            asked, auto_note = hardware.auto_gpu_layers(header, options, hardware.list_devices())
        gpus = [d.name for d in hardware.list_devices() if d.can_offload] if asked != 0 else []
        # Out of GPU memory: try again with fewer layers (halving, then 0); without a GPU retrying cannot help.
        attempts = hardware.fallback_layers(min(asked, n_all)) if asked > 0 and gpus else [asked]
        for n_gpu in attempts:
            try:
                llama, placement = self._new_llama(path, options, n_threads, n_gpu, progress)
                break
            except LoadFailed as failed:
                if n_gpu == attempts[-1] or not hardware.is_memory_failure(failed.reason):
                    raise ModelLoadError(load_failure_sentence(path, failed.reason, options)) from failed.cause
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
            self._vision = vision.Projector.load(options, llama, n_threads) if options.mmproj else None
            draft_note = ""
            try:
                attach_draft_model(llama, options, n_threads, n_gpu)  # refused when its vocabulary differs
            except ModelLoadError as exc:
                if options.draft_required:
                    raise
                draft_note = f"Loaded without the draft model: {exc}"
                log.info("%s", draft_note)
        except (TemplateError, ModelLoadError):
            if self._vision is not None:
                self._vision.close()
                self._vision = None
            llama.close()
            raise
        self._install_abort_callback(llama)
        self._markers = marker_tokens(llama)
        self._controls = ControlTexts.of(llama)
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
                asked,
                placed,
                n_all,
                placement.gpu_devices or gpus,
                out_of_memory=n_gpu != attempts[0],
                auto_note=auto_note,
            ),
            draft_note=draft_note,
            flash_attn=placement.flash_attn if options.flash_attn is None else ("on" if options.flash_attn else "off"),
            type_k=options.type_k,
            type_v=options.type_v,
            use_mmap=options.use_mmap,
            use_mlock=options.use_mlock,
            gpu_buffers={k: v for k, v in placement.buffers.items() if not k.startswith("CPU")},
            rpc_servers=tuple(options.rpc_servers),
            layer_split=placement.layer_split() if options.rpc_servers else {},
            projector=self._vision.path.name if self._vision else "",
        )
        self._prompt_cache = prompt_cache.for_engine(self._info, llama, options.prompt_cache_mb)
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
        devices = rpc.devices_for(options.rpc_servers)  # None unless RPC hosts are registered in this process
        try:
            # verbose=True keeps Llama() from dup2()-ing the whole process's stdout/stderr to /dev/null;
            # the few lines it prints with Python's print() are captured here and logged at debug level.
            with ParamsHook.active(progress, options.flash_attn, devices), contextlib.redirect_stderr(captured), \
                    llama_log_lines(lines, logging.DEBUG if n_gpu_layers else logging.INFO):  # fmt: skip
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=options.n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    n_gpu_layers=n_gpu_layers,
                    flash_attn=bool(options.flash_attn),  # None ("auto") is set by ParamsHook
                    type_k=GGML_TYPES[options.type_k],
                    type_v=GGML_TYPES[options.type_v],
                    use_mmap=options.use_mmap,
                    use_mlock=options.use_mlock,
                    draft_model=draft_for(options),  # type: ignore[arg-type]  # duck-typed: __call__(input_ids)
                    # a draft is checked against every position's logits; without logits_all the library keeps
                    # only n_batch rows of them and fails on a longer prompt
                    logits_all=drafts(options),
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            reason = llama_log.reason_since(mark)
            if progress is not None and any("cancelled model load" in line for line in lines):
                raise ModelLoadError(f"Loading {path.name} was cancelled.") from exc
            raise LoadFailed(reason, exc) from exc
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
        if self._vision is not None:  # before its model
            self._vision.close()
            self._vision = None
        if self._prompt_cache is not None:
            self._prompt_cache.close(self._llama)  # the last prompt's state is kept for the next time
            self._prompt_cache = None
        if self._llama is not None:
            close_draft(self._llama)
            self._llama.close()
        self._llama = None
        self._info = None
        self._renderer = None
        self._markers = frozenset()
        self._controls = ControlTexts(())

    def close(self) -> None:
        self.unload()

    # -- generation ------------------------------------------------------------------------------

    def _prompt_tokens(
        self, messages: Sequence[Message], mode: GenerationMode = GenerationMode.CHAT,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> list[int]:  # fmt: skip
        if self._llama is None or self._renderer is None:
            raise GenerationError("No model is loaded; choose a model first.")
        if mode is GenerationMode.COMPLETION:
            # Raw text: the BOS token as the model's vocabulary asks for it; special-token text stays text.
            text = "".join(m.get("content", "") for m in messages)
            raw: list[int] = self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=False)
            if not raw:
                raise GenerationError("There is no text to continue; write the beginning of a text first.")
            return raw
        renderer, tokenize = self._renderer, self._llama.tokenize
        open_reply = mode is GenerationMode.CONTINUE
        if tools:  # a tool's description goes into the template's text: no control-token text in it (core/tools)
            tools = without_texts(list(tools), self._controls.texts)
        # The template writes the BOS token itself when it wants one; special tokens are parsed in the template's
        # text, never in a message's (control_text.py): a message holding such text is tokenized as a piece apart.
        if any(self._controls.found_in(m.get("content", "")) for m in messages):
            tokens: list[int] = []
            for text, is_message in renderer.render_parts(messages, open_reply=open_reply, tools=tools):
                tokens += tokenize(text.encode("utf-8"), add_bos=False, special=not is_message)
            return tokens
        prompt = renderer.render_open(messages, tools=tools) if open_reply else renderer.render(messages, tools=tools)
        whole: list[int] = tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        return whole

    def count_tokens(self, messages: Sequence[Message]) -> int:
        if vision.has_images(messages):
            return vision.count_tokens(self, messages)
        return len(self._prompt_tokens(messages))

    def prefill(
        self, messages: Sequence[Message], cancel: threading.Event | None = None,
        *, mode: GenerationMode | str = GenerationMode.CHAT,
    ) -> int:  # fmt: skip
        """Evaluates the prompt of `messages` (as `mode` renders it) ahead of a reply, so that the reply then reads
        only what changed (llama.generate reuses the longest cached prefix; an exact hit samples at once). Returns
        how many tokens it evaluated. `cancel` interrupts it inside llama_decode: what was evaluated before stays
        cached, the rest is dropped by the next evaluation. A prompt that does not fit the context is left alone."""
        cancel = cancel or threading.Event()
        if vision.has_images(messages):  # images are read when the reply starts
            return 0
        tokens = self._prompt_tokens(messages, GenerationMode(mode))
        llama = self._llama
        assert llama is not None
        if cancel.is_set() or not tokens or len(tokens) >= llama.n_ctx() - 1:
            return 0
        self._restore_prompt(tokens)
        cached = common_prefix(llama.input_ids[: llama.n_tokens], tokens)
        if cached == len(tokens) == llama.n_tokens:
            return 0
        cached = min(cached, len(tokens) - 1)  # the last token is evaluated again for its logits
        before = llama.n_tokens = cached
        self._cancel = cancel
        self._abort_in_decode(True)
        try:
            llama.eval(tokens[cached:])
        except RuntimeError as exc:  # llama_decode returned 2: aborted by the callback; else a real failure
            if not cancel.is_set():
                raise GenerationError(f"Preparing the prompt failed: {llama_log.reason_since(0) or exc}.") from exc
        finally:
            self._abort_in_decode(False)
            self._cancel = None
        prefill_draft(llama, tokens, cancel)
        return int(llama.n_tokens) - before

    def _abort_in_decode(self, on: bool) -> None:
        import llama_cpp

        callback = self._abort_cb if on else self._no_abort
        if callback is not None and self._llama is not None:
            llama_cpp.llama_set_abort_callback(self._llama.ctx, callback, None)

    def _restore_prompt(self, tokens: list[int]) -> None:
        """A saved state that holds more of the prompt than the KV cache does is loaded first (prompt_cache.py)."""
        if self._prompt_cache is not None and self._llama is not None:
            self._prompt_cache.restore(self._llama, tokens)

    def stream(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        *,
        mode: GenerationMode | str = GenerationMode.CHAT,
        token_probs: bool = False,
        response_format: ResponseFormat | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> Iterator[StreamEvent]:
        """Yields Token events, then one Done. `mode`: a chat reply, the continuation of the last (unfinished) reply,
        or raw-text completion; `token_probs` records each token's probability and its top alternatives;
        `response_format` holds the reply to JSON or a JSON schema with a llama.cpp grammar (StructuredOutputError,
        one sentence, for a schema that cannot be used); `tools` (OpenAI-style function definitions) are offered to
        the model through its chat template (core/tools/prompt.py), and messages may then hold calls and results."""
        mode = GenerationMode(mode)
        cancel = cancel or threading.Event()
        if vision.has_images(messages):  # engines/vision.py: the images read first, then the same token loop
            if response_format is not None and not response_format.is_text:  # its loop takes no grammar yet
                raise StructuredOutputError("A reply about images cannot be held to JSON yet; choose Text as the "
                                            "response format, or send the message without its images.")  # fmt: skip
            yield from vision.stream(self, messages, params, cancel, mode=mode, token_probs=token_probs)
            return
        tokens = self._prompt_tokens(messages, mode, tools)
        llama = self._llama
        assert llama is not None and self._info is not None and self._renderer is not None
        grammar = structured.llama_grammar(response_format, llama._model.vocab)
        n_ctx = llama.n_ctx()
        if len(tokens) >= n_ctx - 1:
            what = "text" if mode is GenerationMode.COMPLETION else "conversation"
            raise GenerationError(
                f"The {what} ({len(tokens)} tokens) no longer fits the model's context of {n_ctx} tokens; "
                "start a new chat or load the model with a larger context."
            )
        self._restore_prompt(tokens)
        cached = common_prefix(llama.input_ids[: llama.n_tokens], tokens)
        seed = params.seed if params.seed is not None else random.SystemRandom().randint(0, MAX_SEED)
        llama.set_seed(seed)
        llama.last_n_tokens_size = params.repeat_last_n
        outcome = Outcome()
        begin_reply(llama, messages)
        self._cancel = cancel
        try:
            yield from stream_tokens(
                llama, tokens, params, cancel, outcome,
                budget=min(params.max_tokens, n_ctx - len(tokens)),
                stops=self._renderer.stop if mode is GenerationMode.CHAT else (),
                strip_start=mode is GenerationMode.CHAT,
                token_probs=token_probs,
                abort_in_decode=self._abort_in_decode,
                shown=self._markers,
                grammar=grammar,
            )  # fmt: skip
        finally:
            self._cancel = None
        generated = outcome.generated
        stats = outcome.stats(prompt_tokens=len(tokens), cached_tokens=cached, seed=seed)
        receipt = self._receipt(params, stats, mode)
        if token_probs:
            receipt["token_probs"] = token_probs_field(outcome.records)
        receipt.update(speculation_field(llama, len(tokens), generated))
        receipt.update(prompt_cache.receipt_field(self._prompt_cache))
        if grammar is not None and response_format is not None:
            receipt["response_format"] = response_format.receipt()
        yield Done(stats, receipt)
        if self._prompt_cache is not None:
            self._prompt_cache.save(llama)  # this conversation's state, for when it is continued after another
        if outcome.error is not None:
            raise GenerationError(outcome.error)

    def _receipt(self, params: SamplingParams, stats: GenerationStats, mode: GenerationMode) -> dict[str, Any]:
        """`sampling.seed` is the seed asked for (None: random); the top-level `seed` is the one used."""
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
            "mode": mode.value,
            "sampling": params.to_dict(),
            "seed": stats.seed,
            **{k: v for k, v in stats.to_dict().items() if k not in ("seed", "error")},
            "llama_cpp_version": llama_cpp.__version__,
            "app_version": __version__,
            # split over RPC hosts: which, and how many layers each held
            **({"rpc_servers": list(info.rpc_servers), "layer_split": info.layer_split} if info.rpc_servers else {}),
        }

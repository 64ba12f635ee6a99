"""Images for the in-process engine: a vision model's projector (libmtmd through llama_cpp.mtmd_cpp) and the prompt
of a turn whose messages carry images.

A message carries images under IMAGES_KEY: the SHA-256 names of normalized images in core/images.py's ImageStore,
space-separated (Message stays dict[str, str]; history and the server refer to images by the same names). The images
go before the message's text, in the order given.

How a prompt with images is read (llama-cpp-python's MTMDChatHandler does the same steps, but clears the whole cache
each turn, runs text through mtmd's tokenizer with special tokens parsed in messages too, and cannot be stopped while
an image is encoded; this is the engine's own path):
1. The chat template renders the messages with a private marker where each image goes; the text between markers is
   tokenized as the engine does for text (special tokens parsed in the template's text only, control_text.py).
2. Each image is preprocessed by libmtmd (mtmd_tokenize of its marker: the model's begin/end-of-image tokens around
   one image chunk). In the prompt's token list an image takes one placeholder id per position it fills: a negative
   number made from its hash, never a real token. So the next turn finds the same image at the same place in the
   Llama's cached ids (input_ids) and reads neither it nor the text before it again.
3. From the first position not cached, text runs are evaluated with Llama.eval, each image is encoded
   (mtmd_encode_chunk) and its embeddings decoded into the context (mtmd_helper_decode_image_chunk); the text after
   the last image is left to the token loop (local_stream.stream_tokens), which finds everything before it cached.
Stop: llama_decode is interrupted by the engine's abort callback; the image encoder (clip's graph, which takes no
abort callback) is given a scheduler eval callback that asks to look after every CHECK_EVERY nodes and ends the
graph when the request's cancel Event is set (ggml_backend_sched_compute_splits stops at a node whose callback
returns false); the half-computed image is then thrown away."""

from __future__ import annotations

import ctypes
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.core import fileinfo, llama_log
from llamadesk.core.engines.api import (
    Done,
    FinishReason,
    GenerationMode,
    LoadOptions,
    Message,
    StreamEvent,
)
from llamadesk.core.engines.local_load import llama_log_lines
from llamadesk.core.errors import GenerationError, ModelLoadError
from llamadesk.core.sampling import MAX_SEED, SamplingParams

log = logging.getLogger(__name__)

IMAGES_KEY = "images"  # a message's images: ImageStore hashes, space-separated
CHECK_EVERY = 32  # graph nodes between two looks at Stop while an image is encoded (each look synchronizes)


def image_hashes(message: Message) -> list[str]:
    return (message.get(IMAGES_KEY) or "").split()


def has_images(messages: Sequence[Message]) -> bool:
    return any(image_hashes(m) for m in messages)


def with_images(message: Message, hashes: Sequence[str]) -> Message:
    """A copy of `message` carrying these images (ImageStore hashes)."""
    return {**message, IMAGES_KEY: " ".join(hashes)} if hashes else dict(message)


def placeholder_id(sha256: str) -> int:
    """The id an image's positions take in a prompt's token list: negative (never a real token), from its hash."""
    return -1 - (int(sha256[:8], 16) & 0x3FFFFFFF)


@dataclass
class ImageSpan:
    """One image in a prompt: where its positions start in the token list, how many it fills (n_pos) and how many
    embeddings it adds to the context (n_tokens; the same except for M-RoPE models), and libmtmd's chunk of it."""

    sha256: str
    start: int
    n_pos: int
    n_tokens: int
    chunk: Any
    encode_s: float = 0.0
    cached: bool = False  # an earlier turn read it into the context at this place: this one did not encode it

    @property
    def end(self) -> int:
        return self.start + self.n_pos


@dataclass
class VisionPrompt:
    """A prompt of text and images: `ids` with placeholders for the images; close() frees libmtmd's chunks."""

    ids: list[int] = field(default_factory=list)
    images: list[ImageSpan] = field(default_factory=list)
    _owned: list[Any] = field(default_factory=list)  # mtmd_input_chunks to free

    def close(self) -> None:
        import llama_cpp.mtmd_cpp as mtmd_cpp

        for chunks in self._owned:
            mtmd_cpp.mtmd_input_chunks_free(chunks)
        self._owned.clear()

    @property
    def n_context(self) -> int:
        """Context cells the prompt needs."""
        return len(self.ids) + sum(i.n_tokens - i.n_pos for i in self.images)


class Projector:
    """The loaded projector of a vision model: libmtmd's context for one Llama. Owned by the engine's thread; the
    `cancel` Event it looks at while encoding is the only thing another thread touches (through the request)."""

    def __init__(self, ctx: Any, path: Path, sha256: str) -> None:
        self._ctx = ctx
        self.path = path
        self.sha256 = sha256
        self.cancel: threading.Event | None = None
        self._eval_cb: Any = None  # kept alive as long as the context: libmtmd calls it
        self._nodes = 0
        self.encoding = False  # an image is being encoded now (read by tests to press Stop at that moment)
        # per image hash, what it adds to a prompt: token ids, or (n_pos, n_tokens) for the image itself; lets
        # count_tokens (the planner and the meter ask often) skip decoding and preprocessing the image again
        self._shapes: dict[str, list[list[int] | tuple[int, int]]] = {}
        self.nodes_seen = 0  # graph nodes the scheduler offered during the last encoding

    @classmethod
    def load(cls, options: LoadOptions, llama: Any, n_threads: int) -> Projector:
        """Loads `options.mmproj` for the Llama just loaded; a file that is not a projector, or one made for another
        model (its embeddings' width differs), is a ModelLoadError with one sentence."""

        assert options.mmproj is not None
        path = Path(options.mmproj)
        if not path.is_file():
            raise ModelLoadError(f"The projector {path.name} does not exist; choose the mmproj file of this model.")
        projector = cls(None, path, "")
        params = _context_params(n_threads, options.mmproj_gpu, warmup=False)  # the first image pays the warm-up
        params.cb_eval = projector._eval_callback()
        ctx, sentence = _init(path, llama, params)
        if sentence is not None:
            raise ModelLoadError(sentence)
        projector._ctx = ctx
        projector.sha256 = fileinfo.sha256_cached(path)
        log.info("Projector %s loaded", path.name)
        return projector

    def _eval_callback(self) -> Any:
        import llama_cpp

        def on_node(_tensor: ctypes.c_void_p, ask: bool, _data: ctypes.c_void_p) -> bool:
            if ask:  # "do you want to look at this node?": every CHECK_EVERY-th, to check Stop after it
                self._nodes += 1
                return self._nodes % CHECK_EVERY == 0
            cancel = self.cancel
            return not (cancel is not None and cancel.is_set())  # false ends the graph

        self._eval_cb = llama_cpp.ggml_backend_sched_eval_callback(on_node)
        return self._eval_cb

    def close(self) -> None:
        if self._ctx:
            import llama_cpp.mtmd_cpp as mtmd_cpp

            mtmd_cpp.mtmd_free(self._ctx)
        self._ctx = None

    # -- a prompt with images --------------------------------------------------------------------

    def image_chunks(self, sha256: str, rgb: tuple[int, int, bytes], prompt: VisionPrompt) -> None:
        """Appends an image to `prompt`: the model's own tokens around it, and its chunk (preprocessed, not encoded)."""
        import llama_cpp.mtmd_cpp as mtmd_cpp

        width, height, pixels = rgb
        buffer = (ctypes.c_uint8 * len(pixels)).from_buffer_copy(pixels)
        bitmap = mtmd_cpp.mtmd_bitmap_init(width, height, buffer)
        if not bitmap:
            raise GenerationError("The image could not be handed to the vision model (out of memory?).")
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        try:
            text = mtmd_cpp.mtmd_input_text()
            marker = mtmd_cpp.mtmd_default_marker()
            text.text, text.text_len = marker, len(marker)
            text.add_special, text.parse_special = False, True
            bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
            result = mtmd_cpp.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), bitmaps, 1)
        finally:
            mtmd_cpp.mtmd_bitmap_free(bitmap)
        prompt._owned.append(chunks)
        if result != 0:
            raise GenerationError(f"The vision model could not prepare the image (libmtmd error {result}).")
        shape: list[list[int] | tuple[int, int]] = []
        for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
            chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, i)
            if mtmd_cpp.mtmd_input_chunk_get_type(chunk) == mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t()
                ids = mtmd_cpp.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                shape.append([ids[j] for j in range(n.value)])
            else:
                n_pos = mtmd_cpp.mtmd_input_chunk_get_n_pos(chunk)
                n_tokens = mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk)
                shape.append((n_pos, n_tokens))
                prompt.images.append(ImageSpan(sha256, len(prompt.ids), n_pos, n_tokens, chunk))
            self._add_shape(sha256, shape[-1], prompt, with_span=False)
        self._shapes[sha256] = shape

    def counted(self, sha256: str, prompt: VisionPrompt) -> bool:
        """Appends an image already seen to `prompt` for counting only (no chunk to evaluate); False if not seen."""
        shape = self._shapes.get(sha256)
        if shape is None:
            return False
        for part in shape:
            self._add_shape(sha256, part, prompt, with_span=True)
        return True

    @staticmethod
    def _add_shape(sha256: str, part: list[int] | tuple[int, int], prompt: VisionPrompt, *, with_span: bool) -> None:
        if isinstance(part, list):
            prompt.ids += part
            return
        n_pos, n_tokens = part
        if with_span:
            prompt.images.append(ImageSpan(sha256, len(prompt.ids), n_pos, n_tokens, None))
        prompt.ids += [placeholder_id(sha256)] * n_pos

    def evaluate(self, llama: Any, prompt: VisionPrompt, cancel: threading.Event, abort_in_decode: Any) -> bool:
        """Reads the prompt into the context up to the end of its last image (what the cache already holds is kept;
        an image is read whole or not at all). Returns False when `cancel` stopped it."""
        import llama_cpp
        import llama_cpp.mtmd_cpp as mtmd_cpp

        cached = _common_prefix(llama.input_ids[: llama.n_tokens], prompt.ids)
        for image in prompt.images:
            if image.start < cached < image.end:
                cached = image.start
        pending = [i for i in prompt.images if i.end > cached]
        for image in prompt.images:
            image.cached = image.end <= cached
        if not pending:
            return True
        llama._ctx.kv_cache_seq_rm(-1, cached, -1)
        llama.n_tokens = cached
        self.cancel = cancel
        abort_in_decode(True)
        try:
            for image in pending:
                if llama.n_tokens < image.start:
                    llama.eval(prompt.ids[llama.n_tokens : image.start])
                if cancel.is_set():
                    return False
                started = time.perf_counter()
                self._nodes = 0
                mark = llama_log.mark()
                self.encoding = True
                try:
                    result = mtmd_cpp.mtmd_encode_chunk(self._ctx, image.chunk)
                finally:
                    self.encoding = False
                    self.nodes_seen = self._nodes
                image.encode_s = time.perf_counter() - started
                if cancel.is_set():
                    return False
                if result != 0:
                    raise GenerationError(f"Encoding the image failed: {llama_log.reason_since(mark) or result}.")
                new_n_past = llama_cpp.llama_pos(0)
                result = mtmd_cpp.mtmd_helper_decode_image_chunk(
                    self._ctx, llama._ctx.ctx, image.chunk, mtmd_cpp.mtmd_get_output_embd(self._ctx),
                    llama_cpp.llama_pos(llama.n_tokens), llama_cpp.llama_seq_id(0), llama.n_batch,
                    ctypes.byref(new_n_past), mtmd_cpp.mtmd_helper_post_decode_callback(), None,
                )  # fmt: skip
                if cancel.is_set():
                    return False
                if result != 0:
                    raise GenerationError(f"Reading the image into the model failed: {llama_log.reason_since(mark)}.")
                llama.input_ids[image.start : image.end] = placeholder_id(image.sha256)
                llama.n_tokens = image.end
        except RuntimeError as exc:  # llama_decode returned 2 (Stop inside a text run); else a real failure
            if cancel.is_set():
                return False
            raise GenerationError(f"Preparing the prompt failed: {llama_log.reason_since(0) or exc}.") from exc
        finally:
            abort_in_decode(False)
            self.cancel = None
        return True


def _context_params(n_threads: int, use_gpu: bool, *, warmup: bool) -> Any:
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd_cpp

    params = mtmd_cpp.mtmd_context_params_default()
    params.use_gpu = use_gpu
    params.print_timings = False
    params.n_threads = n_threads
    params.warmup = warmup
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    return params


def _init(path: Path, llama: Any, params: Any) -> tuple[Any, str | None]:
    """libmtmd's context for `path` against the loaded model, or (None, the sentence why not)."""
    import llama_cpp.mtmd_cpp as mtmd_cpp

    llama_log.install_mtmd()
    lines: list[str] = []
    with llama_log_lines(lines, logging.WARNING):
        ctx = mtmd_cpp.mtmd_init_from_file(str(path).encode(), llama.model, params)
    if not ctx:
        return None, _load_sentence(path, lines)
    if not mtmd_cpp.mtmd_support_vision(ctx):
        mtmd_cpp.mtmd_free(ctx)
        return None, f"{path.name} is a projector for sound, not images; choose the model's vision mmproj."
    return ctx, None


def probe_projector(path: Path, llama: Any) -> str | None:
    """For core/probe.py's child process: loads the projector against `llama` (vocabulary and parameters only) and
    runs its warm-up graph on the CPU, where a malformed file would abort; the sentence when it cannot be used."""
    import llama_cpp.mtmd_cpp as mtmd_cpp

    ctx, sentence = _init(path, llama, _context_params(1, False, warmup=True))
    if ctx:
        mtmd_cpp.mtmd_free(ctx)
    return sentence


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _load_sentence(path: Path, lines: Sequence[str]) -> str:
    """libmtmd's reason (its log lines during the load) as one sentence."""
    if any("mismatch between text model" in line for line in lines):
        return (
            f"{path.name} is the projector of another model (its image embeddings do not fit this model's); "
            "choose the mmproj file published with this model."
        )
    errors = [line.split("error: ", 1)[-1] for line in lines if "error" in line.lower()]
    text = (errors[0] if errors else "").strip().rstrip(".")
    if "unknown projector type" in text:
        return f"{path.name} uses a kind of projector this version of llama.cpp does not support ({text})."
    if text:
        return f"{path.name} could not be loaded as a projector: {text}."
    return f"{path.name} could not be loaded as a projector; see the log for llama.cpp's reason."


# -- the engine's path for messages with images ---------------------------------------------------------------------
# These read the in-process engine's own state (its Llama, template renderer, control texts, abort switch): this
# module is part of that engine (local.LlamaCppEngine, typed Any here: local.py imports this module), kept apart.


def build_prompt(
    engine: Any, messages: Sequence[Message], mode: GenerationMode, *, count_only: bool = False
) -> VisionPrompt:
    """The prompt of `messages` with their images (read from the ImageStore and preprocessed). `count_only`: for its
    length alone; images seen before are not read again (their spans then have no chunk to evaluate)."""
    from llamadesk.core.images import ImageError, ImageStore, rgb_pixels

    projector = engine._vision
    if projector is None:
        raise GenerationError(
            "This model reads text only, so it cannot see the attached images; load a vision model with its "
            "projector (mmproj), or send the message without images."
        )
    if mode is GenerationMode.COMPLETION:
        raise GenerationError("Images go with chat messages; notebook (completion) mode takes text only.")
    llama, renderer, controls = engine._llama, engine._renderer, engine._controls
    assert llama is not None and renderer is not None
    marker = f"<llamadesk-image-{secrets.token_hex(8)}>"
    order: list[str] = []
    marked: list[Message] = []
    for m in messages:
        hashes = image_hashes(m)
        order += hashes
        content = "".join(marker + "\n" for _ in hashes) + m.get("content", "")
        marked.append({k: v for k, v in m.items() if k != IMAGES_KEY} | {"content": content})
    open_reply = mode is GenerationMode.CONTINUE
    if any(controls.found_in(m.get("content", "")) for m in messages):
        parts = renderer.render_parts(marked, open_reply=open_reply)
    else:
        parts = [(renderer.render_open(marked) if open_reply else renderer.render(marked), False)]
    store = ImageStore()
    prompt = VisionPrompt()
    pending = iter(order)
    try:
        for text, is_message in parts:
            pieces = re.split(re.escape(marker), text)
            for i, piece in enumerate(pieces):
                if i > 0:
                    sha = next(pending, None)
                    if sha is None:  # the template repeated a message: its images go once
                        continue
                    if count_only and projector.counted(sha, prompt):
                        if piece:
                            prompt.ids += llama.tokenize(piece.encode("utf-8"), add_bos=False, special=not is_message)
                        continue
                    try:
                        pixels = rgb_pixels(store.read(sha))
                    except ImageError as exc:
                        raise GenerationError(str(exc)) from exc
                    projector.image_chunks(sha, pixels, prompt)
                if piece:
                    prompt.ids += llama.tokenize(piece.encode("utf-8"), add_bos=False, special=not is_message)
        if next(pending, None) is not None:
            raise GenerationError("The chat template left out a message's images; this model's template cannot "
                                  "show images in that place.")  # fmt: skip
    except BaseException:
        prompt.close()
        raise
    return prompt


def count_tokens(engine: Any, messages: Sequence[Message]) -> int:
    prompt = build_prompt(engine, messages, GenerationMode.CHAT, count_only=True)
    try:
        return prompt.n_context
    finally:
        prompt.close()


def stream(
    engine: Any,
    messages: Sequence[Message],
    params: SamplingParams,
    cancel: threading.Event,
    *,
    mode: GenerationMode,
    token_probs: bool = False,
) -> Iterator[StreamEvent]:
    """LlamaCppEngine.stream for messages with images: the prompt's images read first (Stop works there too), then
    the same token loop; the receipt lists each image's hash, tokens and encode time, and the projector."""
    import random

    from llamadesk.core.engines.local_stream import Outcome, stream_tokens
    from llamadesk.core.token_probs import receipt_field as token_probs_field

    prompt = build_prompt(engine, messages, mode)
    llama, projector = engine._llama, engine._vision
    assert llama is not None and projector is not None and engine._renderer is not None
    try:
        n_ctx = llama.n_ctx()
        if prompt.n_context >= n_ctx - 1:
            raise GenerationError(
                f"The conversation with its images ({prompt.n_context} tokens) no longer fits the model's context of "
                f"{n_ctx} tokens; start a new chat or load the model with a larger context."
            )
        if not prompt.ids or prompt.ids[-1] < 0:
            raise GenerationError("A message's images need text after them for the model to answer.")
        cached = _common_prefix(llama.input_ids[: llama.n_tokens], prompt.ids)
        seed = params.seed if params.seed is not None else random.SystemRandom().randint(0, MAX_SEED)
        llama.set_seed(seed)
        llama.last_n_tokens_size = params.repeat_last_n
        outcome = Outcome()
        engine._cancel = cancel
        try:
            read = projector.evaluate(llama, prompt, cancel, engine._abort_in_decode)
            if read:
                yield from stream_tokens(
                    llama, prompt.ids, params, cancel, outcome,
                    budget=min(params.max_tokens, n_ctx - prompt.n_context),
                    stops=engine._renderer.stop if mode is GenerationMode.CHAT else (),
                    strip_start=mode is GenerationMode.CHAT,
                    token_probs=token_probs,
                    abort_in_decode=engine._abort_in_decode,
                    shown=engine._markers,
                )  # fmt: skip
            else:
                outcome.reason = FinishReason.CANCELLED
                outcome.ended = time.perf_counter()
        finally:
            engine._cancel = None
        stats = outcome.stats(prompt_tokens=prompt.n_context, cached_tokens=cached, seed=seed)
        receipt = engine._receipt(params, stats, mode)
        receipt["projector"] = {"file": projector.path.name, "sha256": projector.sha256}
        receipt["images"] = [
            {"sha256": i.sha256, "tokens": i.n_tokens, "encode_s": round(i.encode_s, 4), "cached": i.cached}
            for i in prompt.images
        ]
        if token_probs:
            receipt["token_probs"] = token_probs_field(outcome.records)
    finally:
        prompt.close()
    yield Done(stats, receipt)
    if outcome.error is not None:
        raise GenerationError(outcome.error)

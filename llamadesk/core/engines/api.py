"""The one small interface every inference engine implements, and the values it passes around."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from llamadesk.core.errors import InvalidSetting
from llamadesk.core.sampling import SamplingParams

if TYPE_CHECKING:
    from llamadesk.core.token_probs import TokenProb


class GenerationMode(str, Enum):
    """How a stream reads its messages; recorded as the receipt's "mode"."""

    CHAT = "chat"  # render the conversation with the chat template and open a new reply
    CONTINUE = "continue"  # the last message is an unfinished reply: render it open and extend it
    COMPLETION = "completion"  # no template: the messages' text, joined, is continued as raw text (notebook)


class FinishReason(str, Enum):
    STOP = "stop"  # the model ended its turn (end-of-generation token or stop string)
    LENGTH = "length"  # max tokens or the context length was reached
    CANCELLED = "cancelled"  # the user pressed Stop
    ERROR = "error"  # generation failed; the message says why


KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
GPU_LAYERS_ALL = -1
GPU_LAYERS_AUTO = -2  # as many as fit in free GPU memory with the KV cache (hardware.auto_gpu_layers)


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model. `chat_template` names a built-in template to use instead of the GGUF's.
    The rest are advanced settings: n_gpu_layers (-1: all, -2: auto), flash attention (None: llama.cpp decides per
    device), the KV cache types (a quantized V cache needs flash attention), mmap and mlock."""

    path: Path
    n_ctx: int = 4096
    n_threads: int | None = None  # None: physical cores, leaving one for the GUI when there are many
    n_gpu_layers: int = 0
    chat_template: str | None = None
    flash_attn: bool | None = None
    type_k: str = "f16"
    type_v: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    rpc_servers: tuple[str, ...] = ()  # "host:port" of llama.cpp rpc-servers to split the layers over (core/rpc.py)
    mmproj: Path | None = None  # a vision model's projector (mmproj-*.gguf): messages may then carry images (vision.py)
    mmproj_gpu: bool = True  # the projector on the GPU when there is one (its own setting: it is small but slow on CPU)
    prompt_cache_mb: float = 4096  # saved prompt states on disk (engines/prompt_cache.py), all models together; 0: off
    prompt_lookup: bool = False  # speculative decoding by prompt lookup (local_load.PromptLookup)
    draft_model: Path | None = None  # a small GGUF of the same vocabulary that drafts tokens (engines/draft.py)
    # False: a draft model that cannot serve this model (another family) is left out and ModelInfo.draft_note says
    # why, instead of refusing the load: the window's one setting applies to every model you load
    draft_required: bool = True

    def check(self) -> None:
        """Raises InvalidSetting with one sentence when the advanced settings cannot work together."""
        for name, value in (("K", self.type_k), ("V", self.type_v)):
            if value not in KV_CACHE_TYPES:
                raise InvalidSetting(
                    f"The {name} cache type must be one of {', '.join(KV_CACHE_TYPES)}, not {value!r}."
                )
        if self.type_v != "f16" and self.flash_attn is False:
            raise InvalidSetting(
                f"A quantized V cache ({self.type_v}) needs flash attention; "
                "turn flash attention on (or to auto), or use an f16 V cache."
            )
        if self.n_gpu_layers < GPU_LAYERS_AUTO:
            raise InvalidSetting(f"GPU layers must be -2 (auto), -1 (all), 0 or more, not {self.n_gpu_layers}.")
        if self.prompt_lookup and self.draft_model is not None:
            raise InvalidSetting(
                "Speculative decoding drafts either by prompt lookup or with a draft model; choose one."
            )
        if self.rpc_servers and self.n_gpu_layers == 0:
            raise InvalidSetting(
                "Splitting a model over RPC hosts needs GPU layers (all or auto): to llama.cpp the hosts are GPUs."
            )


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded: shown in the UI and copied into every reply's receipt."""

    path: Path
    file_name: str
    size_bytes: int
    sha256: str
    architecture: str
    quantization: str
    n_ctx: int
    n_ctx_train: int
    n_layers: int
    n_gpu_layers: int
    n_threads: int
    template_name: str  # "gguf" for the file's own template, else the built-in's name
    template_source: str  # "gguf", "architecture" (chosen by architecture) or "user"
    has_chat_template: bool
    load_seconds: float = 0.0
    n_gpu_layers_requested: int = 0  # what LoadOptions asked for (-1: all); n_gpu_layers is what was placed
    offload_note: str = ""  # one sentence on where the layers went, and why when fewer than asked
    draft_note: str = ""  # why the draft model asked for was left out (LoadOptions.draft_required False), or ""
    flash_attn: str = "off"  # "on" or "off" as llama.cpp resolved it ("auto" if it did not say)
    type_k: str = "f16"
    type_v: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    gpu_buffers: dict[str, float] = field(default_factory=dict)  # model weights per buffer, MiB ("CUDA0": 812.5)
    rpc_servers: tuple[str, ...] = ()  # the RPC hosts the model is split over (LoadOptions.rpc_servers)
    layer_split: dict[str, int] = field(default_factory=dict)  # layers per device or RPC host, as llama.cpp placed them
    projector: str = ""  # the projector's file name when the model reads images (LoadOptions.mmproj)
    # A model served by a remote endpoint: its base URL and server kind; then file_name (and path) is the model id,
    # size_bytes 0, sha256 "" and template_name "server" (the server applies its own chat template).
    endpoint: str = ""
    server_kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass(frozen=True)
class GenerationStats:
    """Figures of one reply. tokens_per_s counts generated tokens after the first, over their time."""

    prompt_tokens: int
    cached_tokens: int  # prompt tokens reused from the previous turn's KV cache
    generated_tokens: int
    ttft_s: float
    tokens_per_s: float
    total_s: float
    finish_reason: FinishReason
    seed: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["finish_reason"] = self.finish_reason.value
        return d


@dataclass(frozen=True)
class Token:
    """A piece of reply text (one or more tokens, always whole UTF-8 characters); with token probabilities asked
    for, the record of the token that made it (its text may still be held back, then `text` is empty)."""

    text: str
    probs: tuple[TokenProb, ...] = ()


@dataclass(frozen=True)
class Done:
    """The last event of a stream."""

    stats: GenerationStats
    receipt: dict[str, Any] = field(default_factory=dict)


StreamEvent = Token | Done
Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
LoadProgress = Callable[[float], bool]  # receives 0..1; return False to cancel the load


class Capabilities(TypedDict, total=False):
    """What an engine can do, as `capabilities()` tells it (the About dialog and the receipts show it too)."""

    kind: str  # in words: "llama.cpp in-process", "remote", "llama.cpp over RPC (child process)"
    streaming: bool
    stop_during_prompt: bool  # Stop interrupts the prompt's evaluation, not only between tokens
    modes: list[str]  # GenerationMode values stream(mode=…) takes; chat only when missing
    token_probs: bool  # stream(token_probs=True) records each token's probability and alternatives
    prefill: bool  # prefill() reads a prompt ahead into the cache
    images: bool  # messages may carry images (vision.IMAGES_KEY): a vision model loaded with its projector
    response_format: bool  # stream(response_format=…) holds replies to JSON or a JSON schema (core/structured.py)
    gpu_offload: bool  # a GPU device can take layers
    llama_cpp_python: str  # the in-process engine's library version
    rpc: bool  # the model is split over RPC hosts
    server_kind: str  # remote: which server (llama.cpp, vLLM, Ollama, …)
    endpoint: str  # remote: its address
    sampling: list[str]  # remote: the sampling values that server takes


class Engine(Protocol):
    """load / stream / stop / stats / capabilities. One thread owns an engine for its whole life;
    only `request_stop`-style cancellation (a threading.Event) crosses threads.

    Optional: an engine whose capabilities() lists "modes" (GenerationMode values) accepts `mode=` in stream();
    one with capabilities()["token_probs"] True accepts `token_probs=True`; one with capabilities()["response_format"]
    True accepts `response_format=` (a structured.ResponseFormat). Callers pass them only then."""

    @property
    def info(self) -> ModelInfo | None: ...

    def capabilities(self) -> Capabilities: ...

    def load(self, options: LoadOptions, progress: LoadProgress | None = None) -> ModelInfo: ...

    def unload(self) -> None: ...

    def count_tokens(self, messages: Sequence[Message]) -> int: ...

    def stream(
        self,
        messages: Sequence[Message],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> Iterator[StreamEvent]: ...

    def close(self) -> None: ...

"""Writes a tiny vision model with random weights, for tests and benchmarks: gguf_factory's llama plus a LLaVA-style
projector file (`mmproj-*.gguf`) that llama.cpp's multimodal library (libmtmd, clip.cpp) loads and runs.

The projector is the simplest kind llama.cpp knows, "mlp" (LLaVA 1.5): a ViT (patch embedding as a convolution,
position embeddings, pre-norm transformer blocks) whose patch features go through two linear layers into the text
model's embedding space. Key and tensor names follow tools/mtmd/clip-impl.h of the vendored llama.cpp (KEY_*, TN_*);
the graph is tools/mtmd/models/llava.cpp. Every image is resized to `image_size` squared, so an image always costs
(image_size / patch_size)² tokens (16 with the defaults)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
from gguf_factory import write_tiny_llama

# ChatML that also takes OpenAI-style content parts (a list of {"type": "text", "text": ...}), as vision models'
# templates do: llama-cpp-python's MTMDChatHandler hands images to the template as such parts.
VISION_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] + '\\n' }}"
    "{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
IMAGE_SIZE = 56
PATCH_SIZE = 14
TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH_SIZE) ** 2


def write_tiny_projector(
    path: Path,
    *,
    text_embd: int = 64,
    n_embd: int = 32,
    n_layers: int = 2,
    n_head: int = 2,
    image_size: int = IMAGE_SIZE,
    patch_size: int = PATCH_SIZE,
    seed: int = 4321,
    patch_kernel: int | None = None,
) -> Path:
    """A projector for a text model of embedding width `text_embd` (write_tiny_llama's n_embd): another width makes
    a projector that does not match its model (llama.cpp refuses it when the pair is loaded). `patch_kernel` other
    than `patch_size` writes a malformed projector: its graph fails a GGML_ASSERT, which aborts the process."""
    rng = np.random.default_rng(seed)
    n_ff = n_embd * 2
    n_patches = (image_size // patch_size) ** 2

    w = gguf.GGUFWriter(str(path), "clip")
    w.add_name("tiny-test-projector")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.image_size", image_size)
    w.add_uint32("clip.vision.patch_size", patch_size)
    w.add_uint32("clip.vision.embedding_length", n_embd)
    w.add_uint32("clip.vision.feed_forward_length", n_ff)
    w.add_uint32("clip.vision.block_count", n_layers)
    w.add_uint32("clip.vision.projection_dim", text_embd)
    w.add_uint32("clip.vision.attention.head_count", n_head)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    def tensor(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    # numpy shapes are ggml's ne reversed: a [in, out] ggml matrix is (out, in) here
    kernel = patch_kernel or patch_size
    w.add_tensor("v.patch_embd.weight", tensor(n_embd, 3, kernel, kernel))
    w.add_tensor("v.patch_embd.bias", tensor(n_embd))
    w.add_tensor("v.position_embd.weight", tensor(n_patches, n_embd))
    for i in range(n_layers):
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(f"v.blk.{i}.{part}.weight", tensor(n_embd, n_embd))
            w.add_tensor(f"v.blk.{i}.{part}.bias", tensor(n_embd))
        for norm in ("ln1", "ln2"):
            w.add_tensor(f"v.blk.{i}.{norm}.weight", ones(n_embd))
            w.add_tensor(f"v.blk.{i}.{norm}.bias", np.zeros(n_embd, dtype=np.float32))
        w.add_tensor(f"v.blk.{i}.ffn_up.weight", tensor(n_ff, n_embd))
        w.add_tensor(f"v.blk.{i}.ffn_up.bias", tensor(n_ff))
        w.add_tensor(f"v.blk.{i}.ffn_down.weight", tensor(n_embd, n_ff))
        w.add_tensor(f"v.blk.{i}.ffn_down.bias", tensor(n_embd))
    # Large projection weights: the image's embeddings must move the text model's logits visibly.
    w.add_tensor("mm.0.weight", tensor(text_embd, n_embd, scale=1.0))
    w.add_tensor("mm.0.bias", tensor(text_embd))
    w.add_tensor("mm.2.weight", tensor(text_embd, text_embd, scale=1.0))
    w.add_tensor("mm.2.bias", tensor(text_embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_tiny_vision_pair(folder: Path, *, name: str = "tiny-vision", n_embd: int = 64) -> tuple[Path, Path]:
    """A text model and its projector side by side, named as published pairs are (`mmproj-*.gguf` next to the
    model), so the library pairs them. Returns (model, projector)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = write_tiny_llama(folder / f"{name}.gguf", n_embd=n_embd, name=name, chat_template=VISION_TEMPLATE)
    projector = write_tiny_projector(folder / f"mmproj-{name}-f32.gguf", text_embd=n_embd)
    return model, projector

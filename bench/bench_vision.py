"""Images: the time to read an image into the model (encode + decode, to the first reply token) and the tokens per
image, LlamaDesk's engine (engines/vision.py) against llama-cpp-python's MTMDChatHandler on the same files, model and
projector, alternated; and a second turn about the same image, which LlamaDesk takes from its cache.

The pair: `--model M` with its mmproj-*.gguf beside it (a real vision model, e.g. on a lent GPU machine), else a
generated one (tests/vision_factory.py) sized so that encoding takes measurable time on a CPU: random weights, so
only the plumbing's speed means anything, never what the model says."""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import alternate, machine, note, ratio_summary, wanted

BENCHMARKS = ("vision_encode", "vision_cached_turn")
N_CTX = 4096
QUESTION = "Describe the picture."


def _pair(args: argparse.Namespace, folder: Path) -> tuple[Path, Path, str]:
    from llamadesk.core.library import projector_for

    if getattr(args, "model", None):
        model = Path(args.model)
        projector = projector_for(model)
        if projector is None:
            raise RuntimeError(f"no mmproj-*.gguf beside {model}")
        return model, projector, "given"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from gguf_factory import write_tiny_llama  # test helpers: a generated pair
    from vision_factory import VISION_TEMPLATE, write_tiny_projector

    model = write_tiny_llama(folder / "bench-vision.gguf", n_embd=256, n_head=4, n_layers=4, name="bench-vision",
                             chat_template=VISION_TEMPLATE)  # fmt: skip
    projector = write_tiny_projector(folder / "mmproj-bench-vision.gguf", text_embd=256, n_embd=384, n_layers=6,
                                     n_head=6, image_size=336, patch_size=14)  # fmt: skip
    return model, projector, "generated (random weights; 576 tokens per image)"


def _images() -> dict[str, bytes]:
    """Three files of the kinds people attach: a photo, a screenshot, a small icon."""
    from PIL import Image

    photo = Image.effect_noise((1600, 1200), 40).convert("RGB")
    shot = Image.new("RGB", (1280, 800), (245, 245, 245))
    shot.paste((40, 90, 200), (0, 0, 1280, 60))
    icon = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    icon.paste((220, 40, 40, 255), (32, 32, 96, 96))
    out: dict[str, bytes] = {}
    for name, image, fmt in (("photo.jpg", photo, "JPEG"), ("screenshot.png", shot, "PNG"), ("icon.png", icon, "PNG")):
        buf = io.BytesIO()
        image.save(buf, fmt)
        out[name] = buf.getvalue()
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if not (wanted(args, "vision_encode") or wanted(args, "vision_cached_turn")):
        return []
    import llama_cpp
    from llama_cpp.llama_chat_format import MTMDChatHandler

    from llamadesk.core.engines import vision
    from llamadesk.core.engines.api import LoadOptions
    from llamadesk.core.engines.local import LlamaCppEngine, default_threads
    from llamadesk.core.images import ImageStore
    from llamadesk.core.sampling import SamplingParams

    rounds = 2 if args.quick else 5
    threads = default_threads()
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as tmp:
        model, projector, kind = _pair(args, Path(tmp))
        note(f"vision: {model.name} + {projector.name} ({kind})")
        store = ImageStore()
        stored = {name: store.add(data, name=name) for name, data in _images().items()}

        engine = LlamaCppEngine()
        engine.load(LoadOptions(model, n_ctx=N_CTX, n_threads=threads, n_gpu_layers=-1, mmproj=projector))
        params = SamplingParams(temperature=0, top_k=1, max_tokens=1, seed=1)
        # the raw library: its own handler, the same model file and projector, the same normalized image bytes
        handler = MTMDChatHandler(clip_model_path=str(projector), verbose=False)
        raw = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads,
                              n_gpu_layers=-1, chat_handler=handler, verbose=False)  # fmt: skip

        def ours(sha: str, fresh: bool = True) -> tuple[float, dict[str, Any]]:
            if fresh:  # nothing cached: the image is encoded as MTMDChatHandler encodes it every time
                engine._llama.reset()
                engine._llama._ctx.kv_cache_clear()
            started = time.perf_counter()
            done = None
            for event in engine.stream([vision.with_images({"role": "user", "content": QUESTION}, [sha])], params):
                done = event
            assert done is not None and done.receipt["images"], "no image in the receipt"
            return time.perf_counter() - started, done.receipt

        def theirs(data: bytes, mime: str) -> tuple[float, int]:
            url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
            message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                   {"type": "text", "text": QUESTION}]}  # fmt: skip
            started = time.perf_counter()
            reply = raw.create_chat_completion(messages=[message], max_tokens=1, temperature=0, top_k=1, seed=1)
            return time.perf_counter() - started, int(reply["usage"]["prompt_tokens"])

        try:
            ours(stored["icon.png"].sha256)  # warm both: the first encode allocates the graph
            theirs(stored["icon.png"].data, stored["icon.png"].mime)
            for name, image in stored.items():
                if not wanted(args, "vision_encode"):
                    break
                a_times: list[float] = []
                b_times: list[float] = []
                ratios: list[float] = []
                receipt: dict[str, Any] = {}
                their_prompt = 0
                for i in range(rounds):
                    (a, receipt), (b, their_prompt) = alternate(
                        i, lambda image=image: ours(image.sha256), lambda image=image: theirs(image.data, image.mime)
                    )
                    a_times.append(a)
                    b_times.append(b)
                    ratios.append(b / a)  # > 1: LlamaDesk is faster
                    note(f"vision {name}: ours {a * 1000:.0f} ms, MTMDChatHandler {b * 1000:.0f} ms")
                entry = receipt["images"][0]
                records.append({
                    "figure": "vision_encode", "image": name, "size": f"{image.width}x{image.height}",
                    "tokens_per_image": entry["tokens"], "prompt_tokens": receipt["prompt_tokens"],
                    "mtmd_handler_prompt_tokens": their_prompt,
                    "encode_ms": round(entry["encode_s"] * 1000, 1),
                    "ours_to_first_token_ms": round(statistics.median(a_times) * 1000, 1),
                    "mtmd_handler_to_first_token_ms": round(statistics.median(b_times) * 1000, 1),
                    "speed_vs_mtmd_handler": ratio_summary(ratios), "pair": kind, **machine(),
                })  # fmt: skip
            if wanted(args, "vision_cached_turn"):
                photo = stored["photo.jpg"]
                ours(photo.sha256)  # the first turn reads it
                again = [ours(photo.sha256, fresh=False) for _ in range(rounds)]
                redo = [theirs(photo.data, photo.mime)[0] for _ in range(rounds)]
                records.append({
                    "figure": "vision_cached_turn", "image": "photo.jpg",
                    "ours_ms": round(statistics.median(t for t, _ in again) * 1000, 1),
                    "ours_encoded_again": any(not r["images"][0]["cached"] for _, r in again),
                    "mtmd_handler_ms": round(statistics.median(redo) * 1000, 1), "pair": kind, **machine(),
                })  # fmt: skip
        finally:
            raw.close()
            engine.close()
    return records

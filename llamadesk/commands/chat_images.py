"""`llamadesk chat --image PATH… [--mmproj P]`: images in the message, for a vision model with its projector.

Kept apart from chat.py, which calls three functions: the arguments, the images read before the model loads (so a bad
file costs no load), and the engine wrapped so that this turn's message carries them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError


def add_arguments(chat: Any) -> None:
    chat.add_argument("--image", action="append", type=Path, default=[], metavar="PATH",
                      help="add an image to the message (PNG, JPEG, WebP, GIF, BMP, TIFF; repeatable), for a "
                      "vision model: its projector is the mmproj-*.gguf beside the model unless --mmproj names it",
                      )  # fmt: skip
    chat.add_argument("--mmproj", type=Path, default=None, metavar="PATH",
                      help="the vision model's projector (mmproj-*.gguf)")  # fmt: skip
    chat.add_argument("--mmproj-cpu", action="store_true",
                      help="keep the projector on the CPU (by default: on the GPU when there is one)")  # fmt: skip


@dataclass(frozen=True)
class ChatImages:
    """The images of this message (ImageStore hashes) and the projector to load."""

    hashes: tuple[str, ...] = ()
    projector: Path | None = None
    notes: tuple[str, ...] = field(default=())  # what normalizing changed, per image, for stderr
    projector_gpu: bool = True


def prepare(args: argparse.Namespace) -> ChatImages:
    """Reads and stores the --image files and finds the projector; LlamaDeskError (one sentence) when it cannot."""
    from llamadesk.core import library
    from llamadesk.core.images import ImageStore

    paths: list[Path] = list(getattr(args, "image", None) or [])
    projector: Path | None = getattr(args, "mmproj", None)
    if not paths and projector is None:
        return ChatImages()
    if getattr(args, "endpoint", None):
        raise LlamaDeskError("--image and --mmproj work with a local model; leave out --endpoint.")
    if getattr(args, "complete", False):
        raise LlamaDeskError("--complete continues text only; leave out --image and --mmproj.")
    if projector is None:
        projector = library.projector_for(Path(args.model))
        if projector is None:
            raise LlamaDeskError(
                f"No projector (mmproj-*.gguf) sits next to {Path(args.model).name}, so it cannot read images; "
                "name the model's projector with --mmproj."
            )
    store = ImageStore()
    hashes: list[str] = []
    notes: list[str] = []
    for path in paths:
        image = store.add(path)
        hashes.append(image.sha256)
        if image.notes:
            notes.append(f"{path.name}: {', '.join(image.notes)}")
    return ChatImages(tuple(hashes), projector, tuple(notes), not getattr(args, "mmproj_cpu", False))


def show_notes(images: ChatImages) -> None:
    for note in images.notes:
        print(f"[{note}]", file=sys.stderr)


class ImagesEngine:
    """The loaded engine, with this turn's images added to the last user message it is given (what the conversation
    core hands the engine is text; the history does not keep images yet)."""

    def __init__(self, engine: Any, images: ChatImages) -> None:
        self._engine = engine
        self._images = images

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _with_images(self, messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
        from llamadesk.core.engines.vision import with_images

        out = list(messages)
        for i in range(len(out) - 1, -1, -1):
            if out[i].get("role") == "user":
                out[i] = with_images(out[i], self._images.hashes)
                break
        return out

    def stream(self, messages: Sequence[dict[str, str]], *args: Any, **kwargs: Any) -> Iterator[Any]:
        events: Iterator[Any] = self._engine.stream(self._with_images(messages), *args, **kwargs)
        return events

    def count_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return int(self._engine.count_tokens(self._with_images(messages)))


def wrap(engine: Any, images: ChatImages) -> Any:
    return ImagesEngine(engine, images) if images.hashes else engine

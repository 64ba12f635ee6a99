"""`llamadesk chat --image PATH… [--mmproj P]`: images in the message, for a vision model with its projector.

Kept apart from chat.py, which calls three functions: the arguments, the images read before the model loads (so a bad
file costs no load), and the notes on stderr. The images are saved with the user message (`ChatImages.refs`, passed to
turn.begin_turn), so the history sends them again in every later turn and exports them."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history.models import MessageImage


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
    """The images of this message (in the ImageStore) and the projector to load."""

    refs: tuple[MessageImage, ...] = ()
    projector: Path | None = None
    notes: tuple[str, ...] = field(default=())  # what normalizing changed, per image, for stderr
    projector_gpu: bool = True


def prepare(args: argparse.Namespace) -> ChatImages:
    """Reads and stores the --image files and finds the projector; LlamaDeskError (one sentence) when it cannot."""
    from llamadesk.core import library
    from llamadesk.core.images import ImageStore

    paths: list[Path] = list(getattr(args, "image", None) or [])
    projector: Path | None = getattr(args, "mmproj", None)
    earlier = not paths and projector is None and _conversation_has_images(args)
    if not paths and projector is None and not earlier:
        return ChatImages()
    if getattr(args, "endpoint", None):
        raise LlamaDeskError("--image and --mmproj work with a local model; leave out --endpoint.")
    if getattr(args, "complete", False):
        raise LlamaDeskError("--complete continues text only; leave out --image and --mmproj.")
    if projector is None:
        projector = library.projector_for(Path(args.model))
        if projector is None:
            why = f"conversation {args.conversation} holds images" if earlier else "it cannot read images"
            raise LlamaDeskError(
                f"No projector (mmproj-*.gguf) sits next to {Path(args.model).name}, so {why}; "
                "name the model's projector with --mmproj."
            )
    store = ImageStore()
    refs: list[MessageImage] = []
    notes: list[str] = []
    for path in paths:
        image = store.add(path)
        refs.append(MessageImage(image.sha256, image.mime, image.width, image.height))
        if image.notes:
            notes.append(f"{path.name}: {', '.join(image.notes)}")
    return ChatImages(tuple(refs), projector, tuple(notes), not getattr(args, "mmproj_cpu", False))


def _conversation_has_images(args: argparse.Namespace) -> bool:
    """Whether the conversation being continued (--conversation) sends images on its branch: every later turn sends
    them again, so the projector is loaded for it as when --image names one."""
    cid = getattr(args, "conversation", None)
    if cid is None or getattr(args, "no_history", False) or getattr(args, "endpoint", None):
        return False
    from llamadesk.core.history import History
    from llamadesk.paths import get_paths

    db = get_paths().history_db
    if not db.exists():
        return False
    with History(db) as history:
        try:
            return any(m.images for m in history.messages(cid))
        except LlamaDeskError:
            return False  # an unknown conversation is said where chat.py opens it


def show_notes(images: ChatImages) -> None:
    for note in images.notes:
        print(f"[{note}]", file=sys.stderr)

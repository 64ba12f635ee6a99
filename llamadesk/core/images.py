"""Images in the chat: read an attached file safely, normalize it, keep it once by content, and free what nothing uses.

Reading is Pillow's (decoders for PNG, JPEG, WebP, GIF, BMP and TIFF, EXIF, decompression-bomb limits); this module
only decides what LlamaDesk accepts and in what form it keeps it:
- the picture is turned upright by its EXIF orientation, then every piece of metadata is dropped (EXIF with its GPS
  position, XMP, comments, text chunks, ICC profiles): the stored bytes hold pixels only, so nothing about where a
  photo was taken can leave with it, to a model or to a remote endpoint;
- at most MAX_PIXELS pixels are ever decoded (a JPEG larger than that is decoded at 1/2, 1/4 or 1/8 scale by its
  own decoder, "draft" mode; any other format that large is refused in one sentence before a pixel is decoded);
- the longest side is brought down to MAX_SIDE (vision models scale far below it), RGB on white;
- an animated GIF, PNG or WebP, or a multi-page TIFF, gives its first frame (said in `notes`).
The normalized bytes (PNG, or JPEG for a photo that came as JPEG) are stored under their SHA-256 in the data folder
(`ImageStore`): messages refer to images by that hash, the same picture attached twice is stored once, and
`ImageStore.collect_garbage` deletes the files that no message refers to."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError, StorageError, storage_sentence

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # Pillow's names of the formats accepted
FORMAT_WORDS = "PNG, JPEG, WebP, GIF, BMP or TIFF"
MAX_PIXELS = 50_000_000  # decoded at most (RGBA: 200 MB); larger JPEGs are drafted down, others refused
MAX_SIDE = 2048  # the normalized image's longest side
MAX_FILE_BYTES = 256 * 1024 * 1024  # an attached file larger than this is not read at all
THUMBNAIL_SIDE = 256
SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg"}
IMAGES_FOLDER = "images"  # under paths.get_paths().data


class ImageError(LlamaDeskError):
    """An image could not be used (damaged, cut short, too large, not a supported format); one sentence."""


@dataclass(frozen=True)
class NormalizedImage:
    """An image as LlamaDesk keeps and sends it: upright, RGB, no metadata, at most MAX_SIDE on its longest side."""

    data: bytes  # the stored file's bytes
    sha256: str  # of `data`: the image's name in the store and in messages
    mime: str  # "image/png" or "image/jpeg"
    width: int
    height: int
    source_format: str  # Pillow's name of the file's format ("JPEG", "PNG", ...)
    original_width: int
    original_height: int
    had_location: bool = False  # the file carried a GPS position in its EXIF (removed)
    notes: tuple[str, ...] = ()  # what was changed, in words: "scaled down from 6000 × 4000", "first frame of an ..."

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.mime]


def read_image(
    source: Path | bytes, *, name: str | None = None, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE
) -> NormalizedImage:
    """Reads an image file (or the bytes of one, pasted) and normalizes it; ImageError (one sentence) when it cannot.
    `name` is what the sentences call it (the file's name by default)."""
    label = name or (source.name if isinstance(source, Path) else "The pasted image")
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise ImageError(f"{label} could not be opened ({exc.strerror or exc}).") from exc
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{label} is {size / 2**20:,.0f} MB, more than LlamaDesk reads as an image "
                             f"({MAX_FILE_BYTES // 2**20} MB); save a smaller copy first.")  # fmt: skip
        try:
            raw = source.read_bytes()
        except OSError as exc:
            raise ImageError(f"{label} could not be read ({exc.strerror or exc}).") from exc
    else:
        raw = bytes(source)
    if not raw:
        raise ImageError(f"{label} is empty.")
    try:
        return _normalize(raw, label, max_pixels, max_side)
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError(f"{label} is too large to open in the memory available.") from exc
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        IndexError,
        KeyError,
        TypeError,
        struct.error,
        zlib.error,
    ) as exc:
        # Pillow reports damaged data with any of these (a truncated file: OSError "image file is truncated").
        raise ImageError(f"{label} could not be read as an image: the file is damaged or cut short.") from exc


def _open(raw: bytes, label: str, max_pixels: int) -> tuple[Any, tuple[int, int]]:
    """Pillow's image of `raw` (its header read, no pixel decoded yet) and the size it declares. Sizes beyond
    `max_pixels` are refused unless it is a JPEG (drafted down by _normalize). Pillow's own bomb check
    (Image.MAX_IMAGE_PIXELS) stays on as a second line: a non-JPEG past it is refused in the same sentence."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes are checked below
            image = Image.open(io.BytesIO(raw), formats=FORMATS)
    except UnidentifiedImageError as exc:
        raise ImageError(_unsupported_sentence(raw, label)) from exc
    except Image.DecompressionBombError:
        # Past Pillow's limit: its header read by the format's own plugin (Image.open's bomb check is what refused
        # it), for the size in the sentence, or to draft a JPEG down (its decoder can produce it at 1/8 scale).
        image = _open_header_only(raw)
        if image is None or image.format != "JPEG":
            raise ImageError(_too_large_sentence(label, image.size if image else None, max_pixels)) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{label} has no pixels.")
    if width * height > max_pixels and image.format != "JPEG":  # a JPEG is drafted down by _normalize
        raise ImageError(_too_large_sentence(label, (width, height), max_pixels))
    return image, (width, height)


def _open_header_only(raw: bytes) -> Any:
    """The image as its format's plugin opens it (the header only), without Image.open's size check; None if no
    accepted format takes it."""
    from PIL import Image

    Image.init()
    for fmt in FORMATS:
        factory, accept = Image.OPEN[fmt]
        if accept is None or accept(raw[:16]):
            try:
                return factory(io.BytesIO(raw), "")
            except (OSError, SyntaxError, ValueError, EOFError, struct.error):
                continue
    return None


def _normalize(raw: bytes, label: str, max_pixels: int, max_side: int) -> NormalizedImage:
    from PIL import Image, ImageOps

    image, declared = _open(raw, label, max_pixels)
    source_format = image.format or "?"
    turned = _orientation(image) in (5, 6, 7, 8)  # EXIF: stored on its side
    original = (declared[1], declared[0]) if turned else declared
    notes: list[str] = []
    if getattr(image, "is_animated", False):
        notes.append("first page of a multi-page TIFF" if source_format == "TIFF" else "first frame of an animation")
    had_location = _has_location(image)
    # A JPEG is decoded at 1/2, 1/4 or 1/8 scale when that still covers the target size (draft: its decoder does it,
    # in less memory and time); one that even 1/8 leaves above max_pixels is refused before decoding.
    if source_format == "JPEG":
        width, height = image.size
        # draft picks the smallest scale that still covers the size asked: at most 2x it per side, so half the
        # max_pixels bound per side keeps the result within it
        scale = min(max_side / max(width, height), (max_pixels / (width * height)) ** 0.5 / 2)
        if scale < 1:
            image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        if image.size[0] * image.size[1] > max_pixels:
            raise ImageError(_too_large_sentence(label, declared, max_pixels))
    image.load()
    upright = ImageOps.exif_transpose(image)  # turns it by the EXIF orientation; the copy keeps no orientation tag
    rgb = _to_rgb(upright)
    if max(rgb.size) > max_side:
        rgb = rgb.resize(_fit(rgb.size, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if rgb.size != original:
        notes.append(f"scaled down from {original[0]:,} × {original[1]:,}")
    if had_location:
        notes.append("location removed")
    out = io.BytesIO()
    # Saved without exif=, icc_profile= or pnginfo=: Pillow then writes pixels only.
    if source_format == "JPEG":
        rgb.save(out, "JPEG", quality=90)
        mime = "image/jpeg"
    else:
        rgb.save(out, "PNG")
        mime = "image/png"
    data = out.getvalue()
    return NormalizedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        mime=mime,
        width=rgb.size[0],
        height=rgb.size[1],
        source_format=source_format,
        original_width=original[0],
        original_height=original[1],
        had_location=had_location,
        notes=tuple(notes),
    )


def _orientation(image: Any) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block: no orientation, as the decoders themselves do
        return 1


def _has_location(image: Any) -> bool:
    try:
        return bool(image.getexif().get_ifd(0x8825))  # the GPS IFD
    except Exception:  # a damaged EXIF block holds no position we could read either
        return False


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    width, height = size
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(image: Any) -> Any:
    """RGB; transparency is laid on white (what a chat bubble shows), 16-bit grey scaled to 8 bits."""
    from PIL import Image

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _unsupported_sentence(raw: bytes, label: str) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind = Image.open(io.BytesIO(raw)).format
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        kind = None
    if kind:
        return f"{label} is a {kind} image, which LlamaDesk does not read; use a {FORMAT_WORDS} image."
    return f"{label} is not a {FORMAT_WORDS} image, or it is damaged."


def _too_large_sentence(label: str, size: tuple[int, int] | None, max_pixels: int) -> str:
    measured = f" ({size[0]:,} × {size[1]:,} pixels)" if size else ""
    return (
        f"{label} is too large to open safely{measured}: LlamaDesk decodes at most {max_pixels / 1e6:.0f} megapixels; "
        "save a smaller copy first."
    )


def rgb_pixels(data: bytes) -> tuple[int, int, bytes]:
    """A normalized image's pixels for a vision model: (width, height, RGB bytes, row by row)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        return rgb.size[0], rgb.size[1], rgb.tobytes()


def thumbnail(data: bytes, side: int = THUMBNAIL_SIDE) -> bytes:
    """A PNG at most `side` on its longest side, for a chat bubble."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB")
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        small.save(out, "PNG")
        return out.getvalue()


class ImageStore:
    """Normalized images in the data folder, each once, named by the SHA-256 of its bytes: `images/ab/abcd….png`.
    A file is written to a temporary name and renamed, so a crash never leaves half an image under a hash."""

    def __init__(self, folder: Path | None = None) -> None:
        if folder is None:
            from llamadesk.paths import get_paths

            folder = get_paths().data / IMAGES_FOLDER
        self.folder = folder

    def add(self, source: Path | bytes, *, name: str | None = None) -> NormalizedImage:
        """Reads, normalizes and stores an image; returns it (its `sha256` is what a message refers to)."""
        image = read_image(source, name=name)
        self.put(image)
        return image

    def put(self, image: NormalizedImage) -> Path:
        path = self._path(image.sha256, image.suffix)
        if path.is_file():
            os.utime(path)  # fresh again: a garbage collection running now keeps it (see collect_garbage's grace)
            return path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(image.data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(storage_sentence(path.parent, exc)) from exc
        return path

    def path(self, sha256: str) -> Path | None:
        """The stored file of an image, or None when it is not (or no longer) stored."""
        if not _is_hash(sha256):
            return None
        for suffix in SUFFIXES.values():
            candidate = self._path(sha256, suffix)
            if candidate.is_file():
                return candidate
        return None

    def read(self, sha256: str) -> bytes:
        """The stored bytes of an image; ImageError when it is missing or its bytes no longer match their hash."""
        path = self.path(sha256)
        if path is None:
            raise ImageError(f"The image {sha256[:12]} is no longer in LlamaDesk's data folder.")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ImageError(f"The stored image {sha256[:12]} is damaged (its bytes changed on disk); attach it again.")
        return data

    def hashes(self) -> set[str]:
        """Every image stored."""
        if not self.folder.is_dir():
            return set()
        return {p.stem for p in self.folder.glob("??/*") if p.is_file() and _is_hash(p.stem)}

    def collect_garbage(self, referenced: Iterable[str], *, grace_s: float = 3600.0) -> tuple[int, int]:
        """Deletes the stored images not in `referenced` (the hashes that messages still refer to); returns
        (files, bytes) freed. Images stored or attached again within `grace_s` seconds stay: they may belong to a
        message that is being written now. Left-over temporary files older than that go too."""
        keep = set(referenced)
        cutoff = time.time() - grace_s
        files = freed = 0
        if not self.folder.is_dir():
            return 0, 0
        for path in self.folder.glob("??/*"):
            try:
                stat = path.stat()
                stem_is_image = _is_hash(path.stem)
                if (stem_is_image and path.stem in keep) or stat.st_mtime > cutoff:
                    continue
                if not stem_is_image and not path.name.startswith(".incoming-"):
                    continue  # not ours: left alone
                path.unlink()
            except OSError:
                continue  # gone meanwhile, or not ours to delete: the next collection tries again
            files += 1
            freed += stat.st_size
        for sub in self.folder.glob("??"):
            with contextlib.suppress(OSError):
                sub.rmdir()  # only when empty
        return files, freed

    def _path(self, sha256: str, suffix: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}{suffix}"


def _is_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)

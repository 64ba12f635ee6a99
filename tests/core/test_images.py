"""Attached images: real files written by Pillow (by hand where Pillow cannot write them), read by core/images.py."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from llamadesk.core.images import MAX_SIDE, ImageError, ImageStore, read_image, rgb_pixels, thumbnail

RED, BLUE, GREEN = (230, 20, 20), (20, 20, 230), (20, 200, 20)


def saved(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def pixel(data: bytes, xy: tuple[int, int]) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as image:
        value = image.convert("RGB").getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_each_accepted_format_is_read_upright_rgb_without_metadata(fmt: str, tmp_path: Path) -> None:
    source = tmp_path / f"picture.{fmt.lower()}"
    source.write_bytes(saved(Image.new("RGB", (64, 48), RED), fmt))
    image = read_image(source)
    assert (image.width, image.height) == (64, 48) == (image.original_width, image.original_height)
    assert image.source_format == fmt and image.notes == ()
    assert image.mime == ("image/jpeg" if fmt == "JPEG" else "image/png")
    assert close(pixel(image.data, (10, 10)), RED)
    assert read_image(source).sha256 == image.sha256  # the same file gives the same bytes, so the same name
    width, height, rgb = rgb_pixels(image.data)
    assert (width, height, len(rgb)) == (64, 48, 64 * 48 * 3)


def test_pasted_bytes_are_read_like_a_file() -> None:
    image = read_image(saved(Image.new("RGB", (8, 8), BLUE), "PNG"))
    assert close(pixel(image.data, (0, 0)), BLUE)


def test_exif_orientation_is_honoured_and_exif_with_gps_is_dropped(tmp_path: Path) -> None:
    # stored on its side: 40 wide, 20 high, left half red; orientation 6 means "turn 90° clockwise to view"
    sideways = Image.new("RGB", (40, 20), BLUE)
    sideways.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "CameraMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(saved(sideways, "JPEG", exif=exif.tobytes(), quality=95))
    with Image.open(photo) as original:
        assert original.getexif().get_ifd(0x8825)  # the file really carries a position

    image = read_image(photo)
    assert (image.width, image.height) == (20, 40)  # upright
    assert (image.original_width, image.original_height) == (20, 40)
    assert close(pixel(image.data, (10, 5)), RED) and close(pixel(image.data, (10, 35)), BLUE)
    assert image.had_location and "location removed" in image.notes
    with Image.open(io.BytesIO(image.data)) as normalized:
        assert dict(normalized.getexif()) == {}
        assert "exif" not in normalized.info and "icc_profile" not in normalized.info
    assert b"Exif" not in image.data and b"CameraMaker" not in image.data


def test_png_text_chunks_are_dropped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret-note-in-the-file")
    image = read_image(saved(Image.new("RGB", (10, 10), GREEN), "PNG", pnginfo=info))
    assert b"secret-note-in-the-file" not in image.data


def test_transparency_is_laid_on_white_and_palette_and_16_bit_are_converted() -> None:
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    clear.paste((*RED, 255), (0, 0, 5, 10))
    image = read_image(saved(clear, "PNG"))
    assert close(pixel(image.data, (8, 5)), (255, 255, 255), 2) and close(pixel(image.data, (2, 5)), RED, 2)
    assert close(pixel(read_image(saved(Image.new("P", (4, 4), 3), "GIF")).data, (0, 0)), (3, 3, 3), 60)
    deep = Image.new("I;16", (4, 4), 65535)
    assert close(pixel(read_image(saved(deep, "PNG")).data, (0, 0)), (255, 255, 255), 2)


def test_an_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in (GREEN, RED, BLUE)]
    gif = saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = read_image(gif, name="dance.gif")
    assert close(pixel(image.data, (8, 8)), GREEN)
    assert image.notes == ("first frame of an animation",)


def test_an_animated_webp_and_a_multi_page_tiff_give_their_first() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in (BLUE, RED)]
    webp = read_image(saved(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))
    assert close(pixel(webp.data, (8, 8)), BLUE) and webp.notes == ("first frame of an animation",)
    tiff = read_image(saved(frames[0], "TIFF", save_all=True, append_images=frames[1:]))
    assert close(pixel(tiff.data, (8, 8)), BLUE) and tiff.notes == ("first page of a multi-page TIFF",)


def test_a_large_image_is_scaled_down_to_the_longest_side() -> None:
    image = read_image(saved(Image.new("RGB", (MAX_SIDE * 2, 1000), RED), "PNG"))
    assert (image.width, image.height) == (MAX_SIDE, 500)
    assert image.notes == (f"scaled down from {MAX_SIDE * 2:,} × 1,000",)


def test_a_jpeg_beyond_the_pixel_bound_is_decoded_at_a_smaller_scale() -> None:
    big = saved(Image.new("RGB", (4000, 3000), RED), "JPEG")
    image = read_image(big, max_pixels=1_000_000)
    assert image.width * image.height <= 1_000_000 and (image.width, image.height) == (1000, 750)
    assert close(pixel(image.data, (500, 300)), RED)
    with pytest.raises(ImageError, match=r"too large to open safely \(4,000 × 3,000 pixels\)"):
        read_image(saved(Image.new("RGB", (4000, 3000), RED), "PNG"), max_pixels=1_000_000)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_grey_png(path: Path, width: int, height: int, *, rows: int | None = None) -> Path:
    """A real greyscale PNG written row by row (Pillow would hold the whole image in memory to write it);
    `rows` writes only that many rows: a file cut short."""
    packer = zlib.compressobj(1)
    row = b"\x00" + b"\x80" * width
    with path.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        data = bytearray()
        for _ in range(height if rows is None else rows):
            data += packer.compress(row)
            if len(data) > 1 << 20:
                f.write(_png_chunk(b"IDAT", bytes(data)))
                data.clear()
        if rows is None:
            data += packer.flush()
        f.write(_png_chunk(b"IDAT", bytes(data)))
        if rows is None:
            f.write(_png_chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_grey_png(tmp_path_factory.mktemp("huge") / "huge.png", 20_000, 20_000)


def test_a_20000_by_20000_png_is_refused_within_a_memory_bound(huge_png: Path) -> None:
    # In a child limited to 1 GB of address space: decoding the 400-megapixel image (400 MB as grey, 1.2 GB as RGB)
    # could not fit there, so the sentence proves it was refused from the header alone.
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from pathlib import Path
        from llamadesk.core.images import ImageError, read_image
        try:
            read_image(Path({str(huge_png)!r}))
        except ImageError as exc:
            print(exc)
    """)
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "huge.png is too large to open safely (20,000 × 20,000 pixels): LlamaDesk decodes at most 50 megapixels; "
        "save a smaller copy first."
    )
    assert huge_png.stat().st_size < 2_000_000 and time.monotonic() - started < 100


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    # A header claiming 100,000 × 100,000 pixels over a few bytes of data: past Pillow's own limit too.
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + _png_chunk(b"IEND", b"")
    )
    with pytest.raises(ImageError, match=r"bomb\.png is too large to open safely"):
        read_image(bomb, name="bomb.png")


def test_a_huge_jpeg_past_pillows_own_limit_is_drafted_or_refused() -> None:
    # JPEG headers can claim 65,535 × 65,535; the data here is cut short, so it ends as a damaged file, in a sentence
    header = saved(Image.new("RGB", (16, 16), RED), "JPEG")
    sof = header.index(b"\xff\xc0")
    claimed = header[: sof + 5] + struct.pack(">HH", 60_000, 60_000) + header[sof + 9 :]
    with pytest.raises(ImageError, match=r"huge\.jpg (could not be read as an image|is too large to open safely)"):
        read_image(claimed[: len(claimed) // 2], name="huge.jpg")


def test_a_truncated_file_is_a_sentence(tmp_path: Path) -> None:
    cut = write_grey_png(tmp_path / "cut.png", 300, 300, rows=100)
    with pytest.raises(
        ImageError, match=r"^cut\.png could not be read as an image: the file is damaged or cut short\.$"
    ):
        read_image(cut)
    photo = saved(Image.effect_noise((300, 300), 60).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="damaged or cut short"):
        read_image(photo[: len(photo) // 3], name="photo.jpg")


def test_not_an_image_and_unsupported_formats_are_sentences(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"^notes\.png is not a PNG, JPEG, WebP, GIF, BMP or TIFF image, or it is"):
        read_image(os.urandom(2000), name="notes.png")
    with pytest.raises(ImageError, match=r"^old\.ppm is a PPM image, which LlamaDesk does not read"):
        read_image(saved(Image.new("RGB", (4, 4)), "PPM"), name="old.ppm")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"^empty\.png is empty\.$"):
        read_image(empty)
    with pytest.raises(ImageError, match=r"^gone\.png could not be opened"):
        read_image(tmp_path / "gone.png")


def test_the_store_keeps_each_image_once_and_collects_what_nothing_uses(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    red = store.add(saved(Image.new("RGB", (8, 8), RED), "PNG"))
    again = store.add(saved(Image.new("RGB", (8, 8), RED), "PNG"))
    blue = store.add(saved(Image.new("RGB", (8, 8), BLUE), "JPEG"))
    assert red.sha256 == again.sha256 and store.hashes() == {red.sha256, blue.sha256}
    assert store.read(red.sha256) == red.data
    path = store.path(blue.sha256)
    assert path is not None and path.name == f"{blue.sha256}.jpg" and path.parent.name == blue.sha256[:2]

    assert store.collect_garbage([red.sha256]) == (0, 0)  # just stored: kept for the grace period
    files, freed = store.collect_garbage([red.sha256], grace_s=0)
    assert (files, freed) == (1, len(blue.data))
    assert store.hashes() == {red.sha256} and store.path(blue.sha256) is None
    with pytest.raises(ImageError, match="no longer in LlamaDesk's data folder"):
        store.read(blue.sha256)

    red_path = store.path(red.sha256)
    assert red_path is not None
    red_path.write_bytes(b"changed")
    with pytest.raises(ImageError, match="is damaged"):
        store.read(red.sha256)


def test_the_store_lives_in_the_data_folder(llamadesk_home: Path) -> None:
    image = ImageStore().add(saved(Image.new("RGB", (8, 8), GREEN), "PNG"))
    assert (llamadesk_home / "data" / "images" / image.sha256[:2] / f"{image.sha256}.png").is_file()


def test_thumbnail_fits_a_chat_bubble() -> None:
    image = read_image(saved(Image.new("RGB", (1200, 600), RED), "PNG"))
    with Image.open(io.BytesIO(thumbnail(image.data))) as small:
        assert small.size == (256, 128) and small.format == "PNG"

"""Renders assets/icons/llamadesk.svg into the PNG sizes, the Windows .ico and the macOS .icns the installers use.

    python packaging/icons/make_icons.py            # writes assets/icons/llamadesk-<N>.png, llamadesk.ico, .icns
    python packaging/icons/make_icons.py --check    # exits 1 if a generated file is missing or has the wrong size

Rendering uses Qt's own SVG renderer (QtSvg, part of PySide6-Essentials), so no extra tool is needed. The .ico and
.icns containers hold PNG images, which Windows Vista+ and macOS 10.7+ read; they are written here byte by byte.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ICONS = ROOT / "assets" / "icons"
SVG = ICONS / "llamadesk.svg"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)  # the freedesktop hicolor sizes, plus 512 for app stores
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# icns element types holding PNG data, with their pixel size (the @2x types hold twice the point size).
ICNS_TYPES = (
    (b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256), (b"ic09", 512),
    (b"ic11", 32), (b"ic12", 64), (b"ic13", 256), (b"ic14", 512), (b"ic10", 1024),
)  # fmt: skip


def png_path(size: int) -> Path:
    return ICONS / f"llamadesk-{size}.png"


def generated_files() -> list[Path]:
    return [png_path(s) for s in PNG_SIZES] + [ICONS / "llamadesk.ico", ICONS / "llamadesk.icns"]


def render_png(svg: Path, size: int) -> bytes:
    """The SVG rendered into a size×size transparent PNG, antialiased."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF
    from PySide6.QtGui import QGuiApplication, QImage, QImageWriter, QPainter
    from PySide6.QtSvg import QSvgRenderer

    if QGuiApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _keep.append(QGuiApplication(sys.argv[:1]))
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: {svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buffer, QByteArray(b"png"))
    if not writer.write(image):
        raise SystemExit(f"make_icons: could not encode a {size} px PNG: {writer.errorString()}")
    buffer.close()
    return bytes(data.data())


_keep: list[object] = []  # the QGuiApplication, alive for the whole run


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """A Windows .ico whose entries are PNG images (ICONDIR, ICONDIRENTRY × n, then the images)."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    entries = b""
    images = b""
    for s in sizes:
        data = pngs[s]
        dim = 0 if s >= 256 else s  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset + len(images))
        images += data
    return header + entries + images


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """A macOS .icns: 'icns' + total length, then (type, length, PNG) elements."""
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def check() -> list[str]:
    """Problems with the generated files (missing, or a PNG of the wrong size); empty when all is well."""
    problems = []
    for size in PNG_SIZES:
        path = png_path(size)
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif png_size(path.read_bytes()) != (size, size):
            problems.append(f"{path} is not {size}×{size}")
    for path in (ICONS / "llamadesk.ico", ICONS / "llamadesk.icns"):
        if not path.is_file() or path.stat().st_size < 64:
            problems.append(f"{path} is missing or empty")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only check that the generated files exist")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    wanted = sorted(set(PNG_SIZES) | set(ICO_SIZES) | {size for _, size in ICNS_TYPES})
    pngs = {size: render_png(SVG, size) for size in wanted}
    for size in PNG_SIZES:
        png_path(size).write_bytes(pngs[size])
    (ICONS / "llamadesk.ico").write_bytes(ico_bytes({s: pngs[s] for s in ICO_SIZES}))
    (ICONS / "llamadesk.icns").write_bytes(icns_bytes(pngs))
    for path in generated_files():
        print(f"{path.relative_to(ROOT)}\t{path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The AppImage's AppDir, laid out by build_appimage.sh from a stand-in onedir (no tool fetched, nothing compressed)."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import llamadesk
from llamadesk.paths import APP_ID

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "packaging" / "linux" / "build_appimage.sh"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="AppImages are Linux-only")


def _desktop(path: Path) -> configparser.SectionProxy:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(path, encoding="utf-8")
    return entry["Desktop Entry"]


@pytest.fixture(scope="module")
def appdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("appimage")
    bundle = tmp / "llamadesk"
    (bundle / "_internal" / "assets" / "models").mkdir(parents=True)
    exe = bundle / "llamadesk"
    # The stand-in frozen app prints its arguments, one a line, so the test sees that none was split or lost.
    exe.write_text('#!/bin/sh\nfor a in "$@"; do printf "arg:%s\\n" "$a"; done\n', encoding="utf-8")
    exe.chmod(0o755)
    model = bundle / "_internal" / "assets" / "models" / "starter.gguf"
    model.write_bytes(b"GGUF")
    model.chmod(0o600)  # the cache copy of a model can be private; in the image every user must read it
    env = {**os.environ, "APPIMAGE_APPDIR_ONLY": "1", "APPIMAGE_WORK": str(tmp / "work")}
    result = subprocess.run(
        ["bash", str(SCRIPT), str(bundle)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == tmp / "work" / "LlamaDesk.AppDir"
    return path


def test_apprun_starts_the_onedir_with_the_arguments_untouched(appdir: Path) -> None:
    apprun = appdir / "AppRun"
    assert apprun.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    assert os.access(apprun, os.X_OK)
    args = ["chat", "--model", "/a path/with spaces.gguf", "What is 2+2?", ""]
    # The runtime runs AppRun from wherever it mounted or unpacked the image: from another folder, too.
    result = subprocess.run([str(apprun), *args], cwd="/", capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"arg:{a}" for a in args]
    assert (appdir / "usr" / "bin" / "llamadesk").resolve() == (appdir / "usr/lib/llamadesk/llamadesk").resolve()


def test_top_level_desktop_file_and_icon_are_what_appimage_tools_read(appdir: Path) -> None:
    desktops = list(appdir.glob("*.desktop"))
    assert [d.name for d in desktops] == [f"{APP_ID}.desktop"], "exactly one desktop file at the top"
    top = _desktop(desktops[0])
    source = _desktop(ROOT / "packaging" / "linux" / f"{APP_ID}.desktop")
    assert {k: v for k, v in top.items() if k != "X-AppImage-Version"} == dict(source.items())
    assert top["X-AppImage-Version"] == llamadesk.__version__
    assert desktops[0].read_bytes() == (appdir / "usr/share/applications" / f"{APP_ID}.desktop").read_bytes()
    icon = appdir / f"{top['Icon']}.png"
    assert icon.is_file() and icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (appdir / ".DirIcon").resolve() == icon.resolve()


def test_share_tree_has_metainfo_and_every_icon(appdir: Path) -> None:
    assert (appdir / "usr/share/metainfo" / f"{APP_ID}.metainfo.xml").read_bytes() == (
        ROOT / "packaging" / "linux" / f"{APP_ID}.metainfo.xml"
    ).read_bytes()
    sizes = sorted(int(re.sub(r"\D", "", p.stem)) for p in (ROOT / "assets" / "icons").glob("llamadesk-*.png"))
    assert sizes
    for size in sizes:
        assert (appdir / f"usr/share/icons/hicolor/{size}x{size}/apps/{APP_ID}.png").is_file()
    assert (appdir / f"usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg").is_file()


def test_every_file_is_readable_by_every_user(appdir: Path) -> None:
    # FUSE shows the image with the modes stored in it; a file only its owner (root at build time) reads would be
    # unreadable for the user who starts the AppImage.
    for path in appdir.rglob("*"):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        assert mode & 0o004, f"{path} is not world-readable"
        assert not mode & 0o022, f"{path} is group/world-writable"


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-validate is not installed")
def test_top_level_desktop_file_validates(appdir: Path) -> None:
    result = subprocess.run(
        ["desktop-file-validate", str(appdir / f"{APP_ID}.desktop")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "error" not in result.stdout.lower(), result.stdout + result.stderr

"""The installers' sources agree with each other and with the app, checked without building anything."""

from __future__ import annotations

import ast
import configparser
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import llamadesk
from llamadesk.paths import APP_ID

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
SPEC = PACKAGING / "pyinstaller" / "llamadesk.spec"
NSI = PACKAGING / "windows" / "llamadesk.nsi"
DESKTOP = PACKAGING / "linux" / f"{APP_ID}.desktop"
METAINFO = PACKAGING / "linux" / f"{APP_ID}.metainfo.xml"
SHELL_SCRIPTS = sorted(PACKAGING.rglob("*.sh"))

sys.path.insert(0, str(PACKAGING / "icons"))
sys.path.insert(0, str(PACKAGING / "pyinstaller"))
import make_icons  # noqa: E402
import slimming  # noqa: E402


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


# --- the CI workflow ---------------------------------------------------------------------------------------------
def _workflow() -> dict[Any, Any]:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_workflow_parses_and_builds_every_os_and_backend() -> None:
    data = _workflow()
    triggers = data["on"] if "on" in data else data[True]  # YAML 1.1 reads a bare `on` key as True
    assert "push" in triggers and "workflow_dispatch" in triggers
    matrix = data["jobs"]["build"]["strategy"]["matrix"]["include"]
    combos = {(m["os"].split("-")[0], m["backend"]) for m in matrix}
    wanted = {("ubuntu", "cpu"), ("ubuntu", "cuda"), ("windows", "cpu"), ("windows", "cuda"), ("macos", "metal")}
    assert wanted <= combos
    assert any(m["os"] == "macos-14" for m in matrix), "Metal needs an Apple Silicon runner"


def test_workflow_caches_the_llama_wheel_per_backend() -> None:
    steps = _workflow()["jobs"]["build"]["steps"]
    caches = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache@")]
    wheel = [s for s in caches if s["with"]["path"] == ".wheelhouse"]
    assert wheel, "no cache for the llama-cpp-python wheelhouse"
    assert "matrix.backend" in wheel[0]["with"]["key"] and "runner.os" in wheel[0]["with"]["key"]
    env = _workflow()["jobs"]["build"]["env"]
    assert env["LLAMADESK_WHEELHOUSE"].endswith("/.wheelhouse")


def test_workflow_runs_only_scripts_that_exist() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    referenced = set(re.findall(r"(packaging/[\w./-]+\.(?:sh|py|nsi))", text))
    assert referenced, "the workflow should call the packaging scripts"
    for path in referenced:
        assert (ROOT / path).is_file(), f"{path} is referenced by the workflow but missing"


# --- shell scripts -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_script_is_strict_and_parses(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    result = _run(["bash", "-n", str(script)])
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_scripts_pass_shellcheck() -> None:
    result = _run(["shellcheck", *map(str, SHELL_SCRIPTS)])
    assert result.returncode == 0, result.stdout + result.stderr


# --- PyInstaller -------------------------------------------------------------------------------------------------
def test_spec_references_existing_files() -> None:
    text = SPEC.read_text(encoding="utf-8")
    ast.parse(text)  # a spec is Python
    spec_dir = SPEC.parent
    for name in re.findall(r'SPEC_DIR / "([^"]+)"', text):
        assert (spec_dir / name).exists(), name
    for parts in re.findall(r'ROOT((?: / "[^"]+")+)', text):
        path = ROOT.joinpath(*re.findall(r'"([^"]+)"', parts))
        assert path.exists(), path
    assert (spec_dir / "hooks" / "hook-llama_cpp.py").is_file()
    assert (spec_dir / "slimming.py").is_file()


def test_hook_collects_llama_cpp_shared_libraries() -> None:
    hook = (PACKAGING / "pyinstaller" / "hooks" / "hook-llama_cpp.py").read_text(encoding="utf-8")
    assert 'collect_dynamic_libs("llama_cpp")' in hook


def test_slimming_keeps_what_a_window_needs_and_drops_the_rest() -> None:
    keep = [
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/imageformats/libqsvg.so",
        "PySide6/Qt/plugins/platforminputcontexts/libibusplatforminputcontextplugin.so",
        "llama_cpp/lib/libllama.so.0",
    ]
    drop = [
        "PySide6/Qt/plugins/platforms/libqvnc.so",
        "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
        "PySide6/Qt/plugins/wayland-shell-integration/libxdg-shell.so",
        "PySide6/Qt/plugins/imageformats/libqtiff.so",
        "PySide6/Qt/plugins/tls/libqopensslbackend.so",
    ]
    assert all(slimming.plugin_kept(d, "linux") for d in keep)
    assert not any(slimming.plugin_kept(d, "linux") for d in drop)
    assert slimming.plugin_kept("PySide6/plugins/platforms/qwindows.dll", "win32")
    assert slimming.is_translation("PySide6/Qt/translations/qtbase_de.qm")


def test_slimming_prunes_libraries_nothing_needs() -> None:
    binaries = [
        ("PySide6/QtWidgets.abi3.so", "/src/QtWidgets.abi3.so", "EXTENSION"),
        ("PySide6/Qt/lib/libQt6Widgets.so.6", "/src/libQt6Widgets.so.6", "BINARY"),
        ("PySide6/Qt/lib/libQt6Core.so.6", "/src/libQt6Core.so.6", "BINARY"),
        ("PySide6/Qt/lib/libQt6Network.so.6", "/src/libQt6Network.so.6", "BINARY"),
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", "/src/libqgtk3.so", "BINARY"),
        ("libgtk-3.so.0", "/usr/lib/libgtk-3.so.0", "BINARY"),
        ("libxcb-cursor.so.0", "/usr/lib/libxcb-cursor.so.0", "BINARY"),
        ("PySide6/Qt/plugins/platforms/libqxcb.so", "/src/libqxcb.so", "BINARY"),
        ("libpython3.11.so.1.0", "/usr/lib/libpython3.11.so.1.0", "BINARY"),
    ]
    graph = {
        "/src/QtWidgets.abi3.so": ["libQt6Widgets.so.6"],
        "/src/libQt6Widgets.so.6": ["libQt6Core.so.6"],
        "/src/libqgtk3.so": ["libgtk-3.so.0"],
        "/src/libqxcb.so": ["libxcb-cursor.so.0", "libQt6Core.so.6"],
    }
    kept = slimming.slim_binaries(binaries, lambda src: [(n, None) for n in graph.get(src, [])], "linux")
    names = {e[0] for e in kept}
    assert "PySide6/Qt/lib/libQt6Core.so.6" in names and "libxcb-cursor.so.0" in names
    assert "libpython3.11.so.1.0" in names  # loaded by the bootloader, never pruned
    assert not names & {"PySide6/Qt/lib/libQt6Network.so.6", "libgtk-3.so.0"}
    assert not any("platformthemes" in n for n in names)


def test_llama_libraries_are_deduplicated_into_symlinks() -> None:
    binaries = [
        (f"llama_cpp/lib/libllama.so{suffix}", f"/w/llama_cpp/lib/libllama.so{suffix}", "BINARY")
        for suffix in ("", ".0", ".0.5.0")
    ] + [("llama_cpp/lib/libmtmd.so", "/w/llama_cpp/lib/libmtmd.so", "BINARY")]
    out = slimming.dedupe_llama_libs(binaries, "linux")
    assert ("llama_cpp/lib/libllama.so.0", "/w/llama_cpp/lib/libllama.so.0", "BINARY") in out
    assert ("llama_cpp/lib/libllama.so", "libllama.so.0", "SYMLINK") in out
    assert not any(e[0].endswith(".0.5.0") for e in out)
    assert ("llama_cpp/lib/libmtmd.so", "/w/llama_cpp/lib/libmtmd.so", "BINARY") in out
    assert slimming.dedupe_llama_libs(binaries, "darwin") == binaries


# --- Linux desktop integration -----------------------------------------------------------------------------------
def test_desktop_file_names_the_app_id_and_command() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(DESKTOP, encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Icon"] == APP_ID
    assert section["Exec"].split()[0] == "llamadesk"
    assert section["StartupWMClass"] == "LlamaDesk"  # Qt's WM_CLASS class is the application name


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-validate is not installed")
def test_desktop_file_validates() -> None:
    result = _run(["desktop-file-validate", str(DESKTOP)])
    assert result.returncode == 0 and "error" not in result.stdout.lower(), result.stdout + result.stderr


def test_metainfo_matches_the_app() -> None:
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == f"{APP_ID}.desktop"
    releases = [r.get("version") for r in root.iter("release")]
    assert releases and releases[0] == llamadesk.__version__, "add a <release> for the new version"
    images = [i.text or "" for i in root.iter("image")]
    assert images and all(i.startswith("https://") for i in images)


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstreamcli is not installed")
def test_metainfo_validates() -> None:
    result = _run(["appstreamcli", "validate", "--no-net", str(METAINFO)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_deb_control_template_has_every_placeholder() -> None:
    text = (PACKAGING / "linux" / "control.in").read_text(encoding="utf-8")
    for key in ("@PACKAGE@", "@VERSION@", "@ARCH@", "@INSTALLED_SIZE@", "@DEPENDS@"):
        assert key in text


# --- Windows -----------------------------------------------------------------------------------------------------
def _nsi_default(name: str) -> str:
    m = re.search(rf'!define {name} "([^"]*)"', NSI.read_text(encoding="utf-8"))
    assert m, f"no default for {name}"
    return m.group(1)


def test_nsis_script_version_and_files() -> None:
    text = NSI.read_text(encoding="utf-8")
    assert _nsi_default("VERSION") == llamadesk.__version__
    assert "RequestExecutionLevel user" in text and "$LOCALAPPDATA\\Programs" in text
    assert "$SMPROGRAMS" in text and "WriteUninstaller" in text and 'Section "Uninstall"' in text
    assert (NSI.parent / _nsi_default("ICON")).resolve().is_file()


@pytest.mark.skipif(shutil.which("makensis") is None, reason="makensis (NSIS) is not installed")
def test_nsis_script_compiles(tmp_path: Path) -> None:
    source = tmp_path / "LlamaDesk"
    (source / "_internal").mkdir(parents=True)
    for name in ("LlamaDesk.exe", "llamadesk-cli.exe", "_internal/base_library.zip"):
        (source / name).write_bytes(b"stand-in")
    result = _run(
        ["makensis", "-V2", "-WX", f"-DSOURCE_DIR={source}", f"-DOUT_DIR={tmp_path}", NSI.name], cwd=NSI.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / f"LlamaDesk-{llamadesk.__version__}-windows-x64-cpu-setup.exe").is_file()


# --- macOS -------------------------------------------------------------------------------------------------------
def test_macos_pieces_exist() -> None:
    entitlements = PACKAGING / "macos" / "entitlements.plist"
    ET.parse(entitlements)
    script = (PACKAGING / "macos" / "build_app.sh").read_text(encoding="utf-8")
    assert "notarytool" in script and "codesign" in script and "hdiutil" in script


# --- icons -------------------------------------------------------------------------------------------------------
def test_icons_generated_from_the_svg_are_all_there() -> None:
    assert make_icons.SVG.is_file()
    assert make_icons.check() == []


def test_ico_and_icns_hold_the_expected_sizes() -> None:
    ico = (make_icons.ICONS / "llamadesk.ico").read_bytes()
    reserved, kind, count = (int.from_bytes(ico[i : i + 2], "little") for i in (0, 2, 4))
    assert (reserved, kind, count) == (0, 1, len(make_icons.ICO_SIZES))
    icns = (make_icons.ICONS / "llamadesk.icns").read_bytes()
    assert icns[:4] == b"icns" and int.from_bytes(icns[4:8], "big") == len(icns)
    for kind_code, _size in make_icons.ICNS_TYPES:
        assert kind_code in icns

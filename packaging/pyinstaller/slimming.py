"""What the LlamaDesk bundle leaves out: unused Qt plugins, translations and libraries, duplicate llama.cpp copies.

Used by llamadesk.spec on the Analysis tables of contents, whose entries are (destination, source, typecode)
tuples; kept free of PyInstaller imports (except `get_imports`, passed in) so the packaging tests can run it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence

Entry = tuple[str, str, str]  # (destination name in the bundle, source path or symlink target, typecode)
ImportsOf = Callable[[str], Iterable[tuple[str, str | None]]]  # a binary → [(referenced library name, resolved)]

# Qt plugins kept, by folder → file stems (None: the whole folder). Everything else under plugins/ is left out.
KEEP_PLUGINS: dict[str, set[str] | None] = {
    "platforms": {"qxcb", "qoffscreen", "qwindows", "qcocoa"},  # offscreen: --smoke-test and CI without a display
    "imageformats": {"qsvg", "qico"},  # the SVG app icon; PNG is built into QtGui
    "iconengines": None,  # SVG icons
    "platforminputcontexts": None,  # compose key and IBus: typing accents and CJK in the composer
    "xcbglintegrations": None,  # lets the xcb plugin initialise GL cleanly where it is present
    "styles": None,  # Windows: the native "windows11"/"modernwindows" style
}

# Python packages that only optional features of our dependencies import, or only the tests and tools do. Nothing
# that LlamaDesk itself imports, at start-up or on first use, may be here: tests/packaging/test_bundle_imports.py
# runs llamadesk.import_sweep and fails on any module of this list that it finds imported.
# (The one-window hand-over needs PySide6.QtNetwork, the local server uvicorn, and Linux's keyring backend
# secretstorage needs cryptography: all three were once on this list, and the bundle did not start or serve.
# sse_starlette was too: the MCP host's `import mcp` loads the SDK's server side, which imports it.)
EXCLUDES = [
    "tkinter", "_tkinter", "pytest", "_pytest", "hypothesis", "IPython", "matplotlib", "pandas", "scipy",
    "hf_xet", "sentencepiece", "setuptools", "pkg_resources", "pip", "distutils", "pydoc_data",
    "llama_cpp.server", "fastapi", "starlette_context", "pydantic_settings",
    "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtOpenGL", "PySide6.QtDBus",
    "PySide6.QtPrintSupport", "PySide6.QtSql", "PySide6.QtTest", "PySide6.QtXml", "PySide6.QtConcurrent",
]  # fmt: skip

# Excluded modules that a dependency imports when they are installed and does without when they are not; the
# sweep may find them loaded in a development environment. Each with the reason the app does not need it.
OPTIONAL: dict[str, str] = {
    "hf_xet": "huggingface_hub's Xet transfers; LlamaDesk downloads with its own Range requests (core/downloads.py)",
}


def excluded(module: str) -> str | None:
    """The EXCLUDES entry that leaves `module` out of the bundle (the module itself or a package above it)."""
    for entry in EXCLUDES:
        if module == entry or module.startswith(entry + "."):
            return entry
    return None


def norm(dest: str) -> str:
    return dest.replace("\\", "/")


def plugin_kept(dest: str, platform: str = sys.platform) -> bool:
    """False for a Qt plugin (or its metadata) outside KEEP_PLUGINS."""
    m = re.search(r"(?:^|/)PySide6/(?:Qt/)?plugins/([^/]+)/([^/]+)$", norm(dest))
    if not m:
        return True
    folder, name = m.groups()
    if folder not in KEEP_PLUGINS:
        return False
    stems = KEEP_PLUGINS[folder]
    stem = name.split(".")[0]
    if platform != "win32":
        stem = stem.removeprefix("lib")
    return stems is None or stem in stems


def is_translation(dest: str) -> bool:
    return bool(re.search(r"(?:^|/)PySide6/(?:Qt/)?translations/", norm(dest)))


def prunable(dest: str, platform: str = sys.platform) -> bool:
    """Shared libraries pulled in as dependencies of something: kept only if a kept binary still needs them."""
    d = norm(dest)
    if re.search(r"(?:^|/)PySide6/Qt/lib/", d) or re.match(r"PySide6/Qt6\w+\.dll$", d):
        return True
    # Linux: system libraries PyInstaller copied to the bundle's top level (not libpython: the bootloader loads it).
    return platform.startswith("linux") and "/" not in d and d.startswith("lib") and not d.startswith("libpython")


def lib_key(name: str) -> str:
    """The name a library is referred to by: its basename (also for macOS framework paths)."""
    return os.path.basename(norm(name))


def slim_binaries(binaries: Sequence[Entry], imports_of: ImportsOf, platform: str = sys.platform) -> list[Entry]:
    """Drops unwanted Qt plugins, then every prunable library that no kept binary needs (transitively)."""
    kept = [e for e in binaries if plugin_kept(e[0], platform)]
    candidates = {lib_key(e[0]): e for e in kept if e[2] != "SYMLINK" and prunable(e[0], platform)}
    needed: set[str] = set()
    queue = [e[1] for e in kept if e[2] != "SYMLINK" and not prunable(e[0], platform)]
    seen: set[str] = set()
    while queue:
        src = queue.pop()
        if src in seen:
            continue
        seen.add(src)
        try:
            imports = list(imports_of(src))
        except Exception as exc:  # an unreadable binary: keep everything rather than guess
            print(f"slimming: cannot read the imports of {src} ({exc}); nothing pruned")
            return kept
        for name, _resolved in imports:
            key = lib_key(name)
            if key in candidates and key not in needed:
                needed.add(key)
                queue.append(candidates[key][1])
    dropped = sorted(k for k in candidates if k not in needed)
    if dropped:
        print("slimming: left out (no kept binary needs them):", ", ".join(dropped))
    out = [e for e in kept if e[2] == "SYMLINK" or not prunable(e[0], platform) or lib_key(e[0]) in needed]
    present = {norm(e[0]) for e in out}
    # Symlinks whose target was dropped go as well.
    return [e for e in out if e[2] != "SYMLINK" or norm(os.path.normpath(os.path.join(os.path.dirname(e[0]), e[1])))
            in present]  # fmt: skip


_LLAMA_LIB = re.compile(r"^(llama_cpp/lib/lib[\w+-]+\.so)(\.\d+)?(\.\d+\.\d+)?$")


def dedupe_llama_libs(binaries: Sequence[Entry], platform: str = sys.platform) -> list[Entry]:
    """Linux wheels carry libX.so, libX.so.0 and libX.so.0.N.M as three copies: keep the SONAME, link libX.so to it."""
    if not platform.startswith("linux"):
        return list(binaries)
    groups: dict[str, list[Entry]] = {}
    out: list[Entry] = []
    for e in binaries:
        m = _LLAMA_LIB.match(norm(e[0]))
        if m and e[2] != "SYMLINK":
            groups.setdefault(m.group(1), []).append(e)
        else:
            out.append(e)
    for base, entries in groups.items():
        sonames = [e for e in entries if re.fullmatch(re.escape(base) + r"\.\d+", norm(e[0]))]
        if not sonames:  # nothing to link to: keep the files as they are
            out.extend(entries)
            continue
        real = sonames[0]
        out.append(real)
        # ctypes opens libX.so by name (llama_cpp._ctypes_extensions); the long versioned name is never used.
        if any(norm(e[0]) == base for e in entries):
            out.append((base, os.path.basename(real[0]), "SYMLINK"))
    return out

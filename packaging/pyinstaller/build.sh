#!/usr/bin/env bash
# Builds the frozen LlamaDesk (PyInstaller onedir, the starter model inside) and checks it before any installer
# wraps it, feature by feature (check_frozen.py): --version, --smoke-test, every module importable inside the bundle,
# doctor, chat and history on the bundled starter model, serve answering the openai client, single instance.
#
#   packaging/pyinstaller/build.sh            # → dist/llamadesk (Linux), dist/LlamaDesk (Windows), dist/LlamaDesk.app
#
# Environment:
#   PYTHON                   the venv's python with LlamaDesk installed (default .venv/bin/python or .venv/Scripts/python.exe)
#   LLAMADESK_STARTER_MODEL  the starter GGUF to bundle (default: fetched and verified into the test-model cache)
#   LLAMADESK_NO_STARTER=1   build without a bundled model (then the chat check is skipped)
#   LLAMADESK_SKIP_CHECKS=1  skip the checks on the frozen app (e.g. cross-checks done elsewhere)
#   DIST_DIR, WORK_DIR       output and scratch folders (default dist/ and build/pyinstaller/, both gitignored)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
dist="${DIST_DIR:-$root/dist}"
work="${WORK_DIR:-$root/build/pyinstaller}"

case "$(uname -s)" in
  Linux*) os=linux ;;
  Darwin*) os=macos ;;
  MINGW* | MSYS* | CYGWIN*) os=windows ;;
  *) echo "build.sh: unsupported OS $(uname -s)" >&2; exit 2 ;;
esac
if [ -z "${PYTHON:-}" ]; then
  if [ "$os" = windows ]; then PYTHON="$root/.venv/Scripts/python.exe"; else PYTHON="$root/.venv/bin/python"; fi
fi
[ -x "$PYTHON" ] || { echo "build.sh: no Python at $PYTHON (run 'make setup' first, or set PYTHON)" >&2; exit 2; }

# PyInstaller is a build-time tool: the `package` extra in pyproject.toml; install it when missing.
if ! "$PYTHON" -c 'import PyInstaller' 2>/dev/null; then
  "$PYTHON" -m pip install -q --disable-pip-version-check 'pyinstaller>=6.10'
fi

if [ "${LLAMADESK_NO_STARTER:-0}" != 1 ] && [ -z "${LLAMADESK_STARTER_MODEL:-}" ]; then
  cache="${LLAMADESK_TEST_CACHE:-$HOME/.cache/llamadesk/test-models}"
  LLAMADESK_STARTER_MODEL="$("$PYTHON" -c '
import sys
from pathlib import Path
from llamadesk.core.starter import ensure_starter
cache = Path(sys.argv[1])
print(ensure_starter(cache / "models", cache / "download"))
' "$cache")"
  export LLAMADESK_STARTER_MODEL
fi

started=$SECONDS
echo "Building the frozen app into $dist (scratch: $work)" >&2
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
  --workpath "$work" --distpath "$dist" packaging/pyinstaller/llamadesk.spec >&2

case "$os" in
  linux) bundle="$dist/llamadesk"; exe="$bundle/llamadesk" ;;
  windows) bundle="$dist/LlamaDesk"; exe="$bundle/llamadesk-cli.exe" ;;
  macos) bundle="$dist/LlamaDesk.app"; exe="$bundle/Contents/MacOS/LlamaDesk" ;;
esac
[ -x "$exe" ] || { echo "build.sh: PyInstaller did not produce $exe" >&2; exit 1; }

# CPython from pyenv/source builds carries debug info: ~17 MB in libpython, ~7 MB in lib-dynload. Only CPython's
# own files are stripped: stripping the patchelf-edited libraries of wheels (numpy.libs, PySide6) can corrupt them.
if [ "$os" = linux ] && command -v strip >/dev/null 2>&1; then
  find "$bundle/_internal" -maxdepth 1 -name 'libpython3*.so*' -type f -exec strip --strip-debug {} +
  find "$bundle/_internal" -maxdepth 3 -path '*/python3*/lib-dynload/*.so' -type f -exec strip --strip-debug {} +
fi

if [ "${LLAMADESK_SKIP_CHECKS:-0}" != 1 ]; then
  # The harness drives the frozen app from the venv (the openai client: the `test` extra of pyproject.toml).
  "$PYTHON" -c 'import openai' 2>/dev/null || "$PYTHON" -m pip install -q --disable-pip-version-check 'openai>=1.40'
  model_args=()
  if [ "${LLAMADESK_NO_STARTER:-0}" != 1 ]; then
    name="$("$PYTHON" -c 'from llamadesk.core.starter import STARTER; print(STARTER.file_name)')"
    model="$(find "$bundle" -name "$name" -type f | head -n 1)"
    [ -n "$model" ] || { echo "build.sh: the starter model is not in the bundle" >&2; exit 1; }
    model_args=(--model "$model")
  fi
  echo "Checking the frozen app" >&2
  "$PYTHON" packaging/pyinstaller/check_frozen.py "$exe" ${model_args[@]+"${model_args[@]}"}  # bash 3.2 (macOS): no empty "${a[@]}"
fi

size_kb="$(du -sk "$bundle" | cut -f1)"
echo "Built $bundle in $((SECONDS - started)) s: $((size_kb / 1024)) MiB on disk" >&2
echo "$bundle"

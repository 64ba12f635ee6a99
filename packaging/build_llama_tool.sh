#!/usr/bin/env bash
# Builds one of llama.cpp's own tools (default: llama-perplexity) for the CPU from the sources vendored in the pinned
# llama-cpp-python, and prints its path. bench/bench_quality.py measures LlamaDesk's perplexity against it.
#
#   packaging/build_llama_tool.sh [llama-perplexity|llama-imatrix|llama-bench|...]
#
# The tool is built with the CPU wheel's flags (-DGGML_NATIVE=OFF, Release), statically, so it runs the same ggml
# kernels as the wheel LlamaDesk loads: a difference in the figures is a difference in method, not in compilers.
# Unlike rpc-server (packaging/build_rpc_server.sh), these tools need llama.cpp's `common` library, which the wheel
# does not ship, and `common` needs most of the tree; so this is a CMake build of the vendored tree for one target
# (about 10 minutes on 2 cores), done once: the binary goes to <wheelhouse>/bin/<tool> and is reused while it runs.
#
# Sources: $LLAMA_CPP_SRC (a llama.cpp tree), else $LLAMA_CPP_SDIST (llama-cpp-python's sdist .tar.gz), else the
# sdist of the pinned version fetched from PyPI with pip. The build folder is deleted once the binary is copied.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tool="${1:-llama-perplexity}"
backend=cpu
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
# shellcheck source=packaging/wheelhouse.sh
. "$root/packaging/wheelhouse.sh"  # version, args, wheelhouse: the same folder as packaging/build_llama_wheel.sh's
bin="$wheelhouse/bin/$tool"

# Reuse the binary while it starts (--help prints the usage; a broken binary prints nothing of the kind).
if [ -x "$bin" ] && [[ "$("$bin" --help 2>&1 || true)" == *--model* ]]; then
  echo "$tool already built in $bin" >&2
  echo "$bin"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ -n "${LLAMA_CPP_SRC:-}" ]; then
  tree="$LLAMA_CPP_SRC"
else
  sdist="${LLAMA_CPP_SDIST:-}"
  if [ -z "$sdist" ]; then
    echo "Fetching the llama-cpp-python $version sources from PyPI (about 75 MB, once)" >&2
    "$PYTHON" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$version" >&2
    sdist="$(ls "$tmp"/llama_cpp_python-"$version".tar.gz)"
  fi
  # models/ holds vocabulary files for llama.cpp's own tests (tens of MB): not needed to build a tool.
  tar -xzf "$sdist" -C "$tmp" --exclude="llama_cpp_python-$version/vendor/llama.cpp/models/*" \
    "llama_cpp_python-$version/vendor/llama.cpp"
  tree="$tmp/llama_cpp_python-$version/vendor/llama.cpp"
fi
[ -d "$tree/tools" ] || { echo "no llama.cpp tree in $tree" >&2; exit 1; }

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
echo "Building $tool from $tree with $jobs jobs (once; about 10 minutes on 2 cores)" >&2
cmake -S "$tree" -B "$tmp/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF >&2
cmake --build "$tmp/build" -j "$jobs" --target "$tool" >&2

mkdir -p "$wheelhouse/bin"
cp "$tmp/build/bin/$tool" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"

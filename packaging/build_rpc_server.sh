#!/usr/bin/env bash
# Builds llama.cpp's rpc-server against the libggml*.so of the installed llama-cpp-python wheel, and prints its path.
# A model can then be split over several machines: run this binary on each of them, and list them in LlamaDesk.
#
#   packaging/build_rpc_server.sh [cpu|cuda|metal|vulkan|custom]      (default: cpu; the same key as the wheel)
#
# tools/rpc/rpc-server.cpp includes only ggml-backend.h and ggml-rpc.h, so it compiles in one g++ call (seconds)
# linked to the wheel's own libraries (rpath): the RPC protocol version always matches the one LlamaDesk speaks.
# The binary goes next to the wheel, <wheelhouse>/bin/rpc-server, and is reused while it still starts.
#
# Sources: $LLAMA_CPP_SRC (a llama.cpp tree), else $LLAMA_CPP_SDIST (llama-cpp-python's sdist .tar.gz), else the
# sdist of the pinned version fetched from PyPI with pip; only the few files needed are kept (<wheelhouse>/rpc-src).
# The libraries are those of $PYTHON's llama_cpp (default: .venv/bin/python, else python3).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
backend="${1:-${LLAMADESK_BACKEND:-cpu}}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$root/.venv/bin/python" ]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
cxx="${CXX:-g++}"
# shellcheck source=packaging/wheelhouse.sh
. "$root/packaging/wheelhouse.sh"  # version, args, wheelhouse: the same folder as packaging/build_llama_wheel.sh's
bin="$wheelhouse/bin/rpc-server"

libdir="$("$PYTHON" -c 'import llama_cpp.llama_cpp as l, pathlib; print(pathlib.Path(l._base_path).resolve())')"
[ -f "$libdir/libggml-rpc.so" ] || [ -f "$libdir/libggml-rpc.dylib" ] || {
  echo "the llama_cpp libraries in $libdir have no RPC backend: build the wheel with -DGGML_RPC=ON" >&2; exit 1; }

# Reuse the binary while it starts with these libraries (-h prints the usage; a missing library prints the
# loader's error instead); rebuild when the venv that holds the libraries moved.
if [ -x "$bin" ] && [ "$(cat "$wheelhouse/bin/LIBDIR" 2>/dev/null)" = "$libdir" ] && \
   [[ "$("$bin" -h 2>&1 || true)" == *--port* ]]; then
  echo "rpc-server already built in $bin" >&2
  echo "$bin"
  exit 0
fi

src="$wheelhouse/rpc-src"
if [ ! -f "$src/tools/rpc/rpc-server.cpp" ]; then
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
    tar -xzf "$sdist" -C "$tmp" --wildcards \
      "llama_cpp_python-$version/vendor/llama.cpp/tools/rpc/*" "llama_cpp_python-$version/vendor/llama.cpp/ggml/include/*"
    tree="$tmp/llama_cpp_python-$version/vendor/llama.cpp"
  fi
  mkdir -p "$src/tools" "$src/ggml"
  rm -rf "$src/tools/rpc" "$src/ggml/include"
  cp -r "$tree/tools/rpc" "$src/tools/rpc"
  cp -r "$tree/ggml/include" "$src/ggml/include"
fi

mkdir -p "$wheelhouse/bin"
echo "Compiling rpc-server against $libdir" >&2
"$cxx" -std=c++17 -O2 -o "$bin.tmp" "$src/tools/rpc/rpc-server.cpp" -I "$src/ggml/include" \
  -L "$libdir" -lggml -lggml-base -Wl,-rpath,"$libdir" -pthread
mv "$bin.tmp" "$bin"
printf '%s\n' "$libdir" > "$wheelhouse/bin/LIBDIR"
echo "$bin"

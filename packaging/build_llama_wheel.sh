#!/usr/bin/env bash
# Builds the llama-cpp-python wheel once per backend into a wheelhouse, and prints the wheelhouse folder.
# Later installs (make, CI, the installers) take the wheel from there instead of compiling llama.cpp again.
#
#   packaging/build_llama_wheel.sh [cpu|cuda|metal|vulkan]      (default: cpu)
#   CMAKE_ARGS="..." packaging/build_llama_wheel.sh custom       (your own flags; keyed by their hash)
#
# Shipped builds use -DGGML_NATIVE=OFF, so the binary runs on any CPU of the architecture (AVX2 baseline on x86-64)
# instead of only on the build machine's. -DGGML_RPC=ON adds llama.cpp's RPC backend (multi-machine models).
set -euo pipefail

backend="${1:-${LLAMADESK_BACKEND:-cpu}}"
python="${PYTHON:-python3}"
version="$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' "$(dirname "$0")/../pyproject.toml")"
[ -n "$version" ] || { echo "cannot read the llama-cpp-python pin from pyproject.toml" >&2; exit 1; }

base="-DGGML_NATIVE=OFF -DGGML_RPC=ON"
case "$backend" in
  cpu)    args="${CMAKE_ARGS:-$base}" ;;
  cuda)   args="${CMAKE_ARGS:-$base -DGGML_CUDA=on}" ;;
  metal)  args="${CMAKE_ARGS:-$base -DGGML_METAL=on}" ;;
  vulkan) args="${CMAKE_ARGS:-$base -DGGML_VULKAN=on}" ;;
  custom) args="${CMAKE_ARGS:?set CMAKE_ARGS for a custom build}" ;;
  *) echo "unknown backend '$backend' (cpu, cuda, metal, vulkan, custom)" >&2; exit 2 ;;
esac

pytag="$(uname -m)"
key="$(printf '%s' "$args" | sha256sum | cut -c1-12)"
wheelhouse="${LLAMADESK_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/llamadesk/wheelhouse}/$version-$backend-$pytag-$key"
mkdir -p "$wheelhouse"

if ls "$wheelhouse"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  echo "llama-cpp-python $version ($backend) already built in $wheelhouse" >&2
else
  echo "Building llama-cpp-python $version for $backend (CMAKE_ARGS=$args); this compiles llama.cpp," >&2
  echo "about 15 CPU-minutes, once. The wheel is kept in $wheelhouse." >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
    "$python" -m pip wheel --no-deps --no-cache-dir -w "$tmp" "llama-cpp-python==$version" >&2
  mv "$tmp"/llama_cpp_python-*.whl "$wheelhouse"/
  printf '%s\n' "$args" > "$wheelhouse/CMAKE_ARGS"
fi
echo "$wheelhouse"

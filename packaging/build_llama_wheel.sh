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
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=packaging/wheelhouse.sh
. "$root/packaging/wheelhouse.sh"  # version, args, wheelhouse
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

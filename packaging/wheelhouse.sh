#!/usr/bin/env bash
# shellcheck disable=SC2154,SC2034  # reads $root and $backend, sets $version, $args and $wheelhouse for the caller
# Sourced by packaging/build_llama_wheel.sh and packaging/build_rpc_server.sh: the wheelhouse folder of one backend.
# Needs $root (the repository) and $backend (cpu, cuda, metal, vulkan, custom); sets $version (the pinned
# llama-cpp-python), $args (its CMAKE_ARGS) and $wheelhouse: <cache>/llamadesk/wheelhouse/<version>-<backend>-<arch>-<key>,
# the key being the first 12 hex digits of the sha256 of the CMake arguments.
set -euo pipefail
version="$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' "$root/pyproject.toml")"
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

key="$(printf '%s' "$args" | sha256sum | cut -c1-12)"
wheelhouse="${LLAMADESK_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/llamadesk/wheelhouse}/$version-$backend-$(uname -m)-$key"

"""PyInstaller hook for llama-cpp-python: its llama.cpp libraries are loaded with ctypes, unseen by analysis.

collect_dynamic_libs() puts every library from llama_cpp/lib (libllama, libggml*, libmtmd; ggml-cuda/-metal/-vulkan
when the wheel was built with them) back into llama_cpp/lib inside the bundle, where llama_cpp looks for them.
The spec turns the duplicate copies that Linux wheels carry (libX.so, libX.so.0, libX.so.0.N.M) into symlinks.
"""

from __future__ import annotations

from PyInstaller.utils.hooks import collect_dynamic_libs

binaries = collect_dynamic_libs("llama_cpp")

# The OpenAI-compatible server (FastAPI, uvicorn) is not used by LlamaDesk and not imported by llama_cpp itself;
# keep it out even if something in the environment would drag it in.
excludedimports = ["llama_cpp.server"]

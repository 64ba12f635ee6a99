"""Reads an untrusted model's vocabulary in a child process first: some malformed files make llama.cpp abort
the whole process (GGML_ASSERT), which must never take the window and its conversation down with it."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

from llamadesk.core import fileinfo
from llamadesk.core.errors import ModelLoadError
from llamadesk.paths import get_paths

log = logging.getLogger(__name__)
PROBE_FLAG = "--probe-model"  # hidden first argument of the llamadesk entry point: run the child side


def _command(path: Path, projector: Path | None = None) -> list[str]:
    files = [str(path)] + ([str(projector)] if projector is not None else [])
    if getattr(sys, "frozen", False):  # a PyInstaller build: the executable is LlamaDesk itself
        return [sys.executable, PROBE_FLAG, *files]
    return [sys.executable, "-m", "llamadesk", PROBE_FLAG, *files]


def probe_model(
    path: Path, *, timeout: float = 120.0, cache_file: Path | None = None, projector: Path | None = None
) -> None:
    """Raises ModelLoadError with a sentence if llama.cpp cannot read `path`'s vocabulary, crash included.
    A file that passed is remembered by (path, size, modification time) and not probed again. With `projector`
    (a vision model's mmproj), the child loads that too, against the model, and runs libmtmd's warm-up graph."""
    cache_file = cache_file or get_paths().cache / "probed.json"
    key = fileinfo.file_version_key(path)
    if projector is not None:
        key += "+" + fileinfo.file_version_key(projector)
    if fileinfo.recall(cache_file, key) is True:
        return
    try:
        result = subprocess.run(_command(path, projector), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ModelLoadError(f"{path.name} could not be read within {timeout:.0f} s; it may be damaged.") from exc
    except OSError as exc:
        raise ModelLoadError(f"{path.name} could not be checked: {exc.strerror or exc}.") from exc
    if result.returncode < 0 or result.returncode == 134:
        number = -result.returncode if result.returncode < 0 else int(signal.SIGABRT)
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        log.warning("Probe of %s ended with %s: %s", path, name, result.stderr[-4000:])
        what = projector.name if projector is not None and "projector:" in result.stdout else path.name
        raise ModelLoadError(f"{what} is malformed: llama.cpp stopped while reading it ({name}), so it was not loaded.")
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise ModelLoadError(lines[-1] if lines else f"{path.name} could not be loaded.")
    fileinfo.remember(cache_file, key, True)


def child_main(path_text: str, projector_text: str | None = None) -> int:
    """The child side: load only the vocabulary (fast, no weights) and report a failure as one sentence; then the
    projector, if given (engines/vision.py), printing "projector:" first so a crash there is put on the right file."""
    import contextlib
    import io

    import llama_cpp

    from llamadesk.core import llama_log

    llama_log.install()
    path = Path(path_text)
    mark = llama_log.mark()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=True)
    except (ValueError, RuntimeError, OSError):
        reason = (llama_log.reason_since(mark) or "llama.cpp could not read it").rstrip(".")
        print(f"{path.name} could not be loaded: {reason}.", file=sys.stderr)
        return 1
    try:
        if projector_text is not None:
            from llamadesk.core.engines.vision import probe_projector

            print("projector:", flush=True)
            sentence = probe_projector(Path(projector_text), llama)
            if sentence is not None:
                print(sentence, file=sys.stderr)
                return 1
    finally:
        llama.close()
    return 0

"""`llamadesk chat` on a real terminal (a pty): a reply made of escape and control bytes cannot drive it; piped
output stays byte for byte. Also the --gpu-layers words."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from gguf_factory import FIRST_BYTE_TOKEN, edit_output_rows

from llamadesk.commands.chat import gpu_layers_arg


@pytest.fixture(scope="module")
def escape_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model made to emit only ESC (0x1B) and BEL (0x07): one output row and its negative, all other rows
    zero, so one of the two always wins."""
    dst = tmp_path_factory.mktemp("escape") / "tiny-escape.gguf"
    rows = {FIRST_BYTE_TOKEN + 0x1B: 1.0, FIRST_BYTE_TOKEN + 0x07: -1.0}
    return edit_output_rows(tiny_model, dst, zero="all", rows=rows, seed=11)


def _args(model: Path) -> list[str]:
    return [sys.executable, "-m", "llamadesk", "chat", "--model", str(model), "--no-history", "--threads", "1",
            "--max-tokens", "16", "--temperature", "0", "hello"]  # fmt: skip


def test_a_terminal_sees_control_pictures_not_escapes(llamadesk_home: Path, escape_model: Path) -> None:
    env = {**os.environ, "LLAMADESK_HOME": str(llamadesk_home)}
    controller, terminal = pty.openpty()
    process = subprocess.Popen(_args(escape_model), stdout=terminal, stderr=subprocess.PIPE, env=env)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""

    text = shown.decode("utf-8")
    assert "\x1b" not in text and "\x07" not in text
    assert set(text.strip()) <= {"␛", "␇"} and len(text.strip()) > 0


def test_piped_output_is_left_as_the_model_wrote_it(llamadesk_home: Path, escape_model: Path) -> None:
    env = {**os.environ, "LLAMADESK_HOME": str(llamadesk_home)}
    done = subprocess.run(_args(escape_model), capture_output=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.decode("utf-8").strip()) <= {"\x1b", "\x07"} and done.stdout.strip()


@pytest.mark.parametrize(("text", "value"), [("auto", -2), ("ALL", -1), ("0", 0), ("33", 33), ("-2", -2)])
def test_gpu_layers_words(text: str, value: int) -> None:
    assert gpu_layers_arg(text) == value


@pytest.mark.parametrize("text", ["-3", "many", ""])
def test_gpu_layers_refuses_other_words(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        gpu_layers_arg(text)

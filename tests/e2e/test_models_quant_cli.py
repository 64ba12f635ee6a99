"""`llamadesk models quantize` and `models compare` as a user runs them: real subprocesses, real llama.cpp,
generated models quantized by the app itself; Ctrl+C mid-quantize exits 130 and leaves no partial file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from gguf_factory import write_tiny_llama


def cli(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "llamadesk", "models", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def test_quantize_then_compare(llamadesk_home: Path, tmp_path: Path) -> None:
    f32 = write_tiny_llama(tmp_path / "tiny-F32.gguf")
    made = {}
    for t in ("Q8_0", "Q4_0"):
        run = cli("quantize", str(f32), "--type", t.lower(), home=llamadesk_home)
        assert run.returncode == 0, run.stderr
        assert "quantizing:" in run.stderr and "done:" in run.stderr
        made[t] = llamadesk_home / "models" / "quantized" / f"tiny-{t}.gguf"
        assert f"to {t}: {made[t]}" in run.stdout and made[t].is_file()
    listed = cli("list", home=llamadesk_home)
    assert "tiny · Q8_0" in listed.stdout and "tiny · Q4_0" in listed.stdout

    text = tmp_path / "text.txt"
    text.write_text((Path(__file__).parents[2] / "assets" / "eval" / "en-cc0-1.0.txt").read_text()[:2500])
    run = cli("compare", str(made["Q4_0"]), str(f32), str(made["Q8_0"]), "--text", str(text), "--ctx", "128",
              "--json", home=llamadesk_home)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    files = {f["type"]: f for f in data["files"]}
    assert data["reference"] == "tiny-F32.gguf" and data["n_ctx"] == 128
    assert 0 < files["Q8_0"]["kld"] < files["Q4_0"]["kld"] and files["Q8_0"]["top1"] >= files["Q4_0"]["top1"]
    stored = json.loads((llamadesk_home / "data" / "quality.json").read_text())
    assert set(stored) == {f["sha256"] for f in data["files"]}

    table = cli("compare", str(f32), str(made["Q8_0"]), "--text", "en-cc0-1.0", "--ctx", "128",
                home=llamadesk_home)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("Text: en-cc0-1.0;")
    header = lines[1].split()
    assert header[:5] == ["file", "type", "size", "perplexity", "KLD"]
    assert lines[-1].endswith(".") and "Q8_0" in lines[-1] and "F32" in lines[-1]


@pytest.mark.parametrize(("args", "phrase"), [
    (["quantize", "{f32}", "--type", "Q9_Z"], "cannot quantize to 'Q9_Z'"),
    (["compare", "{f32}", "{other}", "--ctx", "128"], "are not the same model"),
    (["compare", "{f32}", "--text", "no-such-text"], "is neither a file nor a text that comes with LlamaDesk"),
])
def test_bad_input_is_one_sentence(llamadesk_home: Path, tmp_path: Path, args: list[str], phrase: str) -> None:
    f32 = write_tiny_llama(tmp_path / "tiny-F32.gguf")
    other = write_tiny_llama(tmp_path / "wider.gguf", n_embd=128, n_head=4)
    run = cli(*[a.format(f32=f32, other=other) for a in args], home=llamadesk_home)
    assert run.returncode == 1
    assert run.stderr.startswith("llamadesk: ") and phrase in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_ctrl_c_mid_quantize_exits_130_and_removes_the_partial_file(llamadesk_home: Path, tmp_path: Path) -> None:
    """Synchronised on a state: SIGINT goes once stderr reports a partial file holding bytes (IQ3_S on one
    thread takes seconds on this 11 MB model; the report comes with the first tensors)."""
    medium = write_tiny_llama(tmp_path / "medium-F32.gguf", n_embd=256, n_head=8, n_layers=4)
    target = tmp_path / "out" / "medium-IQ3_S.gguf"
    env = {**os.environ, "LLAMADESK_HOME": str(llamadesk_home)}
    proc = subprocess.Popen([sys.executable, "-m", "llamadesk", "models", "quantize", str(medium), "--type", "IQ3_S",
                             "--threads", "1", "-o", str(target)], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith("quantizing:") and not line.startswith("quantizing: 0 B"):
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Stopped; the partial file was removed." in err and "Traceback" not in err
    assert not target.exists() and not list(target.parent.glob("*.quantizing"))

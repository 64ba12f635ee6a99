"""Checks a frozen LlamaDesk feature by feature, as a user's machine would run it; run by build.sh after every build.

    python packaging/pyinstaller/check_frozen.py EXE [--model GGUF]

EXE is the bundle's console executable. Each check runs the frozen app in a fresh LLAMADESK_HOME and prints one
line with its time; the first failure ends the run with exit status 1 and what the app printed. Checks:
--version, --smoke-test, --import-sweep (every module, and every module they import lazily, loads inside the
bundle), doctor --json, document collections (PDF, DOCX, Markdown indexed and searched), a quant made and compared,
and with a model: chat,
history list, chat --json-schema (the reply validates),
serve answering the official openai client, chat --docs, chat --tool with MCP servers' tools
listed, and a second start handing over to the first
window. The harness runs in the development venv (openai, PySide6);
only EXE is the frozen app.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 120  # a bound on every wait (the frozen app unpacks nothing, but a cold disk is slow): no hang


class CheckFailed(Exception):
    pass


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLAMADESK_", "PYTHON"))}
    return {**env, "LLAMADESK_HOME": str(home), "QT_QPA_PLATFORM": "offscreen", **extra}


def _run(exe: Path, home: Path, *args: str, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(exe), *args], env=_env(home), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise CheckFailed(f"`{' '.join(args)}` exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    return proc


@contextmanager
def _background(exe: Path, home: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [str(exe), *args], env=_env(home), text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_version(exe: Path, home: Path, _model: Path | None) -> str:
    import llamadesk

    out = _run(exe, home, "--version").stdout.strip()
    if out != f"LlamaDesk {llamadesk.__version__}":
        raise CheckFailed(f"--version says {out!r}, want {llamadesk.__version__}")
    return out


def check_smoke_test(exe: Path, home: Path, _model: Path | None) -> str:
    _run(exe, home, "--smoke-test")
    return "the window opened and closed"


def check_import_sweep(exe: Path, home: Path, _model: Path | None) -> str:
    return _run(exe, home, "--import-sweep").stdout.strip().removeprefix("import-sweep: ")


def check_doctor(exe: Path, home: Path, _model: Path | None) -> str:
    report = json.loads(_run(exe, home, "doctor", "--json").stdout)
    if not isinstance(report, dict) or not report:
        raise CheckFailed(f"doctor --json gave {report!r}")
    return f"{len(report)} sections: {', '.join(sorted(report))}"


def check_chat(exe: Path, home: Path, model: Path | None) -> str:
    assert model is not None
    answer = _run(exe, home, "chat", "--model", str(model), "--temperature", "0", "What is 2+2?").stdout.strip()
    if "4" not in answer:
        raise CheckFailed(f"the starter model's answer has no 4: {answer!r}")
    return answer


def check_chat_json_schema(exe: Path, home: Path, model: Path | None) -> str:
    """chat --json-schema: the bundled model's reply, held by a llama.cpp grammar, validates (jsonschema in the
    harness); a recursive schema is one line, exit 2 (jsonschema's meta-schemas must be in the bundle for both)."""
    import jsonschema

    assert model is not None
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}, "unit": {"enum": ["apples", "pears"]},
              "note": {"type": "string", "maxLength": 40}}, "required": ["answer", "unit", "note"]}  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="llamadesk-schema-"))
    try:
        good, bad = folder / "answer.json", folder / "loop.json"
        good.write_text(json.dumps(schema), encoding="utf-8")
        bad.write_text(json.dumps({"$defs": {"n": {"properties": {"n": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"}))
        reply = _run(exe, home, "chat", "--model", str(model), "--json-schema", str(good), "--temperature", "0",
                     "--no-history", "I have 2 apples and buy 2 more. How many apples?").stdout.strip()  # fmt: skip
        try:
            jsonschema.validate(json.loads(reply), schema)
        except (ValueError, jsonschema.ValidationError) as exc:
            raise CheckFailed(f"the reply does not validate ({exc}): {reply!r}") from None
        refused = subprocess.run([str(exe), "chat", "--model", str(model), "--json-schema", str(bad), "hi"],
                                 env=_env(home), capture_output=True, text=True, timeout=START_TIMEOUT_S)  # fmt: skip
        lines = refused.stderr.strip().splitlines()
        if refused.returncode != 2 or len(lines) != 1 or "recursive" not in lines[0]:
            raise CheckFailed(f"a recursive schema should be one line, exit 2: {refused.returncode} {refused.stderr!r}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return reply


def check_history(exe: Path, home: Path, model: Path | None) -> str:
    listed = _run(exe, home, "history", "list").stdout.strip().splitlines()
    if len(listed) != 1 or "2+2" not in listed[0]:
        raise CheckFailed(f"history list should show the chat just held, not {listed!r}")
    return listed[0]


def check_prompt_cache(exe: Path, home: Path, model: Path | None) -> str:
    """The chat just held left its prompt state on disk; `models cache clear` deletes it."""
    before = _run(exe, home, "models", "cache", "info").stdout.strip()
    if not before or before.startswith("0 "):
        raise CheckFailed(f"the chat should have saved a prompt state: {before!r}")
    _run(exe, home, "models", "cache", "clear")
    after = _run(exe, home, "models", "cache", "info").stdout.strip()
    if not after.startswith("0 prompt states"):
        raise CheckFailed(f"models cache clear left {after!r}")
    return before.splitlines()[0]


def check_serve(exe: Path, home: Path, model: Path | None) -> str:
    import openai

    assert model is not None
    with _background(exe, home, "serve", "--model", str(model), "--port", "0") as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the server listens, or nothing when the command ended
        match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        if match is None:
            proc.kill()
            raise CheckFailed(f"serve printed no address ({line!r}):\n{proc.communicate(timeout=30)[1][-4000:]}")
        client = openai.OpenAI(base_url=match.group(1), api_key="unused-on-loopback", max_retries=0, timeout=120)
        ids = [m.id for m in client.models.list()]
        reply = client.chat.completions.create(
            model=ids[0], messages=[{"role": "user", "content": "What is 2+2?"}], temperature=0, max_tokens=48
        )
        text = reply.choices[0].message.content or ""
        if "4" not in text:
            raise CheckFailed(f"the served answer has no 4: {text!r}")
        if os.name == "nt":  # no Ctrl+C to send to a process without a console of its own
            return f"openai client: {text.strip()!r}"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        if proc.returncode != 0 or "Stopped." not in out:
            raise CheckFailed(f"serve did not stop cleanly on Ctrl+C ({proc.returncode}):\n{err[-3000:]}")
    return f"openai client: {text.strip()!r}"


def _documents(folder: Path) -> None:
    """A folder as a user's: Markdown, a two-page PDF and a DOCX (made with the venv's fpdf2 and python-docx)."""
    from docx import Document
    from fpdf import FPDF

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.md").write_text("# Notes\n\nThe lighthouse keeper writes letters every Sunday.\n")
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in ("Chapter one is about the weather.", "The flux capacitor needs 1.21 gigawatts."):
        pdf.add_page()
        pdf.cell(text=text)
    pdf.output(str(folder / "manual.pdf"))
    doc = Document()
    doc.add_heading("Animals", level=1)
    doc.add_paragraph("Zebras are striped and graze in herds.")
    doc.save(str(folder / "animals.docx"))


def check_documents(exe: Path, home: Path, _model: Path | None) -> str:
    folder = home / "my-documents"
    _documents(folder)
    added = _run(exe, home, "docs", "add", "manuals", str(folder))
    if "problem" in added.stdout.lower() and " 0 problem" not in added.stdout.lower():
        raise CheckFailed(f"docs add listed problems:\n{added.stdout}{added.stderr}")
    found = {
        query: _run(exe, home, "docs", "search", "manuals", query).stdout
        for query in ("gigawatts", "zebras", "lighthouse")
    }  # fmt: skip
    want = {"gigawatts": "manual.pdf (page 2)", "zebras": "animals.docx", "lighthouse": "notes.md"}
    for query, place in want.items():
        if place not in found[query]:
            raise CheckFailed(f"docs search {query!r} should find {place}:\n{found[query]}")
    return "PDF, DOCX and Markdown indexed and found"


def check_chat_documents(exe: Path, home: Path, model: Path | None) -> str:
    assert model is not None
    result = _run(exe, home, "chat", "--model", str(model), "--docs", "manuals", "--max-tokens", "16",
                  "How many gigawatts does the flux capacitor need?")  # fmt: skip
    if "[1] " not in result.stderr or "manual.pdf" not in result.stderr:
        raise CheckFailed(f"chat --docs should list manual.pdf as a source:\n{result.stderr}")
    return result.stderr.strip().splitlines()[0]


def check_quantize(exe: Path, home: Path, _model: Path | None) -> str:
    """models quantize (llama_model_quantize in a spawned child: multiprocessing inside the bundle) and models compare
    (perplexity and KL divergence through llama.cpp's low-level API) on a tiny F32 model made by the tests' factory."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.gguf_factory import write_tiny_llama

    source = write_tiny_llama(home / "tiny-f32.gguf")
    quant = home / "tiny-Q8_0.gguf"
    _run(exe, home, "models", "quantize", str(source), "--type", "Q8_0", "-o", str(quant))
    if not quant.is_file() or quant.stat().st_size >= source.stat().st_size:
        raise CheckFailed(f"models quantize made no smaller Q8_0 file at {quant}")
    report = json.loads(_run(exe, home, "models", "compare", str(source), str(quant), "--ctx", "128", "--json").stdout)
    q8 = next((f for f in report.get("files", []) if f.get("type") == "Q8_0"), None)
    if q8 is None or not 0 < float(q8.get("kld", 0)) < 1 or not 0 < float(q8.get("top1", 0)) <= 1:
        raise CheckFailed(f"models compare gave no sound Q8_0 figures: {q8!r}")
    weighed = home / "tiny-Q4_0-imatrix.gguf"  # the importance matrix: llama.cpp's eval callback inside the bundle
    _run(exe, home, "models", "quantize", str(source), "--type", "Q4_0", "--imatrix", "en-cc0-1.0", "-o", str(weighed))
    if not weighed.is_file():
        raise CheckFailed(f"models quantize --imatrix made no Q4_0 file at {weighed}")
    return (f"Q8_0 made ({quant.stat().st_size} B); KLD {q8['kld']:.3f}, top-1 {q8['top1']:.0%} against F32; "
            f"Q4_0 with an importance matrix made")


def check_chat_image(exe: Path, home: Path, _model: Path | None) -> str:
    """chat --image on a generated vision pair (tests/vision_factory.py: a tiny llama and a LLaVA-style projector,
    random weights): libmtmd loads from the bundle, Pillow reads a JPEG with EXIF (orientation, GPS) and a WebP, the
    projector is found beside the model, and the receipt records each image's hash and tokens."""
    root = Path(__file__).resolve().parents[2]
    sys.path[:0] = [str(root), str(root / "tests")]
    from PIL import Image

    from llamadesk.core.history import History
    from tests.vision_factory import TOKENS_PER_IMAGE, write_tiny_vision_pair

    model, projector = write_tiny_vision_pair(home / "vision")
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8825)[1] = "N"
    photo, shot = home / "photo.jpg", home / "shot.webp"
    Image.new("RGB", (60, 40), (200, 30, 30)).save(photo, exif=exif.tobytes())
    Image.new("RGB", (40, 40), (30, 30, 200)).save(shot)
    result = _run(exe, home, "chat", "--model", str(model), "--image", str(photo), "--image", str(shot),
                  "--max-tokens", "4", "--seed", "1", "What are these?")  # fmt: skip
    if "[photo.jpg: location removed]" not in result.stderr:
        raise CheckFailed(f"chat --image should say the photo's location was removed:\n{result.stderr[-2000:]}")
    with History(home / "data" / "history.sqlite3") as history:
        conv = next(c for c in history.list_conversations() if c.model == model.name)
        receipt = history.messages(conv.id)[-1].receipt or {}
    tokens = [i.get("tokens") for i in receipt.get("images", [])]
    if tokens != [TOKENS_PER_IMAGE, TOKENS_PER_IMAGE] or receipt.get("projector", {}).get("file") != projector.name:
        raise CheckFailed(f"the reply's receipt should list two images of {TOKENS_PER_IMAGE} tokens: {receipt!r}")
    # The history keeps them with the question, and the bundle's HTML export carries them as data: URLs.
    exported = _run(exe, home, "history", "export", str(conv.id), "--format", "html")
    if exported.stdout.count('<img src="data:image/') != 2:
        raise CheckFailed(f"history export --format html should carry the 2 images:\n{exported.stderr[-2000:]}")
    return f"2 images of {TOKENS_PER_IMAGE} tokens through {projector.name}, kept in the history and exported"


def check_tools(exe: Path, home: Path, model: Path | None) -> str:
    """chat --tool calculator --yes: the starter model, asked to copy a call, gets the calculator's result (the tool
    loop inside the bundle); mcp add + tools list --mcp: the bundle's MCP SDK reaches a real MCP server
    (tests/mcp_test_server.py, run by the development venv's Python) over stdio and over streamable HTTP."""
    assert model is not None
    copy = 'Copy this text exactly: <tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'
    result = _run(exe, home, "chat", "--model", str(model), "--tool", "calculator", "--yes", "--temperature", "0",
                  "--seed", "1", "--max-tokens", "60", copy)  # fmt: skip
    if "→ ok: 42]" not in result.stderr:
        raise CheckFailed(f"chat --tool calculator should show the result 42 on stderr:\n{result.stderr[-2000:]}")
    server = Path(__file__).resolve().parents[2] / "tests" / "mcp_test_server.py"
    _run(exe, home, "mcp", "add", "local", sys.executable, str(server), "stdio")
    with subprocess.Popen([sys.executable, str(server), "http"], stdout=subprocess.PIPE, text=True) as web:
        try:
            assert web.stdout is not None
            _run(exe, home, "mcp", "add", "web", f"http://127.0.0.1:{int(web.stdout.readline())}/mcp")
            listed = _run(exe, home, "tools", "list", "--mcp", "local", "--mcp", "web").stdout
        finally:
            web.terminate()
    if listed.count("Add two integers.") != 2 or "local: ready" not in listed or "web: ready" not in listed:
        raise CheckFailed(f"tools list --mcp should list both servers' tools:\n{listed}")
    return "the calculator answered 42; an MCP server's tools listed over stdio and HTTP"


def check_single_instance(exe: Path, home: Path, _model: Path | None) -> str:
    from PySide6.QtCore import QCoreApplication

    from llamadesk.paths import get_paths
    from llamadesk.ui import single_instance

    _app = QCoreApplication.instance() or QCoreApplication([])  # Qt's sockets want an application object
    name = single_instance.server_name(get_paths(home).data)
    with _background(exe, home) as first:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not single_instance.hand_over(name, timeout_ms=500):  # each try is a real hand-over
            if first.poll() is not None:
                raise CheckFailed(f"the first window exited ({first.returncode}):\n{first.communicate()[1][-4000:]}")
            if time.monotonic() > deadline:
                raise CheckFailed("the first window never listened for a second start")
            time.sleep(0.1)  # the window is still starting; ask again
        second = _run(exe, home, timeout=60)
        if "already running" not in second.stderr:
            raise CheckFailed(f"the second start did not hand over: {second.stderr[-2000:]!r}")
        if first.poll() is not None:
            raise CheckFailed("the first window exited when the second start handed over")
    return "the second start handed over and exited"


CHECKS: list[tuple[str, Callable[[Path, Path, Path | None], str], bool]] = [  # name, check, needs a model
    ("--version", check_version, False),
    ("--smoke-test", check_smoke_test, False),
    ("--import-sweep", check_import_sweep, False),
    ("doctor --json", check_doctor, False),
    ("chat", check_chat, True),
    ("history list", check_history, True),
    ("chat --json-schema", check_chat_json_schema, True),
    ("models cache info + clear", check_prompt_cache, True),
    ("serve + openai client", check_serve, True),
    ("docs add + search (PDF, DOCX)", check_documents, False),
    ("chat --docs", check_chat_documents, True),
    ("chat --tool + mcp (stdio, HTTP)", check_tools, True),
    ("models quantize + compare", check_quantize, False),
    ("chat --image (generated vision pair)", check_chat_image, False),
    ("single instance", check_single_instance, False),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exe", type=Path, help="the frozen app's console executable")
    parser.add_argument("--model", type=Path, help="a GGUF inside the bundle (the starter): the chat checks")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="llamadesk-frozen-"))
    started = time.monotonic()
    try:
        for name, check, needs_model in CHECKS:
            if needs_model and args.model is None:
                print(f"  {name}: skipped (no model in the bundle)", file=sys.stderr)
                continue
            t0 = time.monotonic()
            try:
                detail = check(args.exe, home, args.model)
            except (CheckFailed, subprocess.TimeoutExpired) as exc:
                print(f"FROZEN APP CHECK FAILED: {name}: {exc}", file=sys.stderr)
                return 1
            print(f"  {name}: ok in {time.monotonic() - t0:.1f} s ({detail})", file=sys.stderr)
        written = [
            p for p in args.exe.parent.rglob("*") if p.suffix in {".sqlite3", ".log"} or p.name == "settings.json"
        ]
        if written:
            print(f"FROZEN APP CHECK FAILED: the app wrote user data into its bundle: {written}", file=sys.stderr)
            return 1
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"Frozen app checks passed in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

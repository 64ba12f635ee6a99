"""The shipped catalog: valid against its schema, complete as the issue asks, and usable for fit verdicts."""

from __future__ import annotations

import json

import pytest

from llamadesk.core import catalog as catalog_mod
from llamadesk.core.catalog import CatalogError, load_catalog
from llamadesk.core.hub import check_remote_name, check_repo_id, quantization_of, split_info
from llamadesk.paths import resource_path

jsonschema = pytest.importorskip("jsonschema")


def test_catalog_matches_its_schema() -> None:
    schema = json.loads(resource_path("catalog.schema.json").read_text(encoding="utf-8"))
    data = json.loads(resource_path("catalog.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)


def test_schema_rejects_a_broken_entry() -> None:
    schema = json.loads(resource_path("catalog.schema.json").read_text(encoding="utf-8"))
    data = json.loads(resource_path("catalog.json").read_text(encoding="utf-8"))
    data["families"][0]["sizes"][0]["quantizations"][0]["files"] = ["../evil.gguf"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_catalog_covers_the_families_and_sizes_asked_for() -> None:
    cat = load_catalog()
    sizes = {f.id: {s.id for s in f.sizes} for f in cat.families}
    assert {"7b", "13b", "30b", "65b"} <= sizes["llama-1"]
    assert all(s.kind == "base" for s in cat.family("llama-1").sizes)
    assert {"1b", "3b", "8b", "70b"} <= sizes["llama-3"]
    assert {"0.5b", "32b"} <= sizes["qwen-2.5"]
    assert {"270m", "27b"} <= sizes["gemma-3"]
    assert {"7b", "nemo-12b"} <= sizes["mistral"]
    assert sizes["phi"]
    assert {"135m", "1.7b"} <= sizes["smollm2"]
    names = {q.name for _, _, q in cat.entries()}
    assert {"Q2_K", "Q4_K_M", "Q8_0", "F16"} <= names


def test_every_entry_is_consistent() -> None:
    for fam, size, quant in load_catalog().entries():
        check_repo_id(quant.repo)
        for name in quant.files:
            check_remote_name(name)
            assert quantization_of(name) == quant.name, (fam.id, size.id, name)
        if len(quant.files) > 1:
            assert [split_info(f)[1] for f in quant.files] == list(range(1, len(quant.files) + 1))  # type: ignore[index]
        assert size.license and quant.size_bytes > 0 and len(quant.sha256) == len(quant.files)
    # quantizations are listed from the smallest file to the largest
    for fam in load_catalog().families:
        for size in fam.sizes:
            assert [q.size_bytes for q in size.quantizations] == sorted(q.size_bytes for q in size.quantizations)


def test_fit_for_each_choice() -> None:
    size = load_catalog().family("llama-3").size("8b")
    verdicts = {q.name: est for q, est in size.fits(8192, ram_free=8 * 10**9)}
    assert verdicts["Q4_K_M"].message == "fits"
    assert verdicts["F16"].message == "too large"
    gpu = {q.name: est for q, est in size.fits(8192, ram_free=8 * 10**9, vram_free=6 * 10**9)}
    assert gpu["Q8_0"].message.startswith("fits with ")
    with pytest.raises(CatalogError, match="no size"):
        load_catalog().family("llama-3").size("9000b")


def test_lookup_by_file() -> None:
    cat = load_catalog()
    fam, size, quant = cat.entries()[0]
    assert cat.find_file(quant.repo, quant.files[0]) == (fam, size, quant)
    assert cat.find_file("nobody/nothing", "x.gguf") is None


def test_a_malformed_catalog_is_one_sentence(tmp_path) -> None:
    bad = tmp_path / "catalog.json"
    bad.write_text('{"families": [{"id": "x"}]}', encoding="utf-8")
    with pytest.raises(CatalogError, match="malformed"):
        catalog_mod.load_catalog(bad)

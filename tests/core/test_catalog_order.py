"""The catalog as a newcomer meets it: chat models first, base models last and labelled, a recommendation only for
models that chat, every quantization code explained, and the welcome page's three suggestions."""

from __future__ import annotations

import json

from llamadesk.core.catalog import (
    CPU_WEIGHTS_LIMIT,
    PICK_LABELS,
    load_catalog,
    parse_catalog,
    recommended_quant,
    welcome_picks,
)
from llamadesk.core.fit import Verdict
from llamadesk.core.quant_codes import QUANT_CODES, explain, explain_all
from llamadesk.paths import resource_path

GB = 1_000_000_000


def test_the_catalog_opens_on_current_chat_models_and_ends_with_the_2023_base_models() -> None:
    cat = load_catalog()
    order = cat.browse_order()
    assert order[0].is_chat and not order[0].is_base_only
    assert [f.id for f in order[-1:]] == ["llama-1"]
    kinds = ["base" if f.is_base_only else "chat" if f.is_chat else "other" for f in order]
    assert kinds == sorted(kinds, key=["chat", "other", "base"].index)
    llama1 = cat.family("llama-1")
    assert "base, not chat" in llama1.list_name
    assert all(s.kind_label == "base model, not for chat" for s in llama1.sizes)
    assert cat.family("qwen-2.5").list_name == "Qwen 2.5 Instruct"


def test_browse_order_puts_base_families_last_whatever_the_file_order() -> None:
    data = json.loads(resource_path("catalog.json").read_text(encoding="utf-8"))
    data["families"].sort(key=lambda f: f["id"] != "llama-1")  # the base family first in the file
    cat = parse_catalog(data)
    assert cat.families[0].id == "llama-1"
    assert cat.browse_order()[-1].id == "llama-1" and cat.browse_order()[0].is_chat


def test_a_base_model_is_never_recommended() -> None:
    cat = load_catalog()
    for family in cat.families:
        for size in family.sizes:
            fits = size.fits(4096, ram_free=512 * GB, vram_free=80 * GB)
            best = recommended_quant(size, fits)
            if size.kind == "base":
                assert best is None, f"{family.id} {size.id} is a base model"
            elif any(q.name == "Q4_K_M" for q, _ in fits):
                assert best == "Q4_K_M"


def test_every_quantization_code_in_the_catalog_has_a_line() -> None:
    cat = load_catalog()
    codes = {q.name for _, _, q in cat.entries()}
    assert codes <= set(QUANT_CODES)
    assert explain("Q4_K_M") == "Q4_K_M: 4-bit, the usual balance of size and quality"
    assert explain("q8_0").startswith("Q8_0: 8-bit")
    assert explain("Q9_X") == "Q9_X: a quantization LlamaDesk has no description for"
    assert explain_all(["Q4_K_M", "Q2_K", "q4_k_m"]) == [explain("Q4_K_M"), explain("Q2_K")]


def test_welcome_picks_three_chat_models_that_fit_from_small_to_best() -> None:
    cat = load_catalog()
    picks = welcome_picks(cat, ram_free=16 * GB)
    assert [p.label for p in picks] == list(PICK_LABELS)
    params = [p.size.params for p in picks]
    assert params == sorted(params) and len(set(params)) == 3
    for p in picks:
        assert p.size.is_chat and p.quant.name == "Q4_K_M" and p.fit.verdict is not Verdict.TOO_LARGE
        assert p.quant.size_bytes <= CPU_WEIGHTS_LIMIT  # no GPU: nothing that answers slower than reading speed
    assert picks[0].size.params >= 900_000_000  # not another toy like the starter


def test_welcome_picks_follow_the_memory() -> None:
    cat = load_catalog()
    small = welcome_picks(cat, ram_free=3 * GB)
    large = welcome_picks(cat, ram_free=8 * GB, vram_free=80 * GB)
    assert small and all(p.fit.verdict is not Verdict.TOO_LARGE for p in small)
    assert small[-1].size.params < large[-1].size.params
    assert large[-1].quant.size_bytes > CPU_WEIGHTS_LIMIT  # with a large GPU the best is a big model
    assert welcome_picks(cat, ram_free=100_000_000) == []  # nothing fits: no suggestions, not a wrong one


def test_welcome_picks_with_one_or_two_candidates_keep_the_right_labels() -> None:
    cat = load_catalog()
    for ram in (int(2.2 * GB), int(2.8 * GB), 4 * GB):
        picks = welcome_picks(cat, ram_free=ram)
        assert picks, ram
        assert picks[-1].label == "best that fits"
        if len(picks) >= 2:
            assert picks[0].label == "fast, basic"

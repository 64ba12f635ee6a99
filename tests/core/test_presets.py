"""User presets: saved as JSON in the config folder, exported and imported with every value checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamadesk.core.presets import (
    FORMAT,
    PRESET_FIELDS,
    PresetError,
    PresetStore,
    apply_preset,
    check_name,
    parse_document,
)
from llamadesk.core.sampling import PRESETS, SamplingParams


def doc(presets: object, **top: object) -> str:
    return json.dumps({"format": FORMAT, "version": 1, "presets": presets, **top})


def test_builtins_come_first_and_yours_are_saved_to_disk(tmp_path: Path) -> None:
    path = tmp_path / "config" / "presets.json"
    store = PresetStore(path)
    assert store.names() == ["Precise", "Balanced", "Creative"] and not path.exists()
    name = store.save("  My   coding  ", SamplingParams(temperature=0.15, top_k=5, max_tokens=99, seed=3))
    assert name == "My coding"
    again = PresetStore(path)
    assert again.names() == ["Precise", "Balanced", "Creative", "My coding"]
    saved = again.get("My coding")
    assert saved is not None and saved.temperature == 0.15 and saved.top_k == 5
    assert "max_tokens" not in json.loads(path.read_text())["presets"]["My coding"]  # reply length is yours
    assert again.matching(SamplingParams(temperature=0.15, top_k=5, max_tokens=7)) == "My coding"
    assert again.matching(PRESETS["Creative"].replace(seed=1)) == "Creative"
    again.delete("My coding")
    assert PresetStore(path).user_names() == []
    with pytest.raises(PresetError, match="no preset of yours"):
        again.delete("Precise")


def test_a_preset_keeps_your_reply_length_and_seed() -> None:
    mine = SamplingParams(max_tokens=77, seed=5, temperature=1.0)
    applied = apply_preset(mine, PRESETS["Precise"])
    assert applied.temperature == PRESETS["Precise"].temperature and (applied.max_tokens, applied.seed) == (77, 5)
    assert set(PRESET_FIELDS) == set(SamplingParams().to_dict()) - {"max_tokens", "seed"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "needs a name"),
        ("   ", "needs a name"),
        ("x" * 61, "at most 60"),
        ("bad\u0000name", "control"),
        ("zero\u200bwidth", "control"),
        ("balanced", "built-in"),
        (42, "must be text"),
    ],
)
def test_names_are_checked(name: object, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        check_name(name)


def test_export_then_import_round_trips(tmp_path: Path) -> None:
    a = PresetStore(tmp_path / "a" / "presets.json")
    a.save("Cold", SamplingParams(temperature=0.0, mirostat_mode=2, mirostat_tau=3.0))
    a.save("Warm", SamplingParams(temperature=1.3, presence_penalty=0.5))
    out = tmp_path / "shared.json"
    assert a.export(out) == 2
    b = PresetStore(tmp_path / "b" / "presets.json")
    b.save("Warm", SamplingParams(temperature=0.5))
    assert b.import_file(out) == ["Cold", "Warm"]
    assert b.get("Warm") == a.get("Warm") and b.get("Cold") == a.get("Cold")  # same names are replaced
    assert PresetStore(tmp_path / "b" / "presets.json").user_names() == ["Cold", "Warm"]
    with pytest.raises(PresetError, match="no presets to export"):
        PresetStore(tmp_path / "c.json").export(tmp_path / "none.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON at line 1, column 2"),
        (json.dumps({"format": "other", "version": 1, "presets": {}}), "not a LlamaDesk presets file"),
        (doc({}, version=2), "newer LlamaDesk"),
        (doc({}, version="1"), "whole number"),
        (doc([]), "must be an object"),
        (doc({"A": {"temperature": 5}}), r'presets\["A"\].temperature: Temperature must be between 0 and 2'),
        (doc({"A": {"top_k": 1.5}}), "whole number"),
        (doc({"A": {"temperature": "hot"}}), "must be a number"),
        (doc({"A": {"temperature": True}}), "must be a number"),
        (doc({"A": {"tempreature": 0.5}}), "unknown setting “tempreature”"),
        (doc({"A": {"max_tokens": 10}}), "unknown setting “max_tokens”"),
        (doc({"A": 3}), "must be an object of sampling values"),
        (doc({"Creative": {}}), "built-in"),
        ('{"format": "llamadesk-presets", "version": 1, "presets": {"A": {"top_p": NaN}}}', "NaN"),
    ],
)
def test_a_bad_document_is_refused_with_the_place_at_fault(text: str, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        parse_document(text)


def test_import_is_all_or_nothing(tmp_path: Path) -> None:
    store = PresetStore(tmp_path / "presets.json")
    store.save("Mine", SamplingParams(temperature=0.3))
    bad = tmp_path / "bad.json"
    bad.write_text(doc({"Good": {"temperature": 0.5}, "Bad": {"min_p": 3}}))
    with pytest.raises(PresetError, match=r"^Nothing was imported from bad.json: presets\[\"Bad\"\]\.min_p"):
        store.import_file(bad)
    assert store.user_names() == ["Mine"]
    with pytest.raises(PresetError, match="could not be read"):
        store.import_file(tmp_path / "missing.json")
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * 1_000_001)
    with pytest.raises(PresetError, match="larger than"):
        store.import_file(huge)


def test_a_damaged_presets_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "presets.json"
    path.write_text("{ broken")
    store = PresetStore(path)
    assert store.user_names() == [] and "damaged" in store.load_problem
    assert (tmp_path / "presets.json.bad").read_text() == "{ broken" and not path.exists()
    store.save("Fresh", SamplingParams())
    assert PresetStore(path).user_names() == ["Fresh"]

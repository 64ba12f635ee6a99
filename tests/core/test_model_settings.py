"""Per-model settings: the sampling settings last used with a model, kept across runs, damaged files set aside."""

from __future__ import annotations

from pathlib import Path

from llamadesk.core.presets import MAX_REMEMBERED_MODELS, ModelSettingsStore, model_defaults, model_key
from llamadesk.core.sampling import SamplingParams


def test_a_model_remembers_its_last_settings_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "config" / "model_settings.json"
    store = ModelSettingsStore(path)
    assert store.get("a.gguf") is None
    store.remember("a.gguf", SamplingParams(temperature=1.3, top_k=5))
    store.remember("b.gguf", SamplingParams(temperature=0.2))
    again = ModelSettingsStore(path)
    assert again.get("a.gguf") == SamplingParams(temperature=1.3, top_k=5)
    assert again.get("b.gguf") == SamplingParams(temperature=0.2)
    assert model_key(tmp_path / "models" / "x" / "a.gguf") == "a.gguf"  # moving the file keeps its settings
    assert model_defaults() == SamplingParams()


def test_damaged_or_invalid_stored_settings_are_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "model_settings.json"
    path.write_text("{not json", encoding="utf-8")
    store = ModelSettingsStore(path)
    assert store.get("a.gguf") is None and path.with_suffix(".json.bad").exists()
    path.write_text('{"models": {"a.gguf": {"temperature": 99}}}', encoding="utf-8")
    assert ModelSettingsStore(path).get("a.gguf") is None  # out of range: the panel keeps its values


def test_only_the_most_recent_models_are_kept(tmp_path: Path) -> None:
    store = ModelSettingsStore(tmp_path / "m.json")
    for i in range(MAX_REMEMBERED_MODELS + 3):
        store.remember(f"{i}.gguf", SamplingParams(top_k=i % 200))
    store.remember("0.gguf", SamplingParams())  # refreshed: it moves to the end
    again = ModelSettingsStore(tmp_path / "m.json")
    assert again.get("1.gguf") is None and again.get("0.gguf") == SamplingParams()
    assert again.get(f"{MAX_REMEMBERED_MODELS + 2}.gguf") is not None


def test_the_model_defaults_are_what_its_file_recommends(tmp_path: Path) -> None:
    from gguf_factory import write_tiny_llama

    from llamadesk.core.presets import model_defaults_of

    recommends = write_tiny_llama(tmp_path / "recommends.gguf", extra={
        "general.sampling.temp": 0.6, "general.sampling.top_k": 20, "general.sampling.top_p": 0.8,
        "general.sampling.min_p": 7.5,  # out of range: left out, not an error
    })  # fmt: skip
    assert model_defaults_of(recommends) == SamplingParams(temperature=0.6, top_k=20, top_p=0.8)
    assert model_defaults_of(write_tiny_llama(tmp_path / "plain.gguf")) == SamplingParams()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    assert model_defaults_of(broken) == SamplingParams()

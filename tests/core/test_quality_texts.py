"""The evaluation texts that ship with LlamaDesk: each has its source and license in assets/eval/README.md, is long
enough to measure on, and is read as the language it claims; several languages and some code are there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core import quality
from llamadesk.core.quantize import quantize

# A few characters each text must hold, proof that it is the language its name says.
SCRIPT = {
    "de": "ä", "fr": "é", "es": "ñ", "it": "è", "pt": "ã", "ru": "ы", "zh": "道", "ja": "は", "code": "(",
}  # fmt: skip


def test_every_text_has_its_source_and_license_in_the_readme() -> None:
    texts = quality.eval_texts()
    readme = (next(iter(texts.values())).parent / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([^`]+)\.txt` \|.*\| ([^|]+) \|$", readme, flags=re.MULTILINE))
    assert set(rows) == set(texts), "a text without its README row, or a row without its file"
    for name, license in rows.items():
        assert re.search(r"Public domain|License|CC0|permitted", license), (name, license)


def test_several_languages_and_some_code_each_long_enough() -> None:
    texts = quality.eval_texts()
    languages = {name.split("-")[0] for name in texts}
    assert languages >= {"en", "de", "fr", "es", "it", "pt", "ru", "zh", "ja", "code"}
    for name, path in texts.items():
        text = path.read_text(encoding="utf-8")  # UTF-8, or this raises
        # ≥ 2,500 bytes: about 600 tokens or more on a real vocabulary (a CJK character is one token or more)
        assert len(text.encode("utf-8")) >= 2500, name
        prefix = name.split("-")[0]
        if prefix in SCRIPT:
            assert SCRIPT[prefix] in text, name


@pytest.mark.parametrize("name", ["ja-soseki-wagahai", "ru-tolstoy-anna-karenina"])
def test_a_text_in_another_script_measures_the_kl_ordering(name: str, tmp_path: Path, llamadesk_home: Path) -> None:
    """The tiny model's vocabulary reads other scripts byte by byte: a real measurement all the same."""
    f32 = write_tiny_llama(tmp_path / "tiny-F32.gguf")
    q8 = quantize(f32, "Q8_0", tmp_path / "tiny-Q8_0.gguf").path
    q4 = quantize(f32, "Q4_0", tmp_path / "tiny-Q4_0.gguf").path
    text = quality.eval_texts()[name].read_text(encoding="utf-8")[:1500]
    r = {f.type: f for f in quality.compare([q4, f32, q8], text, n_ctx=128, keep=False).files}
    assert r["F32"].is_reference and 0 < r["Q8_0"].kld < r["Q4_0"].kld

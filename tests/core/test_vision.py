"""Images through the in-process engine: real llama.cpp and libmtmd on a generated vision model and projector."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from vision_factory import TOKENS_PER_IMAGE, write_tiny_projector, write_tiny_vision_pair

from llamadesk.commands import EXIT_LOAD, EXIT_USAGE
from llamadesk.core import library
from llamadesk.core.engines import vision
from llamadesk.core.engines.api import FinishReason, LoadOptions
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.errors import GenerationError, ModelLoadError
from llamadesk.core.history import History
from llamadesk.core.images import ImageStore
from llamadesk.core.sampling import SamplingParams
from tests.core.conftest import collect

ASK = {"role": "user", "content": "what is this"}
GREEDY = SamplingParams(temperature=0, top_k=1, max_tokens=4, seed=1)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_vision_pair(tmp_path_factory.mktemp("vision"))


@pytest.fixture
def engine(pair: tuple[Path, Path]) -> Iterator[LlamaCppEngine]:
    model, projector = pair
    eng = LlamaCppEngine()
    eng.load(LoadOptions(model, n_ctx=512, n_threads=1, n_gpu_layers=0, mmproj=projector))
    yield eng
    eng.close()


def stored(color: tuple[int, int, int], size: tuple[int, int] = (90, 60), pattern: bool = False) -> str:
    image = Image.new("RGB", size, color)
    if pattern:  # the left half another colour: a different picture of the same average
        image.paste((255 - color[0], 255 - color[1], 255 - color[2]), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    image.save(out, "PNG")
    return ImageStore().add(out.getvalue()).sha256


def first_token_probs(engine: LlamaCppEngine, messages: list[dict[str, str]]) -> list[tuple[str, float]]:
    """The first reply token's probability and its alternatives' (the top of the distribution after the prompt)."""
    _, done = collect(engine.stream(messages, GREEDY, token_probs=True))
    _offset, text, p, alternatives = done.receipt["token_probs"]["tokens"][0]
    return [(text, p)] + [(t, q) for t, q in alternatives]


def test_the_projector_loads_through_libmtmd(engine: LlamaCppEngine, pair: tuple[Path, Path]) -> None:
    assert engine.info is not None and engine.info.projector == pair[1].name
    assert engine.capabilities()["images"] is True


def test_the_prompt_grows_by_the_images_tokens(engine: LlamaCppEngine) -> None:
    red = stored((220, 30, 30))
    with_image = vision.with_images(ASK, [red])
    prompt = vision.build_prompt(engine, [with_image], vision.GenerationMode.CHAT)
    try:
        placeholders = [i for i in prompt.ids if i < 0]
        assert placeholders == [vision.placeholder_id(red)] * TOKENS_PER_IMAGE
        assert [(i.sha256, i.n_tokens) for i in prompt.images] == [(red, TOKENS_PER_IMAGE)]
    finally:
        prompt.close()
    # the image's tokens, and at most a token or two where the text is cut around it (tokenized in two pieces)
    grown = engine.count_tokens([with_image]) - engine.count_tokens([{**ASK, "content": "\n" + ASK["content"]}])
    assert TOKENS_PER_IMAGE <= grown <= TOKENS_PER_IMAGE + 2
    two = engine.count_tokens([vision.with_images(ASK, [red, stored((10, 200, 10))])])
    assert two - engine.count_tokens([with_image]) >= TOKENS_PER_IMAGE

    _, done = collect(engine.stream([with_image], GREEDY))
    assert done.stats.prompt_tokens == engine.count_tokens([with_image])  # counted from the image's shape, remembered
    assert engine._vision is not None and red in engine._vision._shapes
    assert done.receipt["images"] == [{"sha256": red, "tokens": TOKENS_PER_IMAGE, "encode_s": pytest.approx(
        done.receipt["images"][0]["encode_s"]), "cached": False}]  # fmt: skip
    assert done.receipt["projector"]["file"].startswith("mmproj-")
    assert len(done.receipt["projector"]["sha256"]) == 64

    # the next turn finds the image in the cache and reads it no more
    _, again = collect(engine.stream([with_image], GREEDY))
    assert again.receipt["images"][0]["cached"] is True
    assert again.stats.cached_tokens == again.stats.prompt_tokens


def test_two_different_images_give_different_logits(engine: LlamaCppEngine) -> None:
    red, red_again, blue = stored((220, 30, 30)), stored((220, 30, 30)), stored((30, 30, 220), pattern=True)
    assert red == red_again  # stored once by content
    on_red = first_token_probs(engine, [vision.with_images(ASK, [red])])
    on_blue = first_token_probs(engine, [vision.with_images(ASK, [blue])])
    assert on_red != on_blue
    assert on_red[0][1] > 0


def test_same_image_again_gives_the_same_logits_after_another(engine: LlamaCppEngine) -> None:
    red, blue = stored((220, 30, 30)), stored((30, 30, 220), pattern=True)
    first = first_token_probs(engine, [vision.with_images(ASK, [red])])
    first_token_probs(engine, [vision.with_images(ASK, [blue])])  # another image at the same place
    assert first_token_probs(engine, [vision.with_images(ASK, [red])]) == first


class StopWhileEncoding(threading.Event):
    """Stop pressed while the image is being encoded: set at the first look the encoder takes."""

    def __init__(self, projector: vision.Projector) -> None:
        super().__init__()
        self.projector = projector
        self.pressed_during_encoding = False

    def is_set(self) -> bool:
        if self.projector.encoding and not super().is_set():
            self.pressed_during_encoding = True
            self.set()
        return super().is_set()


def test_stop_during_image_encoding(engine: LlamaCppEngine) -> None:
    projector = engine._vision
    assert projector is not None
    red = stored((220, 30, 30), size=(300, 200))
    messages = [vision.with_images(ASK, [red])]
    # a whole encoding first, for the number of graph nodes it goes through
    expected, done = collect(engine.stream(messages, GREEDY))
    full = projector.nodes_seen
    engine.unload()
    engine.load(LoadOptions(projector.path.parent / "tiny-vision.gguf", n_ctx=512, n_threads=1, n_gpu_layers=0,
                            mmproj=projector.path))  # fmt: skip
    projector = engine._vision
    assert projector is not None

    stop = StopWhileEncoding(projector)
    text, stopped = collect(engine.stream(messages, GREEDY, stop))
    assert stop.pressed_during_encoding
    assert stopped.stats.finish_reason is FinishReason.CANCELLED
    assert text == "" and stopped.stats.generated_tokens == 0
    assert 0 < projector.nodes_seen < full  # the graph ended at the first look after Stop
    assert stopped.receipt["images"][0]["cached"] is False

    # the context is whole again: the same request now gives the same reply as before
    again, done_again = collect(engine.stream(messages, GREEDY))
    assert again == expected and done_again.stats.finish_reason is done.stats.finish_reason


def test_projector_of_another_model_is_refused_at_load(pair: tuple[Path, Path], tmp_path: Path) -> None:
    wide = write_tiny_projector(tmp_path / "mmproj-other-model.gguf", text_embd=128)
    eng = LlamaCppEngine()
    with pytest.raises(ModelLoadError, match=r"mmproj-other-model\.gguf is the projector of another model"):
        eng.load(LoadOptions(pair[0], n_ctx=512, n_threads=1, mmproj=wide))
    assert eng.info is None
    eng.load(LoadOptions(pair[0], n_ctx=512, n_threads=1, mmproj=pair[1]))  # the right one still loads
    assert eng.info is not None and eng.info.projector == pair[1].name
    eng.close()


def test_a_model_file_given_as_projector_is_refused(pair: tuple[Path, Path]) -> None:
    eng = LlamaCppEngine()
    with pytest.raises(ModelLoadError, match="could not be loaded as a projector"):
        eng.load(LoadOptions(pair[0], n_ctx=512, n_threads=1, mmproj=pair[0]))
    eng.close()


def test_image_sent_to_a_text_only_model_gets_a_sentence(pair: tuple[Path, Path]) -> None:
    eng = LlamaCppEngine()
    eng.load(LoadOptions(pair[0], n_ctx=512, n_threads=1))
    try:
        assert eng.capabilities()["images"] is False
        messages = [vision.with_images(ASK, [stored((1, 2, 3))])]
        with pytest.raises(GenerationError, match="reads text only"):
            collect(eng.stream(messages, GREEDY))
        with pytest.raises(GenerationError, match="reads text only"):
            eng.count_tokens(messages)
        _text, done = collect(eng.stream([ASK], GREEDY))  # text still works
        assert done.stats.generated_tokens > 0
    finally:
        eng.close()


def test_an_image_missing_from_the_store_is_a_sentence(engine: LlamaCppEngine) -> None:
    with pytest.raises(GenerationError, match="no longer in LlamaDesk's data folder"):
        collect(engine.stream([vision.with_images(ASK, ["ab" * 32])], GREEDY))


def test_the_library_pairs_a_model_with_its_projector(pair: tuple[Path, Path], tmp_path: Path) -> None:
    model, projector = pair
    assert library.projector_for(model) == projector
    assert library.is_projector(projector) and not library.is_projector(model)
    assert library.projector_for(projector) is None
    lone = tmp_path / "lone.gguf"
    lone.write_bytes(b"GGUF")
    assert library.projector_for(lone) is None


def run_chat(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "llamadesk", "chat", *args], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip


def test_cli_sends_images_with_the_projector_found_next_to_the_model(pair: tuple[Path, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (3000, 200), (200, 10, 10)).save(photo)
    shot = tmp_path / "shot.png"
    Image.new("RGB", (40, 40), (10, 10, 200)).save(shot)
    out = run_chat("--model", str(pair[0]), "--image", str(photo), "--image", str(shot), "--max-tokens", "4",
                   "--seed", "3", "--stats", "what are these", home=home)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "[photo.jpg: scaled down from 3,000 × 200]" in out.stderr and "Traceback" not in out.stderr
    with History(home / "data" / "history.sqlite3") as history:
        conv = history.list_conversations()[0]
        reply = history.messages(conv.id)[-1]
    receipt = reply.receipt
    assert receipt is not None
    assert [i["tokens"] for i in receipt["images"]] == [TOKENS_PER_IMAGE, TOKENS_PER_IMAGE]
    assert {i["sha256"] for i in receipt["images"]} == ImageStore(home / "data" / "images").hashes()
    assert receipt["projector"]["file"] == pair[1].name


def test_cli_without_a_projector_or_with_another_models_is_one_sentence(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shot = tmp_path / "shot.png"
    Image.new("RGB", (40, 40), (10, 10, 200)).save(shot)
    lone = tmp_path / "alone" / "text-only.gguf"
    lone.parent.mkdir()
    shutil.copy(pair[0], lone)
    out = run_chat("--model", str(lone), "--image", str(shot), "--no-history", "hi", home=home)
    assert out.returncode == EXIT_USAGE
    assert out.stderr.strip() == (
        "llamadesk chat: No projector (mmproj-*.gguf) sits next to text-only.gguf, so it cannot read images; "
        "name the model's projector with --mmproj."
    )
    wide = write_tiny_projector(tmp_path / "mmproj-wide.gguf", text_embd=128)
    out = run_chat("--model", str(lone), "--mmproj", str(wide), "--image", str(shot), "--no-history", "hi", home=home)
    assert out.returncode == EXIT_LOAD
    assert out.stderr.strip().startswith("llamadesk chat: mmproj-wide.gguf is the projector of another model")
    out = run_chat("--model", str(pair[0]), "--image", str(tmp_path / "none.png"), "--no-history", "hi", home=home)
    assert out.returncode == EXIT_USAGE and "none.png could not be opened" in out.stderr


def test_a_malformed_projector_is_refused_without_taking_the_app_down(pair: tuple[Path, Path], tmp_path: Path) -> None:
    # Its patch kernel does not fit its patch size: llama.cpp's graph fails a GGML_ASSERT and abort()s. The probe's
    # child process runs the projector's warm-up first, so it is that child that stops, not this process.
    broken = write_tiny_projector(tmp_path / "mmproj-broken.gguf", patch_kernel=28)
    eng = LlamaCppEngine()
    with pytest.raises(ModelLoadError, match=r"^mmproj-broken\.gguf is malformed: llama\.cpp stopped while reading it"):
        eng.load(LoadOptions(pair[0], n_ctx=512, n_threads=1, mmproj=broken))
    assert eng.info is None
    eng.close()

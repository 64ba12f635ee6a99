"""Hub access against the local fake Hub: names, search, listings, metadata, token scope, header-only reads."""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from file_keyring import MemoryKeyring

sys.path.insert(0, str(Path(__file__).parents[1]))

from fakehub import FakeHub, wait_until
from gguf_factory import write_tiny_llama

from llamadesk.core import hub, remote
from llamadesk.core.hub import BadNameError, HubError, RemoteFile

REPO = "tester/Tiny-GGUF"


@pytest.fixture(scope="module")
def big_vocab_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A llama with a 200k-token vocabulary: a 51 MB embedding table behind a ~3 MB header."""
    path = tmp_path_factory.mktemp("big") / "big-vocab-F32.gguf"
    n_vocab, n_embd = 200_000, 64
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("big vocab")
    w.add_block_count(1)
    w.add_context_length(4096)
    w.add_embedding_length(n_embd)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"tok{i}" for i in range(n_vocab)])
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types([1] * n_vocab)
    w.add_tensor("token_embd.weight", np.zeros((n_vocab, n_embd), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((n_embd, n_embd), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def big_tensor_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer llama with 1024-wide layers: about 80 MB of weights."""
    return write_tiny_llama(tmp_path_factory.mktemp("bigt") / "wide-F32.gguf", n_layers=2, n_embd=1024, n_head=16)


@pytest.fixture
def tiny_hub(fake_hub: FakeHub, tiny_model: Path) -> FakeHub:
    fake_hub.add_repo(REPO, downloads=10, likes=1, last_modified="2024-05-01T00:00:00.000Z")
    fake_hub.add_repo("other/Popular-GGUF", downloads=900, likes=0, last_modified="2023-01-01T00:00:00.000Z")
    fake_hub.add_repo("other/Liked-GGUF", downloads=5, likes=50, last_modified="2025-01-01T00:00:00.000Z")
    fake_hub.add_repo("other/not-a-gguf", downloads=10_000, tags=["safetensors"])
    data = tiny_model.read_bytes()
    fake_hub.add_file(REPO, "tiny-Q8_0.gguf", data)
    fake_hub.add_file(REPO, "tiny-Q4_K_M.gguf", data[: len(data) // 2] + data[len(data) // 2:])
    for i in (1, 2, 3):
        fake_hub.add_file(REPO, f"split/tiny-F16-0000{i}-of-00003.gguf", data)
    fake_hub.add_file(REPO, "mmproj-tiny-f16.gguf", data)
    fake_hub.add_file(REPO, "README.md", b"# tiny\n", lfs=False)
    return fake_hub


@pytest.mark.parametrize("name", ["../x.gguf", "/etc/passwd", "a/../../b.gguf", "a\\b.gguf", ".x.gguf", "x\x00.gguf",
                                  "C:x.gguf", "nul.gguf", "a//b.gguf", "x\n.gguf", "é€.gguf", "x" * 300 + ".gguf"])
def test_unsafe_remote_names_are_refused(name: str) -> None:
    with pytest.raises(BadNameError, match="unsafe"):
        hub.check_remote_name(name)


def test_refs_and_urls() -> None:
    assert hub.parse_model_ref("a/b:f.gguf") == hub.ModelRef("a/b", "f.gguf")
    assert hub.parse_model_ref("a/b@v1:d/f.gguf") == hub.ModelRef("a/b", "d/f.gguf", "v1")
    url = "https://huggingface.co/bartowski/X-GGUF/resolve/main/X-Q4_K_M.gguf?download=true"
    assert hub.parse_model_ref(url) == hub.ModelRef("bartowski/X-GGUF", "X-Q4_K_M.gguf")
    assert hub.parse_model_ref("https://huggingface.co/bartowski/X-GGUF") == hub.ModelRef("bartowski/X-GGUF")
    for bad in ("nope", "a/b/c", "../b", "a/b:../../etc/passwd", "https://huggingface.co/x"):
        with pytest.raises(BadNameError):
            hub.parse_model_ref(bad)


def test_grouping_of_splits_and_quantizations() -> None:
    files = [RemoteFile("a/b", f"m-Q8_0-0000{i}-of-00002.gguf", 10, None) for i in (2, 1)]
    files += [RemoteFile("a/b", name, size, None) for name, size in (
        ("m-Q4_K_M.gguf", 7), ("notes.txt", 1), ("mmproj-m-f16.gguf", 3), ("n-IQ4_XS-00001-of-00003.gguf", 1))]
    groups = hub.group_gguf_files(files)
    by_name = {g.name: g for g in groups}
    split = by_name["m-Q8_0.gguf"]
    assert split.quantization == "Q8_0" and split.size == 20 and split.complete
    assert [f.path for f in split.files] == ["m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf"]
    assert not by_name["n-IQ4_XS.gguf"].complete
    assert by_name["mmproj-m-f16.gguf"].is_projector and groups[-1].is_projector
    assert by_name["m-Q4_K_M.gguf"].quantization == "Q4_K_M"


def test_search_sorts_and_limits(tiny_hub: FakeHub) -> None:
    assert [r.repo_id for r in hub.search_models("GGUF")] == ["other/Popular-GGUF", REPO, "other/Liked-GGUF"]
    assert [r.repo_id for r in hub.search_models("gguf", sort="likes", limit=1)] == ["other/Liked-GGUF"]
    assert hub.search_models("gguf", sort="recent")[0].repo_id == "other/Liked-GGUF"
    assert hub.search_models("nothing-like-this") == []
    search = next(r for r in tiny_hub.records if r.path.startswith("/api/models?"))
    assert "filter=gguf" in search.path


def test_files_grouped_with_sizes_and_hashes(tiny_hub: FakeHub, tiny_model: Path) -> None:
    groups = hub.list_gguf_groups(REPO)
    names = [g.name for g in groups]
    assert "tiny-F16.gguf" in names and "README.md" not in names
    f16 = groups[names.index("tiny-F16.gguf")]
    assert len(f16.files) == 3 and f16.size == 3 * tiny_model.stat().st_size
    assert f16.first.sha256 == tiny_hub.files[(REPO, "split/tiny-F16-00001-of-00003.gguf")].sha256


def test_a_listing_with_unsafe_names_drops_them(tiny_hub: FakeHub) -> None:
    tiny_hub.add_file(REPO, "../../evil.gguf", b"x")
    tiny_hub.add_file(REPO, "sub/.hidden.gguf", b"x")
    paths = [f.path for f in hub.list_files(REPO)]
    assert "../../evil.gguf" not in paths and "sub/.hidden.gguf" not in paths and "tiny-Q8_0.gguf" in paths


def test_metadata_pins_the_commit_and_reads_the_lfs_hash(tiny_hub: FakeHub, tiny_model: Path) -> None:
    meta = hub.file_metadata(REPO, "tiny-Q8_0.gguf")
    entry = tiny_hub.files[(REPO, "tiny-Q8_0.gguf")]
    assert meta.sha256 == entry.sha256 and meta.size == tiny_model.stat().st_size
    assert meta.commit == tiny_hub.repos[REPO].commit and f"/resolve/{meta.commit}/" in meta.url
    with pytest.raises(HubError, match="no file named"):
        hub.file_metadata(REPO, "missing.gguf")
    with pytest.raises(HubError, match="not found"):
        hub.file_metadata("nobody/nothing", "x.gguf")


def test_the_endpoint_is_read_at_call_time(tiny_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub.hub_endpoint() == tiny_hub.url
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert hub.hub_endpoint() == "http://127.0.0.1:9"
    assert hub.hub_endpoint("http://x.test/") == "http://x.test"


@pytest.mark.parametrize("model_fixture", ["big_vocab_model", "big_tensor_model"])
def test_remote_header_reads_only_a_few_megabytes(fake_hub: FakeHub, model_fixture: str,
                                                  request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(model_fixture)
    size = path.stat().st_size
    assert size >= 50_000_000
    fake_hub.add_file("big/Model-GGUF", path.name, source=path)
    header = remote.read_remote_header("big/Model-GGUF", path.name)
    assert header.architecture == "llama" and header.file_size == size
    # the reader's own count matches the server's (whose last chunk may be booked a moment after it arrived)
    assert wait_until(lambda: fake_hub.body_bytes(path.name) == header.bytes_read, timeout=5)
    sent = header.bytes_read
    assert sent < 8_000_000, f"{sent} bytes transferred for a {size}-byte file"
    if model_fixture == "big_vocab_model":
        assert header.n_vocab == 200_000 and sent > 2_000_000  # the vocabulary was walked, not skipped blindly


def test_gated_file_needs_the_token_and_it_never_reaches_the_cdn(tiny_hub: FakeHub, tiny_model: Path) -> None:
    tiny_hub.add_repo(REPO, gated_token="hf_secret_token_123")
    with pytest.raises(HubError, match=r"gated|not found"):
        hub.file_metadata(REPO, "tiny-Q8_0.gguf")
    tiny_hub.faults.redirect_to_cdn = True
    header = remote.read_remote_header(REPO, "tiny-Q8_0.gguf", token="hf_secret_token_123")
    assert header.architecture == "llama"
    assert tiny_hub.requests_to("cdn"), "the Range reads should have been redirected to the CDN"
    assert all("authorization" not in r.headers for r in tiny_hub.requests_to("cdn"))
    assert any(r.headers.get("authorization") == "Bearer hf_secret_token_123" for r in tiny_hub.requests_to("hub"))


def test_hub_down_is_one_sentence(monkeypatch: pytest.MonkeyPatch, loopback_only: None) -> None:
    with FakeHub() as dead:
        url = dead.url
    monkeypatch.setenv("HF_ENDPOINT", url)
    with pytest.raises(hub.HubUnavailable, match="could not be reached"):
        hub.file_metadata("a/b", "x.gguf")


def test_token_lives_in_the_keyring(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, memory_keyring: MemoryKeyring
) -> None:
    import keyring
    from keyring.backends import fail

    from llamadesk.core import secrets

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert secrets.get_hf_token() is None
    secrets.set_hf_token("  hf_abcdefghijklmnop \n")
    assert secrets.get_hf_token() == "hf_abcdefghijklmnop"
    assert memory_keyring.store == {(secrets.SERVICE, secrets.HF_TOKEN_KEY): "hf_abcdefghijklmnop"}
    monkeypatch.setenv("HF_TOKEN", "hf_from_environment")
    assert secrets.get_hf_token() == "hf_from_environment"
    monkeypatch.delenv("HF_TOKEN")
    assert secrets.delete_hf_token() and not secrets.delete_hf_token()
    with pytest.raises(secrets.SecretStoreError, match="does not look like"):
        secrets.set_hf_token("not a token")
    keyring.set_keyring(fail.Keyring())
    assert secrets.get_hf_token() is None  # no keyring: no token, a log line, no crash
    with pytest.raises(secrets.SecretStoreError, match="refused to store"):
        secrets.set_hf_token("hf_abcdefghijklmnop")
    assert "hf_abcdefghijklmnop" not in caplog.text

"""Task prefixes of embedding models: found from the catalog's file names or the GGUF's header, and written before a
query and before each passage by the real Embedder on a generated model (the vectors are compared, not mocked)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core.documents import embeddings, store, vectors
from llamadesk.core.documents.embeddings import Embedder
from llamadesk.core.documents.index import index_collection
from llamadesk.core.documents.prefixes import BGE_EN, GEMMA, NOMIC, NONE, from_catalog, from_header
from llamadesk.core.documents.store import EmbeddingModel
from llamadesk.core.fileinfo import sha256_file


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("prefix") / "plain.gguf", pooling=embeddings.POOLING_MEAN)


def test_the_catalogs_embedding_models_get_their_model_cards_prefixes() -> None:
    assert from_catalog("nomic-embed-text-v1.5.Q4_K_M.gguf") == NOMIC
    assert from_catalog("bge-small-en-v1.5-q8_0.gguf") == BGE_EN
    assert from_catalog("bge-base-en-v1.5-f16.gguf") == BGE_EN
    assert from_catalog("embeddinggemma-300M-BF16.gguf") == GEMMA
    assert from_catalog("bge-m3-Q4_K_M.gguf") == NONE  # in the catalog, and needs none
    assert from_catalog("my-own-model.gguf") is None  # not in the catalog: the header decides


def test_a_file_the_catalog_does_not_list_is_known_by_its_header() -> None:
    assert from_header("nomic-bert", "nomic-embed-text-v1.5", "x.gguf") == NOMIC
    assert from_header("gemma-embedding", None, "x.gguf") == GEMMA
    assert from_header("bert", "bge-large-en-v1.5", "x.gguf") == BGE_EN
    assert from_header("bert", None, "BGE-Small-EN-v1.5.Q5.gguf") == BGE_EN
    assert from_header("bert", "bge-m3", "bge-m3.gguf") == NONE
    assert from_header("llama", "SmolLM2", "smol.gguf") == NONE


def test_the_query_is_embedded_after_its_prefix(model: Path, tmp_path: Path) -> None:
    named = write_tiny_llama(tmp_path / "named.gguf", pooling=embeddings.POOLING_MEAN, name="bge-small-en-v1.5")
    bge, plain = Embedder(named), Embedder(model)
    try:
        assert bge.prefixes == BGE_EN and plain.prefixes == NONE
        query = "where is the spring event"
        with_prefix = bge.embed([BGE_EN.query + query])[0]
        assert np.allclose(bge.embed_query(query), with_prefix, atol=1e-5)
        assert not np.allclose(bge.embed([query])[0], with_prefix, atol=1e-3)
        assert np.allclose(plain.embed_query(query), plain.embed([query])[0], atol=1e-5)
    finally:
        bge.close()
        plain.close()


def test_passages_are_embedded_after_the_document_prefix(model: Path, tmp_path: Path) -> None:
    nomic = tmp_path / "nomic-embed-text-v1.5.Q4_0.gguf"  # a file the catalog lists as nomic-embed-text
    shutil.copy(model, nomic)
    root = tmp_path / "docs"
    root.mkdir()
    (root / "venue.txt").write_text("The venue for the spring event is the town hall.\n")
    collection = store.create_collection("prefixed", tmp_path / "collections")
    embedder = Embedder(nomic)
    try:
        assert embedder.prefixes == NOMIC
        collection.add_roots([root])
        index_collection(collection)
        collection.set_embedding_model(EmbeddingModel(str(nomic), nomic.name, sha256_file(nomic), embedder.dimension))
        assert vectors.embed_missing(collection, embedder) == 1
        ((text, blob),) = collection.read(
            "SELECT p.text, v.vector FROM passages p JOIN vectors v ON v.passage_id = p.id"
        )
        stored = np.frombuffer(blob, dtype=np.float32)  # type: ignore[arg-type]
        assert np.allclose(stored, embedder.embed(["search_document: " + str(text)])[0], atol=1e-5)
        assert not np.allclose(stored, embedder.embed([str(text)])[0], atol=1e-3)
    finally:
        embedder.close()
        collection.close()
        vectors.forget_cached()

"""Semantic retrieval through real llama.cpp: a tiny generated llama that declares mean pooling embeds passages;
vectors are stored, kept in step with the index, and fused with BM25. With random weights the vectors mean nothing,
so these tests check the mechanics (normalization, incrementality, fusion), not the quality of a search."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from gguf_factory import write_tiny_llama

from llamadesk.core.documents import embeddings, store, vectors
from llamadesk.core.documents.embeddings import Embedder, EmbeddingError, cached_embedder
from llamadesk.core.documents.index import index_collection
from llamadesk.core.documents.search import fuse, search, search_ranked
from llamadesk.core.documents.store import Collection, EmbeddingModel
from llamadesk.core.fileinfo import sha256_file

NEAR = "qwxz vbnm"  # a passage...
QUERY = "qwx zvbnm"  # ...and a query with the same letters but no word in common: BM25 cannot find it from here
OTHERS = {
    "budget.txt": "The committee discussed the budget and the schedule; zvbnm was noted in the minutes.",
    "venue.txt": "The venue for the spring event is the town hall, booked for Tuesday evening.",
    "zebras.txt": "Zebras are striped. A zebra herd grazes on the plain and runs fast when lions come.",
}


@pytest.fixture(scope="module")
def embed_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("embed")
    return write_tiny_llama(folder / "tiny-embed-mean.gguf", pooling=embeddings.POOLING_MEAN)


@pytest.fixture
def embedder(embed_model: Path) -> Embedder:
    e = Embedder(embed_model)
    yield e  # type: ignore[misc]
    e.close()


@pytest.fixture
def coll(tmp_path: Path) -> Collection:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "near.txt").write_text(NEAR + "\n")
    for name, text in OTHERS.items():
        (root / name).write_text(text + "\n")
    c = store.create_collection("semantic", tmp_path / "collections")
    c.add_roots([root])
    index_collection(c)
    yield c  # type: ignore[misc]
    c.close()
    embeddings.release_cached()
    vectors.forget_cached()


def use_model(c: Collection, path: Path, dimension: int = 64) -> EmbeddingModel:
    model = EmbeddingModel(str(path), path.name, sha256_file(path), dimension)
    c.set_embedding_model(model)
    return model


def test_vectors_are_normalized_and_of_the_models_dimension(embedder: Embedder) -> None:
    assert embedder.dimension == 64 and embedder.pooling == embeddings.POOLING_MEAN
    texts = ["hello world", "the model is good", "hello world", "x" * 20_000]  # the last is cut to the context
    m = embedder.embed(texts)
    assert m.dtype == np.float32 and m.shape == (4, 64)
    assert np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    assert np.allclose(m[0], m[2]) and not np.allclose(m[0], m[1])
    assert embedder.embed([]).shape == (0, 64)


def test_a_model_that_cannot_embed_is_one_sentence(tmp_path: Path, tiny_model: Path, embed_model: Path) -> None:
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("these are notes, not a model\n")
    reranker = write_tiny_llama(tmp_path / "rerank.gguf", pooling=embeddings.POOLING_RANK)
    cases = {not_gguf: "not a GGUF", tiny_model: "not an embedding model", reranker: "reranking model",
             tmp_path / "missing.gguf": "No model file"}  # fmt: skip
    for path, words in cases.items():
        with pytest.raises(EmbeddingError) as caught:
            Embedder(path)
        sentence = str(caught.value)
        assert words in sentence and "\n" not in sentence and sentence.endswith("."), sentence
    assert Embedder(tiny_model, pooling=embeddings.POOLING_MEAN).dimension == 64  # a chat model, pooled on request


def test_embed_gives_every_passage_a_normalized_vector(coll: Collection, embedder: Embedder, embed_model: Path) -> None:
    use_model(coll, embed_model)
    assert vectors.pending(coll) == coll.stats().passages == 4
    seen: list[tuple[int, int]] = []
    assert vectors.embed_missing(coll, embedder, progress=lambda d, t: seen.append((d, t)), batch=3) == 4
    assert seen == [(3, 4), (4, 4)] and vectors.pending(coll) == 0 and vectors.count(coll) == 4
    rows = coll.read("SELECT p.text, v.vector FROM vectors v JOIN passages p ON p.id = v.passage_id")
    for text, blob in rows:
        vector = np.frombuffer(blob, dtype=np.float32)  # type: ignore[call-overload]
        assert vector.shape == (64,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
        assert np.allclose(vector, embedder.embed([str(text)])[0], atol=1e-5)
    assert vectors.embed_missing(coll, embedder) == 0  # nothing left to do


def test_a_reindex_embeds_only_the_new_passages(coll: Collection, embedder: Embedder, embed_model: Path,
                                               tmp_path: Path) -> None:  # fmt: skip
    use_model(coll, embed_model)
    vectors.embed_missing(coll, embedder)
    by_text = "SELECT p.text, v.vector FROM vectors v JOIN passages p ON p.id = v.passage_id"
    before = dict(coll.read(by_text))
    lions = embedder.embed(["A new file about lions."])[0]
    assert vectors.nearest(coll, lions, 1)[0][1] < 0.999  # (and this thread now holds the matrix)
    root = tmp_path / "docs"
    (root / "venue.txt").write_text("The venue moved to the library, booked for Wednesday.\n")  # re-read: new passage
    (root / "zebras.txt").unlink()  # removed: its passage and its vector go
    (root / "new.txt").write_text("A new file about lions.\n")
    report = index_collection(coll)
    assert (report.read, report.removed, report.embedded, report.embedding_problem) == (2, 1, 2, "")
    after = dict(coll.read(by_text))
    kept = set(before) & set(after)
    assert len(kept) == 2 and all(before[k] == after[k] for k in kept)  # the unchanged files' vectors were kept
    assert {str(t) for t in set(after) - kept} == {"The venue moved to the library, booked for Wednesday.",
                                                   "A new file about lions."}  # fmt: skip
    assert vectors.count(coll) == coll.stats().passages == 4 and vectors.pending(coll) == 0
    assert vectors.nearest(coll, lions, 1)[0][1] == pytest.approx(1.0, abs=1e-5)  # the held matrix was read again
    orphans = coll.read("SELECT COUNT(*) FROM vectors WHERE passage_id NOT IN (SELECT id FROM passages)")
    assert orphans == [(0,)]
    assert index_collection(coll).embedded == 0  # nothing changed, nothing embedded


def test_index_without_a_model_embeds_nothing_and_a_lost_model_is_a_sentence(coll: Collection, tmp_path: Path,
                                                                            embed_model: Path) -> None:  # fmt: skip
    (tmp_path / "docs" / "new.txt").write_text("A new file about lions.\n")
    assert index_collection(coll).embedded == 0 and vectors.count(coll) == 0
    gone = tmp_path / "gone.gguf"
    gone.write_bytes(embed_model.read_bytes())
    use_model(coll, gone)
    gone.unlink()
    report = index_collection(coll)
    assert report.embedded == 0 and "No model file" in report.embedding_problem


def test_hybrid_search_finds_by_the_vectors_what_bm25_misses(coll: Collection, embedder: Embedder,
                                                            embed_model: Path) -> None:  # fmt: skip
    lexical, ranking = search_ranked(coll, QUERY, 2)
    assert ranking.kind == "bm25" and [Path(h.path).name for h in lexical] == ["budget.txt"]  # "zvbnm" only
    use_model(coll, embed_model)
    vectors.embed_missing(coll, embedder)
    query = cached_embedder(embed_model).embed([QUERY])[0]
    nearest = vectors.nearest(coll, query, 10)
    texts = dict(coll.read("SELECT id, text FROM passages"))
    assert texts[nearest[0][0]] == NEAR and len(nearest) == 4  # same letters, no shared word: closest by far
    assert [s for _, s in nearest] == sorted((s for _, s in nearest), reverse=True)
    hits, ranking = search_ranked(coll, QUERY, 2)
    assert ranking.kind == "hybrid" and ranking.model == embed_model.name and "reciprocal rank" in ranking.describe()
    assert [Path(h.path).name for h in hits] == ["budget.txt", "near.txt"]  # both lists, then the vector side's best
    budget_rank = 1 + [texts[i] for i, _ in nearest].index(OTHERS["budget.txt"])
    assert hits[0].score == pytest.approx(1 / 61 + 1 / (60 + budget_rank)) and hits[1].score == pytest.approx(1 / 61)
    assert search(coll, "", 5) == [] and search(coll, QUERY, 0) == []


def test_reciprocal_rank_fusion() -> None:
    bm25 = [(1, 9.0), (2, 5.0), (3, 1.0)]
    vec = [(4, 0.9), (1, 0.8)]
    fused = fuse([bm25, vec], 10)
    assert [r for r, _ in fused] == [1, 4, 2, 3]  # in both lists first; then each list's first, second, third
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fuse([bm25, vec], 2) == fused[:2] and fuse([[], []], 5) == []
    assert [r for r, _ in fuse([[(5, 1.0)], [(6, 1.0)]], 2)] == [5, 6]  # equal scores: the BM25 list's first


def test_a_missing_model_falls_back_to_bm25_with_a_sentence(coll: Collection, embed_model: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    moved = tmp_path / "moved.gguf"
    moved.write_bytes(embed_model.read_bytes())
    use_model(coll, moved)
    moved.unlink()
    hits, ranking = search_ranked(coll, "zebra", 3)
    assert ranking.kind == "bm25" and "gone" in ranking.note and [Path(h.path).name for h in hits] == ["zebras.txt"]
    assert ranking.describe().startswith("BM25 (The embedding model")


def test_another_model_drops_the_vectors_and_none_returns_to_bm25(coll: Collection, embedder: Embedder,
                                                                 embed_model: Path) -> None:  # fmt: skip
    model = use_model(coll, embed_model)
    vectors.embed_missing(coll, embedder)
    assert coll.embedding_model() == model
    assert coll.set_embedding_model(model) is False and vectors.count(coll) == 4  # the same model: kept
    assert coll.set_embedding_model(EmbeddingModel(model.path, model.name, "0" * 64, 64)) is True
    assert vectors.count(coll) == 0
    assert coll.set_embedding_model(None) is True and coll.embedding_model() is None
    assert search_ranked(coll, "zebra", 3)[1].kind == "bm25"


def test_the_embedder_is_cached_per_thread(embed_model: Path) -> None:
    mine = cached_embedder(embed_model)
    assert cached_embedder(embed_model) is mine
    theirs: list[Embedder] = []

    def other() -> None:
        theirs.append(cached_embedder(embed_model))
        theirs[0].embed(["hello"])
        embeddings.release_cached()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert theirs and theirs[0] is not mine and theirs[0].owner != mine.owner
    with pytest.raises(RuntimeError, match="only by the thread"):
        theirs[0].embed(["hello"])  # its thread's model: never used from another one
    embeddings.release_cached()
    assert cached_embedder(embed_model) is not mine  # released, then loaded again
    embeddings.release_cached()


def test_deleting_the_collection_deletes_its_vectors(coll: Collection, embedder: Embedder, embed_model: Path,
                                                    tmp_path: Path) -> None:  # fmt: skip
    use_model(coll, embed_model)
    vectors.embed_missing(coll, embedder)
    path = coll.path
    coll.close()
    store.delete_collection("semantic", tmp_path / "collections")
    assert not path.exists() and not list(path.parent.glob(path.name + "*"))
    with store.create_collection("semantic", tmp_path / "collections") as again:
        assert again.embedding_model() is None and vectors.count(again) == 0


def test_a_version_1_collection_is_migrated(tmp_path: Path) -> None:
    folder = tmp_path / "collections"
    folder.mkdir()
    path = store.collection_path("old", folder)
    conn = sqlite3.connect(path, isolation_level=None)
    for sql in store.MIGRATIONS[0]:
        conn.execute(sql)
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("name", "old"), ("created", "1.0")])
    conn.execute("INSERT INTO files (id, path, status, indexed_at) VALUES (1, '/x.txt', 'ok', 0)")
    conn.execute("INSERT INTO passages (file_id, ordinal, text, line) VALUES (1, 0, 'an old zebra passage', 1)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with store.open_collection("old", folder) as c:
        assert c.read("PRAGMA user_version") == [(2,)] and c.embedding_model() is None
        assert [h.text for h in search(c, "zebra")] == ["an old zebra passage"] and vectors.count(c) == 0
        assert vectors.pending(c) == 1


def test_the_role_of_a_model_comes_from_its_header(tmp_path: Path, tiny_model: Path, embed_model: Path) -> None:
    bert = write_tiny_llama(tmp_path / "bert.gguf", architecture="bert")  # an encoder, even with no pooling declared
    reranker = write_tiny_llama(tmp_path / "rerank.gguf", pooling=embeddings.POOLING_RANK)
    cls = write_tiny_llama(tmp_path / "cls.gguf", pooling=embeddings.POOLING_CLS)
    none = write_tiny_llama(tmp_path / "none.gguf", pooling=embeddings.POOLING_NONE)
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("these are notes, not a model\n")
    roles = {p.name: embeddings.model_role(p) for p in (tiny_model, embed_model, bert, reranker, cls, none, not_gguf,
                                                      tmp_path / "missing.gguf")}  # fmt: skip
    assert roles == {"tiny-chatml.gguf": "chat", "tiny-embed-mean.gguf": "embedding", "bert.gguf": "embedding",
                     "rerank.gguf": "reranking", "cls.gguf": "embedding", "none.gguf": "chat", "notes.gguf": "chat",
                     "missing.gguf": "chat"}  # fmt: skip
    embed_model_copy = tmp_path / "changed.gguf"
    embed_model_copy.write_bytes(embed_model.read_bytes())
    assert embeddings.model_role(embed_model_copy) == "embedding"
    embed_model_copy.write_bytes(tiny_model.read_bytes())  # another file at the same path: read again
    assert embeddings.model_role(embed_model_copy) == "chat"

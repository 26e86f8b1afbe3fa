"""FAISS index types other than Flat: what each can do, and a clear status for what not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import Client, InvalidArgument, Ref
from embedspace_server.encoders import EncoderRegistry
from embedspace_server.encoders.vector import VectorEncoder
from embedspace_server.engine import Engine
from embedspace_server.errors import CollectionNotFound
from embedspace_server.index import CollectionStore
from gensim.models import KeyedVectors

from .conftest import wait_until


def _fill(client: Client, name: str, index: str, n: int = 400) -> tuple[list[str], np.ndarray]:
    vectors = np.random.default_rng(5).normal(size=(n, 8)).astype(np.float32)
    ids = [f"q{i}" for i in range(n)]
    client.create_collection(name, "vec8", index=index)
    client.upsert(name, ids, vectors=vectors)
    return ids, vectors


@pytest.mark.parametrize("index", ["SQ8", "Flat"])
def test_flat_code_indexes_replace_and_delete_keeping_ids_right(
    client: Client, collection_name: str, index: str
) -> None:
    _fill(client, collection_name, index)
    rng = np.random.default_rng(9)
    replaced = {f"q{i}": rng.normal(size=8).astype(np.float32) for i in range(0, 400, 7)}
    client.upsert(collection_name, list(replaced), vectors=np.stack(list(replaced.values())))
    assert client.delete(collection_name, ["q1", "q2", "q3"]) == 3
    for item in client.get(collection_name, list(replaced)):
        new = replaced[item.id] / np.linalg.norm(replaced[item.id])
        # SQ8 clips to the range it was trained on: close in direction, not exact.
        assert float(item.vector @ new) / float(np.linalg.norm(item.vector)) > 0.99
        hit = client.search(collection_name, Ref(item.id), k=1)[0]
        assert hit.id == item.id  # the id map still points at the right vectors
    assert client.describe(collection_name).count == 397
    got = client.get(collection_name, ["q1", "q4"])
    assert [item.id for item in got] == ["q4"] and got.missing_ids == ["q1"]


@pytest.mark.parametrize("index", ["IVF4,Flat", "HNSW8"])
def test_indexes_that_cannot_remove_keep_tombstones_then_rebuild(
    start_server: Any, tmp_path: Path, index: str
) -> None:
    data = tmp_path / "data"
    with start_server(data) as server, Client(server.target) as es:
        _, vectors = _fill(es, "c", index)
        (item,) = es.get("c", ["q17"])
        assert np.allclose(item.vector, vectors[17] / np.linalg.norm(vectors[17]), atol=1e-6)
        assert es.search("c", Ref("q17"), k=1)[0].id == "q17"
        # Replace and delete: the old vectors are filtered from answers at once.
        es.upsert("c", ["q17"], vectors=-vectors[17:18])
        assert es.delete("c", [f"q{i}" for i in range(100, 200)]) == 100
        deleted = {f"q{i}" for i in range(100, 200)}
        hits = es.search("c", vectors[17], k=400)  # approximate: IVF probes one list
        assert hits and "q17" not in [h.id for h in hits[:5]]
        assert not deleted & {h.id for h in hits}
        assert es.search("c", -vectors[17], k=1)[0].id == "q17"
        assert es.describe("c").count == 300
    with start_server(data, snapshot_interval_s=0.1) as server, Client(server.target) as es:
        # The log replays the tombstones; the timer then rebuilds without them (101 of 401
        # is over the threshold) and the answers stay the same.
        collection = server.server.engine.collection("c")
        before = es.search("c", -vectors[17], k=5)
        wait_until(lambda: not collection.tombstones)
        assert collection._index.ntotal == 300 and es.describe("c").count == 300
        assert es.search("c", -vectors[17], k=1)[0].id == "q17"
        assert not deleted & {h.id for h in es.search("c", vectors[17], k=400)}
        if index.startswith("HNSW"):
            assert [h.id for h in es.search("c", -vectors[17], k=5)] == [h.id for h in before]


@pytest.mark.parametrize("index", ["IVF4,Flat", "SQ8"])
def test_analogy_is_gensim_on_the_stored_vectors_whatever_the_index(
    client: Client, collection_name: str, index: str
) -> None:
    ids, _ = _fill(client, collection_name, index)
    kv = KeyedVectors(8)
    kv.add_vectors(ids, np.stack([s.vector for s in client.get(collection_name, ids)]))
    for a, b, c in (("q1", "q2", "q3"), ("q10", "q20", "q30")):
        ours = client.analogy(collection_name, [Ref(b), Ref(c)], [Ref(a)], k=5)
        theirs = kv.most_similar(positive=[b, c], negative=[a], topn=5)
        assert [n.id for n in ours] == [key for key, _ in theirs]


def test_huge_weights_are_refused_or_computed_without_overflow(
    client: Client, collection_name: str
) -> None:
    from embedspace import Sum

    _fill(client, collection_name, "Flat", n=20)
    with pytest.raises(InvalidArgument, match="finite"):
        client.analogy(collection_name, [(Ref("q1"), float("inf")), Ref("q2")])
    big = np.full(8, 3e38, np.float32)
    mean = client.mean_vector([big, big], collection=collection_name, weights=[3e38, 3e38])
    np.testing.assert_allclose(mean, big, rtol=1e-6)  # a mean, not inf or NaN
    with pytest.raises(InvalidArgument, match="overflows"):
        client.search(collection_name, Sum([(big, 3.0), (big, 3.0)]))


def test_the_term_budget_is_per_query_not_per_call(client: Client) -> None:
    vectors = list(np.random.default_rng(2).normal(size=(300, 8)).astype(np.float32))
    assert client.distance(vectors, vectors, encoder="vec8", matrix=True).shape == (300, 300)


def test_a_write_racing_a_drop_fails_and_the_drop_sticks(tmp_path: Path) -> None:
    store = CollectionStore(tmp_path)
    engine = Engine(EncoderRegistry([VectorEncoder("v", 4)]), store)
    engine.create_collection("c", "v")
    orphan = engine.collection("c")
    engine.drop_collection("c")
    with pytest.raises(CollectionNotFound, match="dropped"):
        orphan.upsert(["x"], np.ones((1, 4), np.float32), [{}])
    assert store.save(orphan) is False
    assert engine.snapshot() == 0
    assert not (tmp_path / "collections" / "c").exists()
    store.close()
    reopened = CollectionStore(tmp_path)
    assert Engine(EncoderRegistry([]), reopened).collections() == []
    reopened.close()


def test_a_collection_whose_encoder_is_gone_still_answers_vector_queries(
    tmp_path: Path,
) -> None:
    store = CollectionStore(tmp_path)
    engine = Engine(EncoderRegistry([VectorEncoder("v", 4)]), store)
    engine.create_collection("c", "v")
    from embedspace_server.types import ItemQuery, UpsertPoint, VectorItem, VectorQuery

    engine.upsert("c", [UpsertPoint("a", None, np.ones(4, np.float32), {})])
    engine.snapshot()
    store.close()
    store = CollectionStore(tmp_path)
    engine = Engine(EncoderRegistry([]), store)
    assert engine.start_search("c", VectorQuery(np.ones(4, np.float32)), 1).result()[0].id == "a"
    from embedspace_server.errors import FailedPrecondition as Precondition

    with pytest.raises(Precondition, match="has not loaded"):
        engine.start_search("c", ItemQuery(VectorItem(np.ones(4, np.float32))), 1)
    store.close()


def test_search_parameters_per_collection_and_per_query(start_server: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with start_server(data) as server, Client(server.target) as es:
        ids, vectors = _fill(es, "ivf", "IVF4,Flat")
        exact = np.argsort(-(vectors / np.linalg.norm(vectors, axis=1)[:, None]) @ vectors[5])
        # nprobe=4 probes every list of IVF4: the answer is exact.
        hits = es.search("ivf", vectors[5], k=10, search_params={"nprobe": 4})
        assert [h.id for h in hits] == [ids[i] for i in exact[:10]]
        info = es.create_collection("hnsw", "vec8", index="HNSW8", search_params={"efSearch": 80})
        assert info.search_params == {"efSearch": 80}
        with pytest.raises(InvalidArgument, match="does not apply"):
            es.create_collection("flat", "vec8", search_params={"nprobe": 2})
        with pytest.raises(InvalidArgument, match="does not apply"):
            es.search("ivf", vectors[5], search_params={"efSearch": 10})
        with pytest.raises(InvalidArgument, match="whole number"):
            es.search("ivf", vectors[5], search_params={"nprobe": 0.5})
    with start_server(data) as server, Client(server.target) as es:
        assert es.describe("hnsw").search_params == {"efSearch": 80}
        collection = server.server.engine.collection("hnsw")
        import faiss

        assert faiss.downcast_index(collection._index).hnsw.efSearch == 80

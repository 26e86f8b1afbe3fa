"""Answers through the service against a plain numpy exact search and gensim, for the FAISS
collection, a collection split over two shards, and one of 3 shards of 2 replicas on a Ray
cluster."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from embedspace import Client, InvalidArgument, Ref, Sum

METRICS = {"vec8": "cosine", "vec8dot": "dot", "vec8l2": "l2"}


@pytest.fixture
def client(congruence_server) -> Iterator[Client]:
    """Each test runs against a FAISS collection, a two-shard one and a Ray one."""
    with Client(congruence_server.target, timeout=60) as c:
        yield c


def exact(stored: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """Scores, higher is closer, as the service defines them."""
    if metric == "cosine":
        s = stored / np.linalg.norm(stored, axis=1, keepdims=True)
        return s @ (q / np.linalg.norm(q))
    if metric == "dot":
        return stored @ q
    return -np.linalg.norm(stored - q, axis=1)


@pytest.fixture
def filled(client: Client, collection_name: str, request: pytest.FixtureRequest):
    encoder = request.param
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(500, 8)).astype(np.float32)
    ids = [f"p{i}" for i in range(500)]
    meta = [{"parity": i % 2, "tag": "abc"[i % 3], "big": i >= 250} for i in range(500)]
    client.create_collection(collection_name, encoder)
    client.upsert(collection_name, ids, vectors=vectors, metadata=meta)
    yield collection_name, METRICS[encoder], ids, vectors, meta
    client.drop_collection(collection_name)  # a Ray collection holds processes


@pytest.mark.parametrize("filled", list(METRICS), indirect=True)
def test_search_equals_numpy_exact_search(client: Client, filled) -> None:
    name, metric, ids, vectors, meta = filled
    rng = np.random.default_rng(11)
    for q in rng.normal(size=(20, 8)).astype(np.float32):
        scores = exact(vectors, q, metric)
        order = np.argsort(-scores, kind="stable")[:10]
        hits = client.search(name, q, k=10)
        assert [h.id for h in hits] == [ids[i] for i in order]
        np.testing.assert_allclose([h.score for h in hits], scores[order], rtol=1e-5, atol=1e-5)
        assert hits[0].metadata == meta[order[0]]


@pytest.mark.parametrize("filled", ["vec8"], indirect=True)
def test_filters_exclusions_and_min_score_equal_numpy(client: Client, filled) -> None:
    name, metric, ids, vectors, meta = filled
    q = vectors[3] + 0.1
    scores = exact(vectors, q, metric)
    keep = [i for i in range(500) if meta[i]["tag"] == "b" and meta[i]["big"] is True]
    excluded = {ids[i] for i in keep[:3]}
    keep = [i for i in keep if ids[i] not in excluded]
    order = sorted(keep, key=lambda i: -scores[i])[:7]
    hits = client.search(name, q, k=7, where={"tag": "b", "big": True}, exclude=sorted(excluded))
    assert [h.id for h in hits] == [ids[i] for i in order]
    # min_score cuts the list where scores drop below it.
    threshold = float(scores[order[3]]) - 1e-6
    cut = client.search(
        name, q, k=7, where={"tag": "b", "big": True}, exclude=sorted(excluded),
        min_score=threshold,
    )  # fmt: skip
    assert [h.id for h in cut] == [ids[i] for i in order[:4]]
    # A filter on True does not match the integer 1.
    assert client.search(name, q, k=5, where={"parity": True}) == []


@pytest.mark.parametrize("filled", ["vec8"], indirect=True)
def test_stored_id_and_weighted_sum_queries(client: Client, filled) -> None:
    name, _metric, _ids, vectors, _ = filled
    by_ref = client.search(name, Ref("p42"), k=5)
    assert by_ref[0].id == "p42"
    assert [h.id for h in by_ref] == [h.id for h in client.search(name, vectors[42], k=5)]
    stored = {s.id: s.vector for s in client.get(name, ["p1", "p2"])}
    combo = Sum([(Ref("p1"), 2.0), (Ref("p2"), -1.0)])
    expected = 2 * stored["p1"] - stored["p2"]
    assert [h.id for h in client.search(name, combo, k=5)] == [
        h.id for h in client.search(name, expected, k=5)
    ]


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_distance_equals_numpy(client: Client, metric: str) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    if metric == "cosine":
        expected = (
            1
            - (a / np.linalg.norm(a, axis=1)[:, None]) @ (b / np.linalg.norm(b, axis=1)[:, None]).T
        )
    elif metric == "dot":
        expected = -(a @ b.T)
    else:
        expected = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    matrix = client.distance(list(a), list(b), encoder="vec8", metric=metric, matrix=True)
    assert matrix.shape == (4, 3)
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-5)
    pairs = client.distance(list(a[:3]), list(b), encoder="vec8", metric=metric)
    np.testing.assert_allclose(pairs, np.diag(expected[:3]), rtol=1e-5, atol=1e-5)
    single = client.distance(a[0], b[0], encoder="vec8", metric=metric)
    assert single == pytest.approx(float(expected[0, 0]), abs=1e-5)


def test_distance_defaults_to_the_encoder_metric(client: Client) -> None:
    a, b = np.ones(8, np.float32), np.arange(8, dtype=np.float32)
    assert client.distance(a, b, encoder="vec8l2") == pytest.approx(
        float(np.linalg.norm(a - b)), 1e-5
    )
    assert client.distance(a, b, encoder="vec8dot") == pytest.approx(-float(a @ b), 1e-5)


def test_pairs_of_unequal_lists_are_refused(client: Client) -> None:
    with pytest.raises(InvalidArgument, match="as many queries"):
        client.distance([np.ones(8)] * 2, [np.ones(8)] * 3, encoder="vec8")


@pytest.mark.parametrize("filled", ["vec8dot"], indirect=True)
def test_arithmetic_on_a_non_cosine_collection_is_still_gensim_cosine(
    client: Client, filled
) -> None:
    from gensim.models import KeyedVectors

    name, _, ids, vectors, _ = filled
    kv = KeyedVectors(8)
    kv.add_vectors(ids, vectors)
    for method, fn in (("add", kv.most_similar), ("mul", kv.most_similar_cosmul)):
        ours = client.analogy(name, [Ref("p1"), Ref("p2")], [Ref("p3")], k=5, method=method)
        theirs = fn(positive=["p1", "p2"], negative=["p3"], topn=5)
        assert [n.id for n in ours] == [k for k, _ in theirs]
        np.testing.assert_allclose([n.score for n in ours], [s for _, s in theirs], atol=1e-5)


def test_compare_reports_each_collections_neighbours_and_their_overlap(
    client: Client, collection_name: str
) -> None:
    rng = np.random.default_rng(12)
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    ids = [f"p{i}" for i in range(200)]
    a, b, c = (f"{collection_name[:60]}-{x}" for x in "abc")
    client.create_collection(a, "vec8")
    client.create_collection(b, "vec8l2")
    client.create_collection(c, "vec8")
    client.upsert(a, ids, vectors=vectors)
    client.upsert(b, ids, vectors=vectors)
    client.upsert(c, ids, vectors=-vectors)  # another geometry over the same ids
    result = client.compare([a, b, c], Ref("p7"), k=10)
    assert result.collections == [a, b, c] and result.encoders == ["vec8", "vec8l2", "vec8"]
    for name in (a, b, c):
        expected = client.search(name, Ref("p7"), k=10, exclude=["p7"])
        assert result.neighbors[name] == expected
    sets = [{n.id for n in result.neighbors[x]} for x in (a, b, c)]
    for i in range(3):
        for j in range(3):
            want = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
            assert result.jaccard[i, j] == pytest.approx(want)
    assert result.jaccard[0, 0] == 1.0
    with pytest.raises(InvalidArgument, match="two or more"):
        client.compare([a], Ref("p7"))
    for name in (a, b, c):
        client.drop_collection(name)

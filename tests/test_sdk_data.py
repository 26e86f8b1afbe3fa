"""The SDK's data calls against a real server: collections and backups by their one name
each, get with unknown ids, scan pages and scan_all, count, search_batch, the space of
distance and arithmetic, and the field violations an error carries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from embedspace import (
    AsyncClient,
    Client,
    FieldViolation,
    InvalidArgument,
    Items,
    NotFound,
    Page,
    Ref,
)

N = 25


@pytest.fixture
def filled(client: Client, collection_name: str) -> tuple[str, list[str], np.ndarray]:
    """A vec8l2 collection of N items, with metadata `even` and `i`."""
    ids = [f"item-{i:02d}" for i in range(N)]
    vectors = np.random.default_rng(7).normal(size=(N, 8)).astype(np.float32)
    client.create_collection(collection=collection_name, encoder="vec8l2")
    client.upsert(collection_name, ids, vectors=vectors,
                  metadata=[{"even": i % 2 == 0, "i": i} for i in range(N)])  # fmt: skip
    return collection_name, ids, vectors


def test_collections_and_backups_by_their_names(client: Client, collection_name: str) -> None:
    created = client.create_collection(collection=collection_name, encoder="vec8")
    assert (created.name, created.encoder) == (collection_name, "vec8")
    client.upsert(collection_name, ["a", "b"], vectors=np.eye(2, 8))
    assert client.describe(collection=collection_name).count == 2
    before = datetime.now(UTC)
    backup = client.backup(collection=collection_name, backup=f"{collection_name}-b")
    assert (backup.backup, backup.collection, backup.encoder) == (
        f"{collection_name}-b", collection_name, "vec8")  # fmt: skip
    assert (backup.count, backup.shards) == (2, 1) and backup.bytes > 0
    assert backup.path.endswith(backup.backup)
    assert backup.created.tzinfo is not None and backup.created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= backup.created <= datetime.now(UTC)
    listed = {b.backup: b for b in client.backups()}
    assert listed[backup.backup] == backup
    automatic = client.backup(collection_name)
    assert automatic.backup.startswith(f"{collection_name}-")
    names = [b.backup for b in client.backups()]
    assert names.index(backup.backup) < names.index(automatic.backup)  # oldest first
    copy = f"{collection_name[:58]}-copy"
    restored = client.restore(backup=backup.backup, collection=copy)
    assert (restored.name, restored.count, restored.encoder) == (copy, 2, "vec8")
    client.drop_collection(collection=copy)
    with pytest.raises(NotFound):
        client.describe(copy)


def test_get_lists_unknown_ids_apart(client: Client, filled: Any) -> None:
    name, ids, vectors = filled
    got = client.get(name, [ids[3], "nope", ids[1], "nor-this"])
    assert isinstance(got, Items) and isinstance(got, list)
    assert [g.id for g in got] == [ids[3], ids[1]]  # the stored ones, in the order asked
    assert got.missing_ids == ["nope", "nor-this"]
    np.testing.assert_array_equal(np.stack([g.vector for g in got]), vectors[[3, 1]])
    assert got[0].metadata == {"even": False, "i": 3}
    everything = client.get(name, ids)
    assert len(everything) == N and everything.missing_ids == []
    nothing = client.get(name, ["x"])
    assert list(nothing) == [] and nothing.missing_ids == ["x"]


def test_scan_pages_through_in_id_order(client: Client, filled: Any) -> None:
    name, ids, vectors = filled
    pages: list[Page] = [client.scan(name, limit=10)]
    while pages[-1].next_page_token:
        assert len(pages) <= N // 10 + 1
        pages.append(client.scan(name, limit=10, page_token=pages[-1].next_page_token))
    assert [len(p.items) for p in pages][:3] == [10, 10, 5]
    assert {p.total for p in pages} == {N}
    scanned = [s for p in pages for s in p.items]
    assert [s.id for s in scanned] == sorted(ids)
    np.testing.assert_array_equal(np.stack([s.vector for s in scanned]), vectors)
    light = client.scan(name, limit=3, with_vectors=False)
    assert [s.id for s in light.items] == ids[:3]
    assert all(s.vector is None for s in light.items)
    assert [s.metadata["i"] for s in light.items] == [0, 1, 2]
    bare = client.scan(name, limit=3, with_vectors=False, with_metadata=False)
    assert [(s.vector, s.metadata) for s in bare.items] == [(None, {})] * 3


def test_scan_all_yields_every_item_once(client: Client, filled: Any) -> None:
    name, ids, vectors = filled
    items = list(client.scan_all(name, page_size=7))
    assert [s.id for s in items] == ids
    np.testing.assert_array_equal(np.stack([s.vector for s in items]), vectors)
    ids_only = list(client.scan_all(name, page_size=4, with_vectors=False))
    assert [s.id for s in ids_only] == ids and {s.vector is None for s in ids_only} == {True}
    assert list(client.scan_all(name)) != []  # the server's page size


def test_async_scan_all_and_get(shared_server: Any, filled: Any) -> None:
    name, ids, _ = filled

    async def main() -> tuple[list[str], list[Any], Items]:
        async with AsyncClient(shared_server.target) as es:
            scanned = [s.id async for s in es.scan_all(name, page_size=6)]
            light = [s.vector async for s in es.scan_all(name, with_vectors=False)]
            return scanned, light, await es.get(name, ["gone", ids[0]])

    scanned, light, got = asyncio.run(main())
    assert scanned == ids and light == [None] * N
    assert [g.id for g in got] == [ids[0]] and got.missing_ids == ["gone"]


def test_count_with_and_without_a_filter(client: Client, filled: Any) -> None:
    name, ids, _ = filled
    assert client.count(name) == N
    assert client.count(name, {"even": True}) == (N + 1) // 2
    assert client.count(name, where={"even": False, "i": 3}) == 1
    assert client.count(name, {"i": 1000}) == 0
    client.delete(name, ids[:5])
    assert client.count(name) == N - 5
    with pytest.raises(NotFound):
        client.count(f"{name}-none")


def test_search_batch_answers_like_one_search_per_query(
    client: Client, filled: Any, shared_server: Any
) -> None:
    name, ids, vectors = filled
    queries: list[Any] = [*np.random.default_rng(8).normal(size=(6, 8)).astype(np.float32),
                          Ref(ids[4]), Ref(ids[9])]  # fmt: skip
    options: dict[str, Any] = {"exclude": [ids[0]], "where": {"even": True}}
    batch = client.search_batch(name, queries, k=4, **options)
    assert len(batch) == len(queries)
    for query, answer in zip(queries, batch, strict=True):
        alone = client.search(name, query, k=4, **options)
        assert [h.id for h in answer] == [h.id for h in alone]
        np.testing.assert_allclose([h.score for h in answer], [h.score for h in alone], atol=1e-5)
        assert all(h.metadata["even"] for h in answer) and ids[0] not in {h.id for h in answer}
        assert answer.missing_shards == ()
    # Against numpy: minus the Euclidean distance, best first.
    d = np.linalg.norm(vectors[None, :, :] - np.asarray(queries[:6])[:, None, :], axis=2)
    unfiltered = client.search_batch(name, np.asarray(queries[:6]), k=3)
    assert [[h.id for h in a] for a in unfiltered] == [[ids[j] for j in np.argsort(row)[:3]]
                                                       for row in d]  # fmt: skip

    async def main() -> list[Any]:
        async with AsyncClient(shared_server.target) as es:
            return await es.search_batch(name, queries, k=4, **options)

    assert [[h.id for h in a] for a in asyncio.run(main())] == [[h.id for h in a] for a in batch]


def test_distance_and_arithmetic_in_a_collection_or_an_encoder(client: Client, filled: Any) -> None:
    name, ids, vectors = filled
    by_ref = client.distance(Ref(ids[0]), Ref(ids[1]), collection=name)
    by_vector = client.distance(vectors[0], vectors[1], encoder="vec8l2")
    assert by_ref == pytest.approx(by_vector, abs=1e-5)
    assert by_vector == pytest.approx(float(np.linalg.norm(vectors[0] - vectors[1])), abs=1e-5)
    with pytest.raises(InvalidArgument, match="is an encoder, not a collection"):
        client.distance(Ref(ids[0]), Ref(ids[1]), encoder="vec8l2")  # no stored ids there
    odd = [Ref(ids[0]), Ref(ids[1]), Ref(ids[2]), Ref(ids[3])]
    assert client.doesnt_match(odd, collection=name) in odd
    group = [np.ones(8), np.ones(8) * 1.1, np.ones(8) * 0.9, -np.ones(8)]
    assert client.doesnt_match(group, encoder="vec8l2") is group[3]
    mean = client.mean_vector([Ref(ids[0]), Ref(ids[1])], collection=name, pre_normalize=False)
    np.testing.assert_allclose(mean, vectors[:2].mean(axis=0), atol=1e-5)
    raw = client.mean_vector([vectors[0], vectors[1]], encoder="vec8l2")
    np.testing.assert_allclose(raw, vectors[:2].mean(axis=0), atol=1e-5)


def test_an_invalid_argument_names_the_field_to_blame(client: Client, filled: Any) -> None:
    name, _, _ = filled
    with pytest.raises(InvalidArgument) as info:
        client.upsert(name, ["short"], vectors=np.ones((1, 7)))
    error = info.value
    assert error.field_violations, "an INVALID_ARGUMENT carries its BadRequest"
    (violation,) = error.field_violations
    assert isinstance(violation, FieldViolation)
    assert violation.field == "points[0].vector"
    assert "dimension 8" in violation.description
    assert str(error) == error.message and "dimension 8" in str(error)  # unchanged
    with pytest.raises(InvalidArgument) as info:
        client.search(name, np.ones(8), k=0)
    assert [v.field for v in info.value.field_violations] == ["k"]
    with pytest.raises(NotFound) as missing:
        client.describe(f"{name}-none")
    assert missing.value.field_violations == []


def test_async_errors_carry_field_violations_too(shared_server: Any, filled: Any) -> None:
    name, _, _ = filled

    async def main() -> InvalidArgument:
        async with AsyncClient(shared_server.target) as es:
            try:
                await es.upsert(name, ["short"], vectors=[np.ones(7)])
            except InvalidArgument as e:
                return e
        raise AssertionError("a 7-d vector in an 8-d collection was accepted")

    error = asyncio.run(main())
    assert [v.field for v in error.field_violations] == ["points[0].vector"]


def test_responses_are_read_in_either_vector_form() -> None:
    """The SDK sends packed bytes; it reads a server's vectors as bytes or as values."""
    from embedspace import _convert as ops
    from embedspace import wire
    from embedspace.v1 import embedspace_pb2 as pb

    v = np.arange(4, dtype=np.float32)
    for form in (wire.pack(v), wire.pack(v, values=True), pb.Vector(values=list(v))):
        stored = pb.StoredItem(id="a", vector=form)
        got = ops.get("c", ["a"]).parse(pb.GetResponse(items=[stored]))
        np.testing.assert_array_equal(got[0].vector, v)
        page = ops.scan("c", 0, "", True, True).parse(pb.ScanResponse(items=[stored], total=1))
        np.testing.assert_array_equal(page.items[0].vector, v)
        mean = ops.mean_vector([Ref("a")], collection="c").parse(pb.MeanVectorResponse(vector=form))
        np.testing.assert_array_equal(mean, v)
    rows = ops.embed("e", ["x", "y"]).parse(
        pb.EmbedResponse(vectors=[wire.pack(v, values=True), wire.pack(v + 1, values=True)])
    )
    np.testing.assert_array_equal(rows, np.stack([v, v + 1]))

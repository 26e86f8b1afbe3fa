"""The data RPCs over the wire, with the generated stubs: Get listing missing ids apart, Scan
paging by token, Count, SearchBatch, Backup and ListBackups, and vectors given as packed
bytes or as lists of floats, in requests and in responses."""

from __future__ import annotations

import datetime
from typing import Any

import grpc
import numpy as np
import pytest
from embedspace.v1 import embedspace_pb2 as pb

from .rpc import TIMEOUT, create, point, rows, upsert, values, vec, violation

C = grpc.StatusCode


def _fill(stub: Any, name: str, n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)
    create(stub, name)
    meta = [{"parity": i % 2, "tag": "x" if i % 3 == 0 else "y"} for i in range(n)]
    upsert(stub, name, [f"p{i:03d}" for i in range(n)], vectors, meta)
    return vectors


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


# ---------------------------------------------------------------- Get


def test_get_lists_the_ids_it_does_not_hold_apart(es_stub: Any, collection_name: str) -> None:
    vectors = _fill(es_stub, collection_name, 5)
    got = es_stub.Get(
        pb.GetRequest(collection=collection_name, ids=["p003", "ghost", "p000", "zz"]),
        timeout=TIMEOUT,
    )
    assert [s.id for s in got.items] == ["p003", "p000"]
    assert list(got.missing_ids) == ["ghost", "zz"]
    np.testing.assert_allclose(rows([s.vector for s in got.items]), _unit(vectors[[3, 0]]),
                               atol=1e-6)  # fmt: skip
    assert got.items[0].metadata["parity"].int_value == 1
    none = es_stub.Get(pb.GetRequest(collection=collection_name, ids=["a", "b"]), timeout=TIMEOUT)
    assert (list(none.items), list(none.missing_ids)) == ([], ["a", "b"])
    # Delete still ignores unknown ids, and a query naming one is still NOT_FOUND.
    deleted = es_stub.Delete(
        pb.DeleteRequest(collection=collection_name, ids=["p001", "ghost"]), timeout=TIMEOUT
    )
    assert deleted.deleted == 1
    with pytest.raises(grpc.RpcError) as info:
        es_stub.Search(pb.SearchRequest(collection=collection_name, query=pb.Query(id="ghost"),
                                        k=3), timeout=TIMEOUT)  # fmt: skip
    assert info.value.code() == C.NOT_FOUND and "ghost" in info.value.details()


# ---------------------------------------------------------------- vectors as values


def test_vectors_as_values_in_requests_and_as_asked_in_responses(
    es_stub: Any, collection_name: str
) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    create(es_stub, collection_name)
    points = [point(f"v{i}", v, as_values=i % 2 == 0) for i, v in enumerate(vectors)]
    es_stub.Upsert(pb.UpsertRequest(collection=collection_name, points=points), timeout=TIMEOUT)
    # dim may be left 0 with values.
    bare = pb.UpsertPoint(id="bare", vector=pb.Vector(values=vectors[0].tolist()))
    es_stub.Upsert(pb.UpsertRequest(collection=collection_name, points=[bare]), timeout=TIMEOUT)

    def get(form: int) -> Any:
        request = pb.GetRequest(collection=collection_name, ids=["v0", "v1", "bare"],
                                vector_form=form)  # fmt: skip
        return es_stub.Get(request, timeout=TIMEOUT)

    packed, listed = get(pb.VECTOR_FORM_UNSPECIFIED), get(pb.VECTOR_FORM_VALUES)
    assert all(s.vector.data and not s.vector.values for s in packed.items)
    assert all(s.vector.values and not s.vector.data and s.vector.dim == 8 for s in listed.items)
    expected = _unit(vectors[[0, 1, 0]])
    np.testing.assert_allclose(rows([s.vector for s in packed.items]), expected, atol=1e-6)
    np.testing.assert_allclose(rows([s.vector for s in listed.items]), expected, atol=1e-6)

    # Embed answers in the form its items came in, unless told.
    def embed(as_values: bool, form: int = pb.VECTOR_FORM_UNSPECIFIED) -> Any:
        items = [pb.Item(vector=vec(v, as_values=as_values)) for v in vectors[:2]]
        return es_stub.Embed(pb.EmbedRequest(encoder="vec8", items=items, vector_form=form),
                             timeout=TIMEOUT).vectors  # fmt: skip

    assert all(v.values and not v.data for v in embed(True))
    assert all(v.data and not v.values for v in embed(False))
    assert all(v.values for v in embed(False, pb.VECTOR_FORM_VALUES))
    assert all(v.data for v in embed(True, pb.VECTOR_FORM_PACKED))
    np.testing.assert_allclose(rows(embed(True)), vectors[:2], atol=1e-6)

    # A query given as values searches as the same query packed.
    def search(as_values: bool) -> list[tuple[str, float]]:
        q = pb.Query(vector=vec(vectors[3], as_values=as_values))
        hits = es_stub.Search(pb.SearchRequest(collection=collection_name, query=q, k=4),
                              timeout=TIMEOUT).neighbors  # fmt: skip
        return [(n.id, round(n.score, 5)) for n in hits]

    assert search(True) == search(False) and search(True)[0][0] == "v3"

    # MeanVector and MostSimilar: a values query anywhere in the request means values back.
    mean = es_stub.MeanVector(pb.MeanVectorRequest(
        collection=collection_name, items=[pb.Query(vector=vec(vectors[0], as_values=True)),
                                           pb.Query(id="v1")]), timeout=TIMEOUT)  # fmt: skip
    assert mean.vector.values and not mean.vector.data
    np.testing.assert_allclose(rows([mean.vector])[0],
                               (vectors[0] + _unit(vectors[1])) / 2, atol=1e-6)  # fmt: skip
    nested = pb.Query(sum=pb.WeightedSum(terms=[
        pb.WeightedQuery(query=pb.Query(vector=vec(vectors[2], as_values=True)))]))  # fmt: skip
    analogy = es_stub.MostSimilar(pb.MostSimilarRequest(
        collection=collection_name, positive=[pb.WeightedQuery(query=nested)], k=2),
        timeout=TIMEOUT)  # fmt: skip
    assert analogy.vector.values and analogy.neighbors[0].id == "v2"
    packed_analogy = es_stub.MostSimilar(pb.MostSimilarRequest(
        collection=collection_name, positive=[pb.WeightedQuery(query=pb.Query(id="v2"))], k=2),
        timeout=TIMEOUT)  # fmt: skip
    assert packed_analogy.vector.data and not packed_analogy.vector.values

    # Both forms at once, or values that disagree with dim, are refused.
    both = pb.Vector(dim=8, data=vectors[0].tobytes(), values=vectors[0].tolist())
    short = pb.Vector(dim=8, values=[1.0] * 7)
    for bad, words in ((both, "both data and values"), (short, "dimension 8 but carries 7")):
        with pytest.raises(grpc.RpcError) as info:
            request = pb.SearchRequest(collection=collection_name, k=3, query=pb.Query(vector=bad))
            es_stub.Search(request, timeout=TIMEOUT)
        assert words in info.value.details()
        assert violation(info.value)[0] == "query.vector"


# ---------------------------------------------------------------- Scan


def test_scan_pages_by_token_in_id_order(es_stub: Any, collection_name: str) -> None:
    n = 25
    vectors = _fill(es_stub, collection_name, n)

    def scan(token: str = "", limit: int = 10, **fields: Any) -> Any:
        request = pb.ScanRequest(collection=collection_name, limit=limit, page_token=token,
                                 **fields)  # fmt: skip
        return es_stub.Scan(request, timeout=TIMEOUT)

    pages, token = [], ""
    while True:
        page = scan(token)
        pages.append(page)
        assert page.total == n
        token = page.next_page_token
        if not token:
            break
    assert [len(p.items) for p in pages] == [10, 10, 5]
    ids = [s.id for p in pages for s in p.items]
    assert ids == [f"p{i:03d}" for i in range(n)]
    np.testing.assert_allclose(rows([s.vector for p in pages for s in p.items]), _unit(vectors),
                               atol=1e-6)  # fmt: skip
    assert pages[0].items[4].metadata["parity"].int_value == 0

    # A page that ends the collection has no token: no empty page after it.
    exact = scan(pages[0].next_page_token, limit=15)
    assert len(exact.items) == 15 and exact.next_page_token == ""
    # 0 means max_batch, which is more than the collection holds.
    assert len(scan(limit=0).items) == n and scan(limit=0).next_page_token == ""

    # Ids only, or ids and metadata, cheaply; the vectors in the form asked.
    bare = scan(with_vectors=False, with_metadata=False)
    assert all(not s.HasField("vector") and not s.metadata for s in bare.items)
    meta_only = scan(with_vectors=False)
    assert all(not s.HasField("vector") and s.metadata for s in meta_only.items)
    listed = scan(vector_form=pb.VECTOR_FORM_VALUES)
    assert all(len(s.vector.values) == 8 for s in listed.items)

    # Writes between pages: an id before the cursor is not seen, one after it is.
    first = scan()
    upsert(es_stub, collection_name, ["p000a", "p999"], vectors[:2])
    rest, token = [], first.next_page_token
    while token:
        page = scan(token)
        rest += [s.id for s in page.items]
        token = page.next_page_token
    assert "p000a" not in rest and rest[-1] == "p999" and len(rest) == n - 10 + 1


@pytest.mark.parametrize(
    "token",
    ["!!", "AAAA", "AQ", "Af8", "not a token", "AXAw=x", "é"],
)
def test_a_page_token_no_scan_gave_is_invalid_argument(
    es_stub: Any, collection_name: str, token: str
) -> None:
    _fill(es_stub, collection_name, 3)
    with pytest.raises(grpc.RpcError) as info:
        es_stub.Scan(pb.ScanRequest(collection=collection_name, page_token=token),
                     timeout=TIMEOUT)  # fmt: skip
    field, description = violation(info.value)
    assert field == "page_token" and "not a next_page_token a Scan gave" in description


# ---------------------------------------------------------------- Count


def test_count_with_and_without_a_filter(es_stub: Any, collection_name: str) -> None:
    _fill(es_stub, collection_name, 12)

    def count(**where: Any) -> int:
        request = pb.CountRequest(collection=collection_name, where=values(where))
        return int(es_stub.Count(request, timeout=TIMEOUT).count)

    assert count() == 12
    assert count(parity=1) == 6
    assert count(parity=1, tag="x") == 2  # p003, p009
    assert count(tag="nope") == 0
    es_stub.Delete(pb.DeleteRequest(collection=collection_name, ids=["p003"]), timeout=TIMEOUT)
    assert count(parity=1, tag="x") == 1 and count() == 11
    with pytest.raises(grpc.RpcError) as info:
        es_stub.Count(pb.CountRequest(collection="nope"), timeout=TIMEOUT)
    assert info.value.code() == C.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        es_stub.Count(pb.CountRequest(collection=collection_name, where={"a": pb.Value()}),
                      timeout=TIMEOUT)  # fmt: skip
    assert violation(info.value)[0] == "where.a"


# ---------------------------------------------------------------- SearchBatch


def test_search_batch_answers_as_one_search_per_query_in_one_call(
    es_stub: Any, shared_server: Any, collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors = _fill(es_stub, collection_name, 200, seed=3)
    rng = np.random.default_rng(4)
    queries = [
        pb.Query(vector=vec(rng.normal(size=8))),
        pb.Query(id="p007"),
        pb.Query(item=pb.Item(vector=vec(rng.normal(size=8), as_values=True))),
        pb.Query(sum=pb.WeightedSum(terms=[
            pb.WeightedQuery(query=pb.Query(id="p001")),
            pb.WeightedQuery(query=pb.Query(item=pb.Item(vector=vec(vectors[9]))), weight=-0.5),
        ])),
        pb.Query(item=pb.Item(vector=vec(rng.normal(size=8)))),
    ]  # fmt: skip
    engine = shared_server.server.engine
    collection = engine.collection(collection_name)
    encoder = engine.registry.get("vec8")
    calls: list[tuple[str, int]] = []

    def counting(name: str, fn: Any) -> Any:
        def wrapped(first: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append((name, len(first)))
            return fn(first, *args, **kwargs)

        return wrapped

    for params in ({"k": 5}, {"k": 7, "where": values({"parity": 0}), "exclude": ["p007"]},
                   {"k": 3, "min_score": 0.2}):  # fmt: skip
        calls.clear()
        monkeypatch.setattr(collection, "search", counting("search", collection.search))
        monkeypatch.setattr(encoder, "encode", counting("encode", encoder.encode))
        batch = es_stub.SearchBatch(
            pb.SearchBatchRequest(collection=collection_name, queries=queries, **params),
            timeout=TIMEOUT,
        )
        # One FAISS call for the five queries, and their three items embedded together.
        assert calls == [("encode", 3), ("search", 5)], calls
        monkeypatch.undo()
        assert len(batch.results) == len(queries)
        for q, answer in zip(queries, batch.results, strict=True):
            alone = es_stub.Search(
                pb.SearchRequest(collection=collection_name, query=q, **params), timeout=TIMEOUT
            )
            # Scores as alone, but for float rounding: BLAS sums a batch in another order.
            assert [n.id for n in answer.neighbors] == [n.id for n in alone.neighbors]
            assert [n.score for n in answer.neighbors] == pytest.approx(
                [n.score for n in alone.neighbors], abs=1e-5
            )
            assert list(answer.missing_shards) == [] and answer.neighbors
            assert all(dict(n.metadata) for n in answer.neighbors)


def test_search_batch_checks_its_queries_and_parameters(
    es_stub: Any, shared_server: Any, collection_name: str
) -> None:
    _fill(es_stub, collection_name, 10)
    good = pb.Query(vector=vec(np.ones(8)))
    max_batch = shared_server.server.settings.max_batch

    def field_of(**fields: Any) -> str:
        with pytest.raises(grpc.RpcError) as info:
            es_stub.SearchBatch(pb.SearchBatchRequest(collection=collection_name, **fields),
                                timeout=TIMEOUT)  # fmt: skip
        return violation(info.value)[0]

    assert field_of(queries=[], k=3) == "queries"
    assert field_of(queries=[good] * (max_batch + 1), k=3) == "queries"
    assert field_of(queries=[good], k=0) == "k"
    assert field_of(queries=[good], k=3, min_score=float("nan")) == "min_score"
    assert field_of(queries=[good], k=3, search_params={"nprobe": 4}) == "search_params.nprobe"
    assert field_of(queries=[good], k=3, where={"a": pb.Value()}) == "where.a"
    bad = pb.Query(vector=vec(np.ones(7)))
    assert field_of(queries=[good, good, bad], k=3) == "queries[2].vector"
    with pytest.raises(grpc.RpcError) as info:
        es_stub.SearchBatch(pb.SearchBatchRequest(
            collection=collection_name, queries=[good, pb.Query(id="ghost")], k=3),
            timeout=TIMEOUT)  # fmt: skip
    assert info.value.code() == C.NOT_FOUND and "ghost" in info.value.details()


# ---------------------------------------------------------------- backups


def test_backup_answers_its_info_and_list_backups_lists_it(
    es_stub: Any, collection_name: str
) -> None:
    _fill(es_stub, collection_name, 7)
    name = f"{collection_name}-b"[:120]
    before = datetime.datetime.now(datetime.UTC)
    info = es_stub.Backup(pb.BackupRequest(collection=collection_name, backup=name),
                          timeout=TIMEOUT)  # fmt: skip
    assert (info.backup, info.count, info.collection, info.encoder, info.shards) == (
        name, 7, collection_name, "vec8", 1)  # fmt: skip
    assert info.bytes > 0 and info.path.endswith(name)
    created = info.created.ToDatetime(tzinfo=datetime.UTC)
    assert (
        before - datetime.timedelta(seconds=5) <= created <= before + datetime.timedelta(minutes=1)
    )
    listed = es_stub.ListBackups(pb.ListBackupsRequest(), timeout=TIMEOUT).backups
    assert [b for b in listed if b.backup == name] == [info]
    default = es_stub.Backup(pb.BackupRequest(collection=collection_name), timeout=TIMEOUT)
    assert default.backup.startswith(f"{collection_name}-") and default.count == 7
    restored = es_stub.Restore(
        pb.RestoreRequest(backup=name, collection=f"{collection_name}-r"[:64]), timeout=TIMEOUT
    )
    assert restored.count == 7 and restored.encoder == "vec8"
    with pytest.raises(grpc.RpcError) as err:
        es_stub.Backup(pb.BackupRequest(collection=collection_name, backup="../x"),
                       timeout=TIMEOUT)  # fmt: skip
    assert violation(err.value)[0] == "backup"
    with pytest.raises(grpc.RpcError) as err:
        es_stub.Restore(pb.RestoreRequest(backup="no-such-backup", collection="fresh"),
                        timeout=TIMEOUT)  # fmt: skip
    assert err.value.code() == C.NOT_FOUND


# ---------------------------------------------------------------- spaces


def test_a_space_is_named_as_a_collection_or_as_an_encoder(start_server: Any) -> None:
    """A collection may share its name with its own encoder; the request says which it
    means, and nothing is guessed."""
    from embedspace.v1 import embedspace_pb2_grpc as pb_grpc

    with start_server() as running, grpc.insecure_channel(running.target) as channel:
        stub = pb_grpc.EmbedspaceStub(channel)
        create(stub, "vec8", metric=pb.METRIC_L2)
        x, y = np.eye(8, dtype=np.float32)[:2] * 3
        upsert(stub, "vec8", ["x"], [x])
        a, b = [pb.Query(vector=vec(x))], [pb.Query(vector=vec(y))]
        as_collection = stub.Distance(pb.DistanceRequest(collection="vec8", a=a, b=b))
        as_encoder = stub.Distance(pb.DistanceRequest(encoder="vec8", a=a, b=b))
        assert as_collection.metric == pb.METRIC_L2
        assert as_collection.distances[0] == pytest.approx(np.sqrt(18), rel=1e-6)
        assert as_encoder.metric == pb.METRIC_COSINE
        assert as_encoder.distances[0] == pytest.approx(1.0)
        stored = [pb.Query(id="x")]
        assert stub.Distance(pb.DistanceRequest(collection="vec8", a=stored, b=a)).distances == [
            0.0
        ]
        with pytest.raises(grpc.RpcError) as info:
            stub.Distance(pb.DistanceRequest(encoder="vec8", a=stored, b=a))
        assert "is an encoder" in info.value.details()
        assert violation(info.value)[0] == "a[0].id"
        requests = (pb.DistanceRequest(a=a, b=b), pb.DoesntMatchRequest(items=a),
                    pb.MeanVectorRequest(items=a))  # fmt: skip
        for request in requests:
            method = type(request).__name__.removesuffix("Request")
            with pytest.raises(grpc.RpcError) as info:
                getattr(stub, method)(request)
            assert violation(info.value)[0] == "space", method
        with pytest.raises(grpc.RpcError) as info:
            stub.MeanVector(pb.MeanVectorRequest(encoder="nope", items=a))
        assert info.value.code() == C.NOT_FOUND and "no encoder named 'nope'" in (
            info.value.details()
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.DoesntMatch(pb.DoesntMatchRequest(collection="vec8l2", items=a))
        assert info.value.code() == C.NOT_FOUND and "no collection named" in (info.value.details())

"""Every bad input gets its status and a message that says what was wrong; afterwards the
server is SERVING and its data is unchanged."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from embedspace import Client, Ref, Sum
from embedspace.v1 import embedspace_pb2 as pb
from embedspace.v1 import embedspace_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .rpc import create, upsert, violation

C = grpc.StatusCode
V = pb.Vector


def vec(values: Any) -> pb.Vector:
    a = np.asarray(values, np.float32)
    return pb.Vector(dim=a.shape[0], data=a.tobytes())


def q_vec(values: Any) -> pb.Query:
    return pb.Query(vector=vec(values))


def q_text(text: str) -> pb.Query:
    return pb.Query(item=pb.Item(text=text))


def nested(depth: int) -> pb.Query:
    q = q_vec(np.ones(8))
    for _ in range(depth):
        q = pb.Query(sum=pb.WeightedSum(terms=[pb.WeightedQuery(query=q)]))
    return q


# (name, method, request, expected code, words the message must contain)
CASES: list[tuple[str, str, Any, grpc.StatusCode, str]] = [
    ("empty batch", "Embed", pb.EmbedRequest(encoder="minilm"), C.INVALID_ARGUMENT, "no items"),
    ("empty text", "Embed", pb.EmbedRequest(encoder="minilm", items=[pb.Item(text=" ")]),
     C.INVALID_ARGUMENT, "empty text"),
    ("item of wrong kind", "Embed",
     pb.EmbedRequest(encoder="minilm", items=[pb.Item(vector=vec([1, 2, 3]))]),
     C.INVALID_ARGUMENT, "expects text items"),
    ("item with no content", "Embed", pb.EmbedRequest(encoder="minilm", items=[pb.Item()]),
     C.INVALID_ARGUMENT, "no content"),
    ("unknown encoder", "Embed", pb.EmbedRequest(encoder="nope", items=[pb.Item(text="x")]),
     C.NOT_FOUND, "no encoder named 'nope'"),
    ("wrong dimension", "Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="x", vector=vec(np.ones(7)))]), C.INVALID_ARGUMENT, "dimension 8"),
    ("NaN in a vector", "Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="x", vector=vec([np.nan] * 8))]), C.INVALID_ARGUMENT, "NaN"),
    ("inf in a vector", "Search", pb.SearchRequest(collection="{c}", k=3,
     query=q_vec([np.inf] + [0] * 7)), C.INVALID_ARGUMENT, "infinite"),
    ("bytes that do not match dim", "Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="x", vector=pb.Vector(dim=8, data=b"\0" * 31))]),
     C.INVALID_ARGUMENT, "32"),
    ("empty id", "Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="", vector=vec(np.ones(8)))]), C.INVALID_ARGUMENT, "empty id"),
    ("duplicate ids", "Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="d", vector=vec(np.ones(8))),
        pb.UpsertPoint(id="d", vector=vec(np.ones(8)))]), C.INVALID_ARGUMENT, "twice"),
    ("point without a source", "Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="x")]), C.INVALID_ARGUMENT, "exactly one"),
    ("metadata value of no type", "Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="x", vector=vec(np.ones(8)), metadata={"a": pb.Value()})]),
     C.INVALID_ARGUMENT, "metadata"),
    ("empty upsert", "Upsert", pb.UpsertRequest(collection="{c}"), C.INVALID_ARGUMENT,
     "no points"),
    ("k = 0", "Search", pb.SearchRequest(collection="{c}", query=q_vec(np.ones(8)), k=0),
     C.INVALID_ARGUMENT, "k must be between 1 and"),
    ("k above max", "Search", pb.SearchRequest(collection="{c}", query=q_vec(np.ones(8)),
     k=10**6), C.INVALID_ARGUMENT, "k must be between 1 and 1000"),
    ("empty query", "Search", pb.SearchRequest(collection="{c}", query=pb.Query(), k=3),
     C.INVALID_ARGUMENT, "query is empty"),
    ("unknown collection", "Search", pb.SearchRequest(collection="nope", k=3,
     query=q_vec(np.ones(8))), C.NOT_FOUND, "no collection named 'nope'"),
    ("unknown stored id", "Search", pb.SearchRequest(collection="{c}", k=3,
     query=pb.Query(id="ghost")), C.NOT_FOUND, "ghost"),
    ("NaN min_score", "Search", pb.SearchRequest(collection="{c}", k=3,
     query=q_vec(np.ones(8)), min_score=float("nan")), C.INVALID_ARGUMENT, "min_score"),
    ("filter value of no type", "Search", pb.SearchRequest(collection="{c}", k=3,
     query=q_vec(np.ones(8)), where={"a": pb.Value()}), C.INVALID_ARGUMENT, "where"),
    ("deeply nested query", "Search", pb.SearchRequest(collection="{c}", k=3,
     query=nested(20)), C.INVALID_ARGUMENT, "nests deeper"),
    ("empty weighted sum", "Search", pb.SearchRequest(collection="{c}", k=3,
     query=pb.Query(sum=pb.WeightedSum())), C.INVALID_ARGUMENT, "at least one term"),
    ("stored id in an encoder space", "Distance", pb.DistanceRequest(encoder="vec8",
     a=[pb.Query(id="p0")], b=[q_vec(np.ones(8))]), C.INVALID_ARGUMENT, "is an encoder"),
    ("no space", "Distance", pb.DistanceRequest(a=[q_vec(np.ones(8))], b=[q_vec(np.ones(8))]),
     C.INVALID_ARGUMENT, "set collection or encoder"),
    ("unknown encoder space", "Distance", pb.DistanceRequest(encoder="nope",
     a=[q_vec(np.ones(8))], b=[q_vec(np.ones(8))]), C.NOT_FOUND, "no encoder named 'nope'"),
    ("unknown collection space", "DoesntMatch", pb.DoesntMatchRequest(collection="nope",
     items=[q_vec(np.ones(8))]), C.NOT_FOUND, "no collection named 'nope'"),
    ("unknown metric", "Distance", pb.DistanceRequest(encoder="vec8", a=[q_vec(np.ones(8))],
     b=[q_vec(np.ones(8))], metric=99), C.INVALID_ARGUMENT, "unknown metric"),
    ("both data and values", "Search", pb.SearchRequest(collection="{c}", k=3, query=pb.Query(
     vector=pb.Vector(dim=8, data=b"\0" * 32, values=[1] * 8))), C.INVALID_ARGUMENT,
     "both data and values"),
    ("values that disagree with dim", "Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="x", vector=pb.Vector(dim=8, values=[1] * 9))]),
     C.INVALID_ARGUMENT, "carries 9 values"),
    ("unknown vector form", "Embed", pb.EmbedRequest(encoder="vec8", vector_form=9,
     items=[pb.Item(vector=vec(np.ones(8)))]), C.INVALID_ARGUMENT, "unknown form 9"),
    ("bad page token", "Scan", pb.ScanRequest(collection="{c}", page_token="AAAA"),
     C.INVALID_ARGUMENT, "page_token"),
    ("count by a filter value of no type", "Count", pb.CountRequest(collection="{c}",
     where={"a": pb.Value()}), C.INVALID_ARGUMENT, "where"),
    ("search batch of nothing", "SearchBatch", pb.SearchBatchRequest(collection="{c}", k=3),
     C.INVALID_ARGUMENT, "no queries given"),
    ("search batch of an unknown stored id", "SearchBatch", pb.SearchBatchRequest(
     collection="{c}", k=3, queries=[pb.Query(id="ghost")]), C.NOT_FOUND, "ghost"),
    ("collection exists", "CreateCollection", pb.CreateCollectionRequest(collection="{c}",
     encoder="vec8"), C.ALREADY_EXISTS, "already exists"),
    ("bad collection name", "CreateCollection", pb.CreateCollectionRequest(collection="../etc",
     encoder="vec8"), C.INVALID_ARGUMENT, "name"),
    ("collection named after another encoder", "CreateCollection",
     pb.CreateCollectionRequest(collection="vec8l2", encoder="vec8"), C.INVALID_ARGUMENT,
     "encoder"),
    ("bad index factory", "CreateCollection", pb.CreateCollectionRequest(
     collection="fresh-bad", encoder="vec8", index="NoSuchIndex"), C.INVALID_ARGUMENT,
     "not supported"),
    ("index that crashes FAISS", "CreateCollection", pb.CreateCollectionRequest(
     collection="fresh-bad", encoder="vec8", index="HNSW0"), C.INVALID_ARGUMENT,
     "4 <= M <= 128"),
    ("NSG index", "CreateCollection", pb.CreateCollectionRequest(collection="fresh-bad",
     encoder="vec8", index="NSG32"), C.INVALID_ARGUMENT, "not supported"),
    ("PQ that does not divide", "CreateCollection", pb.CreateCollectionRequest(
     collection="fresh-bad", encoder="vec8", index="PQ3"), C.INVALID_ARGUMENT, "divides"),
    ("index with IDMap", "CreateCollection", pb.CreateCollectionRequest(
     collection="fresh-bad", encoder="vec8", index="IDMap,Flat"), C.INVALID_ARGUMENT, "IDMap"),
    ("unknown encoder for collection", "CreateCollection",
     pb.CreateCollectionRequest(collection="fresh-bad", encoder="nope"), C.NOT_FOUND, "nope"),
    ("untrainable IVF first batch", "Upsert", pb.UpsertRequest(collection="{c}-ivf", points=[
        pb.UpsertPoint(id="x", vector=vec(np.ones(8)))]), C.FAILED_PRECONDITION, "training"),
    ("analogy without terms", "MostSimilar", pb.MostSimilarRequest(collection="{c}", k=3),
     C.INVALID_ARGUMENT, "positive"),
    ("cosmul with weights", "MostSimilar", pb.MostSimilarRequest(collection="{c}", k=3,
     method=pb.ANALOGY_METHOD_MUL, positive=[pb.WeightedQuery(query=pb.Query(id="p0"),
     weight=2)]), C.INVALID_ARGUMENT, "no weights"),
    ("mean with wrong weights", "MeanVector", pb.MeanVectorRequest(collection="{c}",
     items=[pb.Query(id="p0")], weights=[1, 2]), C.INVALID_ARGUMENT, "one weight per item"),
    ("doesnt_match of nothing", "DoesntMatch", pb.DoesntMatchRequest(collection="{c}"),
     C.INVALID_ARGUMENT, "at least one"),
    ("get of no ids", "Get", pb.GetRequest(collection="{c}"), C.INVALID_ARGUMENT,
     "no ids given"),
    ("get from an unknown collection", "Get", pb.GetRequest(collection="nope", ids=["p0"]),
     C.NOT_FOUND, "no collection named 'nope'"),
    ("drop unknown", "DropCollection", pb.DropCollectionRequest(collection="nope"),
     C.NOT_FOUND, "nope"),
    ("backup of an unknown collection", "Backup", pb.BackupRequest(collection="nope"),
     C.NOT_FOUND, "nope"),
    ("restore of an unknown backup", "Restore", pb.RestoreRequest(backup="nope",
     collection="fresh-bad"), C.NOT_FOUND, "no backup named 'nope'"),
]  # fmt: skip


def _fill(request: Any, name: str) -> Any:
    """The request with '{c}' in its collection replaced by the test's name."""
    copy = type(request)()
    copy.CopyFrom(request)
    if "collection" in copy.DESCRIPTOR.fields_by_name and "{c}" in copy.collection:
        copy.collection = copy.collection.replace("{c}", name)
    return copy


def _fingerprint(stub: Any, name: str) -> Any:
    listed = stub.ListCollections(pb.ListCollectionsRequest(), timeout=30).collections
    collections = sorted((c.name, c.count, c.index, c.metric) for c in listed)
    got = stub.Get(pb.GetRequest(collection=name, ids=["p0", "p5"]), timeout=30)
    return collections, got.SerializeToString(deterministic=True)


@pytest.fixture
def stub(shared_server: Any) -> Any:
    with grpc.insecure_channel(shared_server.target) as channel:
        yield pb_grpc.EmbedspaceStub(channel), health_pb2_grpc.HealthStub(channel)


def test_each_bad_input_gets_its_status(stub: Any, collection_name: str) -> None:
    """...and every INVALID_ARGUMENT carries a BadRequest that repeats its message."""
    es_stub, health = stub
    name = collection_name
    rng = np.random.default_rng(0)
    create(es_stub, name)
    upsert(es_stub, name, [f"p{i}" for i in range(20)], rng.normal(size=(20, 8)))
    create(es_stub, f"{name}-ivf", index="IVF16,Flat")
    before = _fingerprint(es_stub, name)
    seen = set()
    for label, method, request, code, words in CASES:
        with pytest.raises(grpc.RpcError) as info:
            getattr(es_stub, method)(_fill(request, name), timeout=30)
        err: Any = info.value
        assert err.code() == code, f"{label}: {err.code()} {err.details()}"
        assert words in err.details(), f"{label}: {err.details()!r} lacks {words!r}"
        assert "Traceback" not in err.details()
        if code == C.INVALID_ARGUMENT:
            violation(err)
        seen.add(code)
    assert seen >= {C.INVALID_ARGUMENT, C.NOT_FOUND, C.ALREADY_EXISTS, C.FAILED_PRECONDITION}
    reply = health.Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert _fingerprint(es_stub, name) == before


def test_the_sdk_raises_its_own_exceptions(client: Client, collection_name: str) -> None:
    from embedspace import AlreadyExists, InvalidArgument, NotFound

    client.create_collection(collection_name, "vec8")
    with pytest.raises(AlreadyExists):
        client.create_collection(collection_name, "vec8")
    with pytest.raises(NotFound, match="no id 'zz'"):
        client.search(collection_name, Ref("zz"))
    with pytest.raises(InvalidArgument, match="expects text items"):
        client.embed("minilm", [np.zeros(3, np.float32)])
    with pytest.raises(InvalidArgument, match="k must be"):
        client.search(collection_name, np.ones(8), k=0)
    with pytest.raises(InvalidArgument, match="weights must be finite"):
        client.search(collection_name, Sum([(np.ones(8), float("inf"))]))


def test_an_unexpected_error_is_internal_without_a_traceback(
    es_stub: Any, shared_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grpc_status import rpc_status

    engine = shared_server.server.engine

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr(engine, "collections", boom)
    with pytest.raises(grpc.RpcError) as info:
        es_stub.ListCollections(pb.ListCollectionsRequest(), timeout=30)
    err: Any = info.value
    assert err.code() == C.INTERNAL and rpc_status.from_call(err) is None
    assert "secret" not in err.details() and "Traceback" not in err.details()
    monkeypatch.undo()
    es_stub.ListCollections(pb.ListCollectionsRequest(), timeout=30)  # answers again


def test_bytes_that_are_not_protobuf_are_invalid_argument(shared_server: Any) -> None:
    deep = nested(20).SerializeToString()
    for _ in range(30):  # past protobuf's own nesting limit
        deep = b"\x22" + _varint(len(deep) + 2) + b"\x0a" + _varint(len(deep)) + deep
    with grpc.insecure_channel(shared_server.target) as channel:
        for method in ("Search", "Upsert", "Embed", "Distance", "UpsertStream", "SearchBatch"):
            call = channel.unary_unary(f"/embedspace.v1.Embedspace/{method}")
            for payload in (b"\xff\xff\xff\xff", b"\x0a\x05ab", deep):
                with pytest.raises(grpc.RpcError) as info:
                    call(payload, timeout=30)
                err: Any = info.value
                assert err.code() == C.INVALID_ARGUMENT, (method, err.details())
                assert "not a valid embedspace.v1." in err.details()
                assert violation(err)[0] == ""
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)

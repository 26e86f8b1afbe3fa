"""Bad input answers INVALID_ARGUMENT with its message and, in the status details, a
google.rpc.BadRequest whose field violation names the request field to blame; other errors
carry no details."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from embedspace.v1 import embedspace_pb2 as pb
from grpc_status import rpc_status

from .rpc import TIMEOUT, create, point, upsert, vec, violation

ONES = np.ones(8)
Q = pb.Query(vector=vec(ONES))
BOTH = pb.Vector(dim=8, data=np.ones(8, np.float32).tobytes(), values=[1.0] * 8)


def nested(inner: pb.Query) -> pb.Query:
    return pb.Query(sum=pb.WeightedSum(terms=[pb.WeightedQuery(query=Q),
                                              pb.WeightedQuery(query=inner)]))  # fmt: skip


# (method, request with "{c}" for the test's collection, the field, words of the message)
CASES: list[tuple[str, Any, str, str]] = [
    ("Upsert", pb.UpsertRequest(collection="{c}", points=[
        point("a", ONES), point("b", ONES), point("c", np.ones(7))]),
     "points[2].vector", "points[2].vector must have dimension 8"),
    ("Upsert", pb.UpsertRequest(collection="{c}", points=[point("a", ONES),
                                                          point("z", np.zeros(8))]),
     "points[1].vector", "all zeros"),
    ("Upsert", pb.UpsertRequest(collection="{c}", points=[point("", ONES)]),
     "points[0].id", "empty id"),
    ("Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="m", vector=vec(ONES), metadata={"colour": pb.Value()})]),
     "points[0].metadata.colour", "'colour'"),
    ("Upsert", pb.UpsertRequest(collection="{c}", points=[
        pb.UpsertPoint(id="i", item=pb.Item(vector=vec(np.ones(3))))]),
     "points[0].item", "dimension 8"),
    ("Search", pb.SearchRequest(collection="{c}", query=Q, k=0), "k", "k must be between"),
    ("Search", pb.SearchRequest(collection="{c}", query=Q, k=3, min_score=float("inf")),
     "min_score", "finite"),
    ("Search", pb.SearchRequest(collection="{c}", query=pb.Query(vector=BOTH), k=3),
     "query.vector", "both data and values"),
    ("Search", pb.SearchRequest(collection="{c}", query=nested(pb.Query(vector=vec([1, 2]))),
                                k=3),
     "query.sum.terms[1].query.vector", "dimension 8"),
    ("Search", pb.SearchRequest(collection="{c}", query=pb.Query(), k=3), "query", "is empty"),
    ("Search", pb.SearchRequest(collection="{c}", query=Q, k=3, search_params={"efSearch": 9}),
     "search_params.efSearch", "efSearch"),
    ("Search", pb.SearchRequest(collection="{c}", query=Q, k=3, where={"w": pb.Value()}),
     "where.w", "where"),
    ("Scan", pb.ScanRequest(collection="{c}", page_token="%%%"), "page_token", "page_token"),
    ("Get", pb.GetRequest(collection="{c}"), "ids", "no ids given"),
    ("Get", pb.GetRequest(collection="{c}", ids=["p0"], vector_form=7), "vector_form",
     "unknown form 7"),
    ("Embed", pb.EmbedRequest(encoder="minilm", items=[pb.Item(text="fine"), pb.Item(text="")]),
     "items[1]", "empty text"),
    ("Embed", pb.EmbedRequest(encoder="minilm", items=[pb.Item(vector=vec(ONES))]),
     "items[0]", "expects text items"),
    ("Embed", pb.EmbedRequest(encoder="vec8", items=[pb.Item()]), "items[0]", "no content"),
    ("Distance", pb.DistanceRequest(a=[Q], b=[Q]), "space", "set collection or encoder"),
    ("Distance", pb.DistanceRequest(collection="{c}", a=[Q], b=[Q, pb.Query(vector=vec([1]))],
                                    matrix=True),
     "b[1].vector", "dimension 8"),
    ("Distance", pb.DistanceRequest(encoder="vec8", a=[Q], b=[Q], metric=42), "metric",
     "unknown metric"),
    ("SearchBatch", pb.SearchBatchRequest(collection="{c}", queries=[Q, Q, pb.Query(id="")],
                                          k=3),
     "queries[2].id", "stored id is empty"),
    ("MostSimilar", pb.MostSimilarRequest(collection="{c}", k=3, positive=[
        pb.WeightedQuery(query=Q), pb.WeightedQuery(query=pb.Query())]),
     "positive[1].query", "is empty"),
    ("MostSimilar", pb.MostSimilarRequest(collection="{c}", k=3, positive=[
        pb.WeightedQuery(query=Q, weight=float("nan"))]),
     "positive[0].weight", "finite"),
    ("MeanVector", pb.MeanVectorRequest(collection="{c}", items=[Q], weights=[1, 2]),
     "weights", "one weight per item"),
    ("DoesntMatch", pb.DoesntMatchRequest(encoder="vec8"), "items", "at least one"),
    ("Compare", pb.CompareRequest(collections=["{c}"], query=Q, k=3), "collections",
     "two or more"),
    ("Backup", pb.BackupRequest(collection="{c}", backup="a/b"), "backup", "invalid"),
]  # fmt: skip


def _fill(request: Any, name: str) -> Any:
    copy = type(request)()
    copy.CopyFrom(request)
    if "collection" in copy.DESCRIPTOR.fields_by_name and copy.collection == "{c}":
        copy.collection = name
    if "collections" in copy.DESCRIPTOR.fields_by_name:
        copy.collections[:] = [name if c == "{c}" else c for c in copy.collections]
    return copy


def test_bad_input_names_the_field_to_blame(es_stub: Any, collection_name: str) -> None:
    create(es_stub, collection_name)
    upsert(es_stub, collection_name, ["p0", "p1"], np.eye(8)[:2])
    for method, request, field, words in CASES:
        with pytest.raises(grpc.RpcError) as info:
            getattr(es_stub, method)(_fill(request, collection_name), timeout=TIMEOUT)
        found, description = violation(info.value)
        assert (method, found) == (method, field), description
        assert words in description, (method, field, description)


def test_other_errors_carry_no_bad_request(es_stub: Any) -> None:
    for method, request in (
        ("Search", pb.SearchRequest(collection="nope", query=Q, k=3)),
        ("CreateCollection", pb.CreateCollectionRequest(collection="fresh", encoder="nope")),
    ):
        with pytest.raises(grpc.RpcError) as info:
            getattr(es_stub, method)(request, timeout=TIMEOUT)
        err: Any = info.value
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert rpc_status.from_call(err) is None


def test_bytes_that_do_not_parse_carry_a_bad_request_blaming_no_field(
    shared_server: Any,
) -> None:
    with grpc.insecure_channel(shared_server.target) as channel:
        call = channel.unary_unary("/embedspace.v1.Embedspace/Search")
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff\xff", timeout=TIMEOUT)
    field, description = violation(info.value)
    assert field == "" and "not a valid embedspace.v1.SearchRequest" in description


def test_a_field_path_quoting_a_huge_key_is_cut_to_fit_the_trailers(
    es_stub: Any, collection_name: str
) -> None:
    create(es_stub, collection_name)
    key = "k" * 20_000
    request = pb.UpsertRequest(collection=collection_name, points=[
        pb.UpsertPoint(id="a", vector=vec(ONES), metadata={key: pb.Value()})])  # fmt: skip
    with pytest.raises(grpc.RpcError) as info:
        es_stub.Upsert(request, timeout=TIMEOUT)
    field, description = violation(info.value)
    assert field.startswith("points[0].metadata.kkk") and len(field) == 500
    assert description.endswith("...(cut)")

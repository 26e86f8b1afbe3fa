"""Protobuf <-> domain objects: the only server module that touches generated types.

Every malformed field becomes InvalidInput naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from embedspace import wire
from embedspace.v1 import embedspace_pb2 as pb

from .errors import InvalidInput
from .types import (
    AnalogyResult,
    CollectionInfo,
    DistanceResult,
    EncoderInfo,
    FloatArray,
    IdQuery,
    Item,
    ItemKind,
    ItemQuery,
    Metadata,
    Metric,
    Neighbor,
    OddOneOut,
    Query,
    Record,
    ReplicaInfo,
    StoredItem,
    SumQuery,
    Tensor,
    Text,
    UpsertPoint,
    UpsertResult,
    VectorItem,
    VectorQuery,
)

T = TypeVar("T")

METRICS = {pb.METRIC_COSINE: Metric.COSINE, pb.METRIC_DOT: Metric.DOT, pb.METRIC_L2: Metric.L2}
METRICS_PB = {v: k for k, v in METRICS.items()}
ITEM_KINDS_PB = {
    ItemKind.TEXT: pb.ITEM_KIND_TEXT,
    ItemKind.TENSOR: pb.ITEM_KIND_TENSOR,
    ItemKind.RECORD: pb.ITEM_KIND_RECORD,
    ItemKind.VECTOR: pb.ITEM_KIND_VECTOR,
}
METHODS = {pb.ANALOGY_METHOD_UNSPECIFIED: "add", pb.ANALOGY_METHOD_ADD: "add",
           pb.ANALOGY_METHOD_MUL: "mul"}  # fmt: skip


SERVICE = pb.DESCRIPTOR.services_by_name["Embedspace"]
SERVICE_NAME: str = SERVICE.full_name


class Malformed:
    """Stands in for a request whose bytes did not parse, so that its handler can answer
    INVALID_ARGUMENT."""

    def __init__(self, message: str) -> None:
        self.message = message


def rpc_codecs() -> dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]]:
    """Each RPC's name, with its request parser (which gives Malformed for bytes that do not
    parse) and its response serializer."""

    def lenient(cls: Any) -> Callable[[bytes], Any]:
        def parse(data: bytes) -> Any:
            try:
                return cls.FromString(data)
            except Exception as e:  # DecodeError, and RecursionError on absurd nesting
                return Malformed(f"the request is not a valid {cls.DESCRIPTOR.full_name}: {e}")

        return parse

    return {
        m.name: (lenient(getattr(pb, m.input_type.name)),
                 getattr(pb, m.output_type.name).SerializeToString)
        for m in SERVICE.methods
    }  # fmt: skip


def _checked(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ValueError as e:
        raise InvalidInput(f"{what}: {e}") from None


# ---------------------------------------------------------------- requests


def metric(value: pb.Metric, what: str = "metric") -> Metric | None:
    if value == pb.METRIC_UNSPECIFIED:
        return None
    if value not in METRICS:
        raise InvalidInput(f"{what}: unknown metric {value}; use COSINE, DOT or L2")
    return METRICS[value]


def vector(message: pb.Vector, what: str) -> FloatArray:
    return _checked(what, lambda: wire.unpack(message))


def metadata(values: Mapping[str, pb.Value], what: str = "metadata") -> Metadata:
    return _checked(what, lambda: wire.from_values(values))


def item(message: pb.Item, what: str = "item") -> Item:
    kind = message.WhichOneof("kind")
    if kind == "text":
        return Text(message.text)
    if kind == "tensor":
        return Tensor(_checked(what, lambda: wire.unpack_tensor(message.tensor)))
    if kind == "record":
        return Record(metadata(message.record.fields, f"{what} record"))
    if kind == "vector":
        return VectorItem(vector(message.vector, what))
    raise InvalidInput(f"{what} has no content: set one of text, tensor, record or vector")


def query(message: pb.Query, what: str = "query") -> Query:
    kind = message.WhichOneof("kind")
    if kind == "item":
        return ItemQuery(item(message.item, what))
    if kind == "id":
        if not message.id:
            raise InvalidInput(f"{what}: the stored id is empty")
        return IdQuery(message.id)
    if kind == "vector":
        return VectorQuery(vector(message.vector, what))
    if kind == "sum":
        return SumQuery(
            tuple(
                (query(t.query, f"{what} term {i}"), t.weight if t.HasField("weight") else 1.0)
                for i, t in enumerate(message.sum.terms)
            )
        )
    raise InvalidInput(f"{what} is empty: set one of item, id, vector or sum")


def weighted(terms: list[pb.WeightedQuery], what: str) -> list[tuple[Query, float | None]]:
    return [
        (query(t.query, f"{what} {i}"), t.weight if t.HasField("weight") else None)
        for i, t in enumerate(terms)
    ]


def upsert_points(request: pb.UpsertRequest) -> list[UpsertPoint]:
    points = []
    for i, p in enumerate(request.points):
        what = f"point {i} ({p.id!r})"
        source = p.WhichOneof("source")
        points.append(
            UpsertPoint(
                id=p.id,
                item=item(p.item, what) if source == "item" else None,
                vector=vector(p.vector, what) if source == "vector" else None,
                metadata=metadata(p.metadata, f"{what} metadata"),
            )
        )
    return points


def _queries(messages: Sequence[pb.Query], what: str) -> list[Query]:
    """Each query, its errors labelled `what` with its position filled in."""
    return [query(q, what.format(i)) for i, q in enumerate(messages)]


# Each RPC's request as the arguments of the call of the same name in calls.py.


def embed_request(r: pb.EmbedRequest) -> tuple[str, list[Item]]:
    return r.encoder, [item(it, f"item {i}") for i, it in enumerate(r.items)]


def create_collection_request(
    r: pb.CreateCollectionRequest,
) -> tuple[str, str, str, Metric | None, dict[str, float], int, int]:
    """Shards and replicas left at 0 mean 1."""
    return (r.name, r.encoder, r.index, metric(r.metric), dict(r.search_params),
            r.shards or 1, r.replicas or 1)  # fmt: skip


def name_request(r: pb.DescribeCollectionRequest | pb.DropCollectionRequest) -> tuple[str]:
    return (r.name,)


def backup_request(r: pb.BackupRequest) -> tuple[str, str]:
    return r.collection, r.name


def restore_request(r: pb.RestoreRequest) -> tuple[str, str]:
    return r.name, r.collection


def upsert_request(r: pb.UpsertRequest) -> tuple[str, list[UpsertPoint]]:
    return r.collection, upsert_points(r)


def ids_request(r: pb.GetRequest | pb.DeleteRequest) -> tuple[str, list[str]]:
    return r.collection, list(r.ids)


def scan_request(r: pb.ScanRequest) -> tuple[str, int, int]:
    return r.collection, r.offset, r.limit


def search_request(
    r: pb.SearchRequest,
) -> tuple[str, Query, int, float | None, list[str], Metadata, dict[str, float]]:
    min_score = r.min_score if r.HasField("min_score") else None
    return (r.collection, query(r.query), r.k, min_score, list(r.exclude),
            metadata(r.where, "where"), dict(r.search_params))  # fmt: skip


def distance_request(
    r: pb.DistanceRequest,
) -> tuple[str, list[Query], list[Query], Metric | None, bool]:
    return r.space, _queries(r.a, "a[{}]"), _queries(r.b, "b[{}]"), metric(r.metric), r.matrix


def most_similar_request(r: pb.MostSimilarRequest) -> tuple[
    str, list[tuple[Query, float | None]], list[tuple[Query, float | None]], int, str
]:  # fmt: skip
    return (r.collection, weighted(list(r.positive), "positive"),
            weighted(list(r.negative), "negative"), r.k, method(r.method))  # fmt: skip


def doesnt_match_request(r: pb.DoesntMatchRequest) -> tuple[str, list[Query]]:
    return r.space, _queries(r.items, "item {}")


def compare_request(r: pb.CompareRequest) -> tuple[list[str], Query, int]:
    return list(r.collections), query(r.query), r.k


def mean_vector_request(
    r: pb.MeanVectorRequest,
) -> tuple[str, list[Query], list[float], bool, bool]:
    pre = r.pre_normalize if r.HasField("pre_normalize") else True
    return r.space, _queries(r.items, "item {}"), list(r.weights), pre, r.post_normalize


# ---------------------------------------------------------------- responses


def encoder_info(info: EncoderInfo) -> pb.EncoderInfo:
    p = info.provenance
    return pb.EncoderInfo(
        name=info.name,
        dim=info.dim,
        metric=METRICS_PB[info.metric],
        item_kind=ITEM_KINDS_PB[info.item_kind],
        tensor_shape=list(info.tensor_shape),
        record_fields=list(info.record_fields),
        provenance=pb.Provenance(
            kind=p.kind, path=p.path, sha256=p.sha256, loss=p.loss, details=dict(p.details)
        ),
    )


def collection_info(info: CollectionInfo) -> pb.CollectionInfo:
    return pb.CollectionInfo(
        name=info.name,
        encoder=info.encoder,
        index=info.index,
        metric=pb.METRIC_UNSPECIFIED if info.metric is None else METRICS_PB[info.metric],
        dim=info.dim,
        count=info.count,
        search_params=dict(info.search_params),
        quarantined=info.quarantined,
        shards=info.shards,
        replicas=info.replicas,
        placement=[replica_info(p) for p in info.placement],
    )


def replica_info(r: ReplicaInfo) -> pb.ReplicaInfo:
    return pb.ReplicaInfo(
        shard=r.shard, replica=r.replica, node=r.node, live=r.live, seq=r.seq, count=r.count
    )


def missing_shards(hits: Sequence[Neighbor]) -> list[int]:
    """The shards a collection's answer left out (types.Hits); none for a plain list."""
    return list(getattr(hits, "missing", ()))


def list_encoders_response(infos: list[EncoderInfo]) -> pb.ListEncodersResponse:
    return pb.ListEncodersResponse(encoders=[encoder_info(e) for e in infos])


def list_collections_response(infos: list[CollectionInfo]) -> pb.ListCollectionsResponse:
    return pb.ListCollectionsResponse(collections=[collection_info(c) for c in infos])


def backup_response(name: str, path: Path, count: int) -> pb.BackupResponse:
    return pb.BackupResponse(name=name, path=str(path), count=count)


def drop_collection_response() -> pb.DropCollectionResponse:
    return pb.DropCollectionResponse()


def upsert_response(result: UpsertResult) -> pb.UpsertResponse:
    return pb.UpsertResponse(inserted=result.inserted, replaced=result.replaced)


def get_response(items: list[StoredItem]) -> pb.GetResponse:
    return pb.GetResponse(items=[stored_item(s) for s in items])


def scan_response(items: list[StoredItem], total: int) -> pb.ScanResponse:
    return pb.ScanResponse(items=[stored_item(s) for s in items], total=total)


def delete_response(deleted: int) -> pb.DeleteResponse:
    return pb.DeleteResponse(deleted=deleted)


def search_response(hits: list[Neighbor]) -> pb.SearchResponse:
    return pb.SearchResponse(
        neighbors=[neighbor(n) for n in hits], missing_shards=missing_shards(hits)
    )


def doesnt_match_response(odd: OddOneOut) -> pb.DoesntMatchResponse:
    return pb.DoesntMatchResponse(index=odd.index, similarities=odd.similarities.tolist())


def mean_vector_response(mean: FloatArray) -> pb.MeanVectorResponse:
    return pb.MeanVectorResponse(vector=wire.pack(mean))


def compare_response(
    answers: list[tuple[str, str, list[Neighbor]]], jaccard: FloatArray
) -> pb.CompareResponse:
    return pb.CompareResponse(
        answers=[
            pb.CompareAnswer(
                collection=c,
                encoder=e,
                neighbors=[neighbor(n) for n in hits],
                missing_shards=missing_shards(hits),
            )
            for c, e, hits in answers
        ],
        jaccard=jaccard.ravel().tolist(),
    )


def neighbor(n: Neighbor) -> pb.Neighbor:
    return pb.Neighbor(id=n.id, score=n.score, metadata=wire.to_values(n.metadata))


def stored_item(s: StoredItem) -> pb.StoredItem:
    return pb.StoredItem(id=s.id, vector=wire.pack(s.vector), metadata=wire.to_values(s.metadata))


def embed_response(vectors: FloatArray) -> pb.EmbedResponse:
    return pb.EmbedResponse(vectors=[wire.pack(v) for v in vectors])


def distance_response(result: DistanceResult) -> pb.DistanceResponse:
    d = result.distances
    rows, cols = (d.shape[0], d.shape[1]) if d.ndim == 2 else (d.shape[0], 1)
    return pb.DistanceResponse(
        distances=d.ravel().tolist(), rows=rows, cols=cols, metric=METRICS_PB[result.metric]
    )


def analogy_response(result: AnalogyResult) -> pb.MostSimilarResponse:
    return pb.MostSimilarResponse(
        neighbors=[neighbor(n) for n in result.neighbors],
        vector=wire.pack(result.vector) if result.vector is not None else None,
        missing_shards=missing_shards(result.neighbors),
    )


def method(value: pb.AnalogyMethod) -> str:
    if value not in METHODS:
        raise InvalidInput(f"unknown analogy method {value}; use ADD or MUL")
    return METHODS[value]

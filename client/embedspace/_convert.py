"""Python values <-> protobuf messages: with `wire`, the only SDK modules that touch
generated code.

Each public call is described once here as an `Op` (which RPC, the request, how to read
the response), so `Client` and `AsyncClient` stay thin and identical.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
import grpc.aio
import numpy as np

from . import wire
from ._types import (
    Analogy,
    BackupInfo,
    CollectionInfo,
    Comparison,
    EncoderInfo,
    Item,
    Neighbor,
    Neighbors,
    Provenance,
    Query,
    Ref,
    ReplicaInfo,
    StoredItem,
    Sum,
    Tensor,
    UpsertResult,
)
from .v1 import embedspace_pb2 as pb
from .v1 import embedspace_pb2_grpc as pb_grpc
from .wire import FloatArray, Scalar

R = TypeVar("R")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Embedspace"].full_name
METRICS = {"cosine": pb.METRIC_COSINE, "dot": pb.METRIC_DOT, "l2": pb.METRIC_L2}
METRIC_NAMES = {v: k for k, v in METRICS.items()}
ITEM_KINDS = {pb.ITEM_KIND_TEXT: "text", pb.ITEM_KIND_TENSOR: "tensor",
              pb.ITEM_KIND_RECORD: "record", pb.ITEM_KIND_VECTOR: "vector"}  # fmt: skip
METHODS = {"add": pb.ANALOGY_METHOD_ADD, "mul": pb.ANALOGY_METHOD_MUL}


@dataclass(frozen=True)
class Op(Generic[R]):
    """One call: the RPC method name, its request, and how to read its response."""

    method: str
    request: Any
    parse: Callable[[Any], R]


def stub(channel: grpc.Channel | grpc.aio.Channel) -> Any:
    """The generated stub over a blocking or an asyncio channel: `Op.method` names one of its
    calls."""
    return pb_grpc.EmbedspaceStub(channel)


# ---------------------------------------------------------------- building blocks


def _metric(metric: str | None) -> pb.Metric:
    if metric is None:
        return pb.METRIC_UNSPECIFIED
    try:
        return METRICS[metric.lower()]
    except KeyError:
        raise ValueError(f"metric must be one of {sorted(METRICS)}; got {metric!r}") from None


def item(value: Item) -> pb.Item:
    if isinstance(value, str):
        return pb.Item(text=value)
    if isinstance(value, Tensor):
        return pb.Item(tensor=wire.pack_tensor(value.array))
    if isinstance(value, Mapping):
        return pb.Item(record=pb.Record(fields=wire.to_values(value)))
    if isinstance(value, np.ndarray):
        return pb.Item(vector=wire.pack(value))
    raise TypeError(
        f"an item is a str, a Tensor, a record (dict) or a numpy vector; got {type(value).__name__}"
    )


def query(value: Query) -> pb.Query:
    if isinstance(value, Ref):
        return pb.Query(id=value.id)
    if isinstance(value, np.ndarray):
        return pb.Query(vector=wire.pack(value))
    if isinstance(value, Sum):
        return pb.Query(sum=pb.WeightedSum(terms=[weighted(t) for t in value.terms]))
    if isinstance(value, list | tuple):
        raise TypeError(
            "a query is a str, a numpy vector, a Ref, a Tensor, a record (dict) or a Sum; "
            "for a weighted sum use Sum([(query, weight), ...])"
        )
    return pb.Query(item=item(value))


def weighted(term: Query | tuple[Query, float]) -> pb.WeightedQuery:
    if isinstance(term, tuple):
        q, w = term
        return pb.WeightedQuery(query=query(q), weight=float(w))
    return pb.WeightedQuery(query=query(term))


def _queries(values: Any) -> tuple[list[pb.Query], bool]:
    """(messages, whether a single query was given)."""
    if isinstance(values, list | tuple) or (isinstance(values, np.ndarray) and values.ndim == 2):
        return [query(v) for v in values], False
    return [query(values)], True


def neighbor(n: pb.Neighbor) -> Neighbor:
    return Neighbor(n.id, n.score, wire.from_values(n.metadata))


def neighbors(found: Sequence[pb.Neighbor], missing_shards: Sequence[int]) -> Neighbors:
    return Neighbors([neighbor(n) for n in found], missing_shards)


def collection_info(c: pb.CollectionInfo) -> CollectionInfo:
    metric = METRIC_NAMES.get(c.metric, "")
    placement = tuple(ReplicaInfo(p.shard, p.replica, p.node, p.live, p.seq, p.count)
                      for p in c.placement)  # fmt: skip
    # A server older than shards and replicas sends 0 for them: one of each.
    return CollectionInfo(c.name, c.encoder, c.index, metric, c.dim, c.count,
                          dict(c.search_params), c.quarantined, c.shards or 1,
                          c.replicas or 1, placement)  # fmt: skip


def encoder_info(e: pb.EncoderInfo) -> EncoderInfo:
    p = e.provenance
    return EncoderInfo(
        name=e.name,
        dim=e.dim,
        metric=METRIC_NAMES.get(e.metric, ""),
        item_kind=ITEM_KINDS.get(e.item_kind, ""),
        tensor_shape=tuple(e.tensor_shape),
        record_fields=tuple(e.record_fields),
        provenance=Provenance(p.kind, p.path, p.sha256, p.loss, dict(p.details)),
    )


# ---------------------------------------------------------------- one Op per call


def encoders() -> Op[list[EncoderInfo]]:
    return Op("ListEncoders", pb.ListEncodersRequest(),
              lambda r: [encoder_info(e) for e in r.encoders])  # fmt: skip


def embed(encoder: str, items: Sequence[Item]) -> Op[FloatArray]:
    if isinstance(items, str):
        items = [items]
    request = pb.EmbedRequest(encoder=encoder, items=[item(i) for i in items])
    return Op("Embed", request, lambda r: wire.unpack_rows(r.vectors))


def create_collection(
    name: str,
    encoder: str,
    index: str,
    metric: str | None,
    search_params: Mapping[str, float] | None = None,
    shards: int = 1,
    replicas: int = 1,
) -> Op[CollectionInfo]:
    for what, n in (("shards", shards), ("replicas", replicas)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{what} must be a whole number of at least 1; got {n!r}")
    request = pb.CreateCollectionRequest(name=name, encoder=encoder, index=index,
                                         metric=_metric(metric),
                                         search_params=dict(search_params or {}),
                                         shards=shards, replicas=replicas)  # fmt: skip
    return Op("CreateCollection", request, collection_info)


def collections() -> Op[list[CollectionInfo]]:
    return Op("ListCollections", pb.ListCollectionsRequest(),
              lambda r: [collection_info(c) for c in r.collections])  # fmt: skip


def describe(name: str) -> Op[CollectionInfo]:
    return Op("DescribeCollection", pb.DescribeCollectionRequest(name=name), collection_info)


def drop_collection(name: str) -> Op[None]:
    return Op("DropCollection", pb.DropCollectionRequest(name=name), lambda r: None)


def backup(collection: str, name: str | None) -> Op[BackupInfo]:
    request = pb.BackupRequest(collection=collection, name=name or "")
    return Op("Backup", request, lambda r: BackupInfo(r.name, r.path, r.count))


def restore(name: str, collection: str) -> Op[CollectionInfo]:
    return Op("Restore", pb.RestoreRequest(name=name, collection=collection), collection_info)


def upsert(
    collection: str,
    ids: Sequence[str],
    items: Sequence[Item] | None,
    vectors: Any,
    metadata: Sequence[Mapping[str, Scalar]] | None,
) -> Op[UpsertResult]:
    if isinstance(ids, str):
        raise TypeError("ids must be a sequence of str, not one str")
    if (items is None) == (vectors is None):
        raise ValueError("upsert takes exactly one of items= or vectors=")
    sources: Any = items if items is not None else np.asarray(vectors, np.float32)
    if len(sources) != len(ids) or (metadata is not None and len(metadata) != len(ids)):
        raise ValueError(
            f"upsert needs one item or vector (and metadata, if given) per id; got "
            f"{len(ids)} ids, {len(sources)} {'items' if items is not None else 'vectors'}"
            + (f", {len(metadata)} metadata" if metadata is not None else "")
        )
    points = []
    for i, key in enumerate(ids):
        md = wire.to_values(metadata[i]) if metadata is not None else {}
        if items is not None:
            points.append(pb.UpsertPoint(id=key, item=item(sources[i]), metadata=md))
        else:
            points.append(pb.UpsertPoint(id=key, vector=wire.pack(sources[i]), metadata=md))
    request = pb.UpsertRequest(collection=collection, points=points)
    return Op("Upsert", request, lambda r: UpsertResult(r.inserted, r.replaced))


def stored_item(s: pb.StoredItem) -> StoredItem:
    return StoredItem(s.id, wire.unpack(s.vector), wire.from_values(s.metadata))


def get(collection: str, ids: Sequence[str]) -> Op[list[StoredItem]]:
    request = pb.GetRequest(collection=collection, ids=list(ids))
    return Op("Get", request, lambda r: [stored_item(s) for s in r.items])


def scan(collection: str, offset: int, limit: int) -> Op[tuple[list[StoredItem], int]]:
    request = pb.ScanRequest(collection=collection, offset=offset, limit=limit)
    return Op("Scan", request, lambda r: ([stored_item(s) for s in r.items], int(r.total)))


def delete(collection: str, ids: Sequence[str]) -> Op[int]:
    return Op("Delete", pb.DeleteRequest(collection=collection, ids=list(ids)),
              lambda r: int(r.deleted))  # fmt: skip


def search(
    collection: str,
    q: Query,
    k: int,
    min_score: float | None,
    exclude: Sequence[str],
    where: Mapping[str, Scalar] | None,
    search_params: Mapping[str, float] | None = None,
) -> Op[Neighbors]:
    request = pb.SearchRequest(
        search_params=dict(search_params or {}),
        collection=collection,
        query=query(q),
        k=k,
        min_score=min_score,
        exclude=list(exclude),
        where=wire.to_values(where or {}),
    )
    return Op("Search", request, lambda r: neighbors(r.neighbors, r.missing_shards))


def distance(
    space: str, a: Query | Sequence[Query], b: Query | Sequence[Query], metric: str | None,
    matrix: bool,
) -> Op[Any]:  # fmt: skip
    qa, single_a = _queries(a)
    qb, single_b = _queries(b)
    single = single_a and single_b and not matrix
    request = pb.DistanceRequest(space=space, a=qa, b=qb, metric=_metric(metric), matrix=matrix)

    def parse(r: pb.DistanceResponse) -> Any:
        values = np.asarray(r.distances, np.float32)
        if single:
            return float(values[0])
        return values.reshape(r.rows, r.cols) if matrix else values

    return Op("Distance", request, parse)


def analogy(
    collection: str,
    positive: Sequence[Query | tuple[Query, float]],
    negative: Sequence[Query | tuple[Query, float]],
    k: int,
    method: str,
) -> Op[Analogy]:
    if method not in METHODS:
        raise ValueError(f"method must be 'add' or 'mul'; got {method!r}")
    request = pb.MostSimilarRequest(
        collection=collection,
        positive=[weighted(t) for t in _as_list(positive)],
        negative=[weighted(t) for t in _as_list(negative)],
        k=k,
        method=METHODS[method],
    )

    def parse(r: pb.MostSimilarResponse) -> Analogy:
        vector = wire.unpack(r.vector) if r.HasField("vector") else None
        return Analogy([neighbor(n) for n in r.neighbors], vector, tuple(r.missing_shards))

    return Op("MostSimilar", request, parse)


def _as_list(values: Any) -> list[Any]:
    # gensim accepts a lone key for positive/negative; so do we.
    if isinstance(values, str | Ref | np.ndarray | Sum):
        return [values]
    return list(values)


def compare(collections: Sequence[str], q: Query, k: int) -> Op[Comparison]:
    request = pb.CompareRequest(collections=list(collections), query=query(q), k=k)

    def parse(r: pb.CompareResponse) -> Comparison:
        names = [a.collection for a in r.answers]
        n = len(names)
        return Comparison(
            collections=names,
            encoders=[a.encoder for a in r.answers],
            neighbors={a.collection: neighbors(a.neighbors, a.missing_shards) for a in r.answers},
            jaccard=np.asarray(r.jaccard, np.float32).reshape(n, n),
        )

    return Op("Compare", request, parse)


def doesnt_match(collection: str, items: Sequence[Query]) -> Op[Query]:
    given = list(items)
    request = pb.DoesntMatchRequest(space=collection, items=[query(i) for i in given])
    return Op("DoesntMatch", request, lambda r: given[r.index])


def mean_vector(
    space: str,
    items: Sequence[Query],
    weights: Sequence[float] | None,
    pre_normalize: bool,
    post_normalize: bool,
) -> Op[FloatArray]:
    request = pb.MeanVectorRequest(
        space=space,
        items=[query(i) for i in items],
        weights=list(weights) if weights is not None else [],
        pre_normalize=pre_normalize,
        post_normalize=post_normalize,
    )
    return Op("MeanVector", request, lambda r: wire.unpack(r.vector))

"""Each SDK call described once as an `Op` (which RPC, the request, how to read the
response), so `Client` and `AsyncClient` stay thin and identical. With `_messages` (the
SDK's values as messages and back) and `wire`, the only SDK modules that touch generated code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
import grpc.aio
import numpy as np

from . import _messages as m
from . import wire
from ._types import (
    Analogy,
    BackupInfo,
    CollectionInfo,
    Comparison,
    EncoderInfo,
    Item,
    Items,
    Neighbors,
    Page,
    Point,
    Query,
    UpsertResult,
)
from .v1 import embedspace_pb2 as pb
from .v1 import embedspace_pb2_grpc as pb_grpc
from .wire import FloatArray, Scalar

R = TypeVar("R")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Embedspace"].full_name


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


# ---------------------------------------------------------------- one Op per call


def encoders() -> Op[list[EncoderInfo]]:
    return Op("ListEncoders", pb.ListEncodersRequest(),
              lambda r: [m.encoder_info(e) for e in r.encoders])  # fmt: skip


def embed(encoder: str, items: Sequence[Item]) -> Op[FloatArray]:
    if isinstance(items, str):
        items = [items]
    request = pb.EmbedRequest(encoder=encoder, items=[m.item(i) for i in items])
    return Op("Embed", request, lambda r: wire.unpack_rows(r.vectors))


def create_collection(
    collection: str,
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
    request = pb.CreateCollectionRequest(collection=collection, encoder=encoder, index=index,
                                         metric=m.metric(metric),
                                         search_params=dict(search_params or {}),
                                         shards=shards, replicas=replicas)  # fmt: skip
    return Op("CreateCollection", request, m.collection_info)


def collections() -> Op[list[CollectionInfo]]:
    return Op("ListCollections", pb.ListCollectionsRequest(),
              lambda r: [m.collection_info(c) for c in r.collections])  # fmt: skip


def describe(collection: str) -> Op[CollectionInfo]:
    request = pb.DescribeCollectionRequest(collection=collection)
    return Op("DescribeCollection", request, m.collection_info)


def drop_collection(collection: str) -> Op[None]:
    request = pb.DropCollectionRequest(collection=collection)
    return Op("DropCollection", request, lambda r: None)


def backup(collection: str, backup: str | None) -> Op[BackupInfo]:
    request = pb.BackupRequest(collection=collection, backup=backup or "")
    return Op("Backup", request, m.backup_info)


def backups() -> Op[list[BackupInfo]]:
    return Op("ListBackups", pb.ListBackupsRequest(),
              lambda r: [m.backup_info(b) for b in r.backups])  # fmt: skip


def restore(backup: str, collection: str) -> Op[CollectionInfo]:
    request = pb.RestoreRequest(backup=backup, collection=collection)
    return Op("Restore", request, m.collection_info)


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
    points = [m.point_message(key, items[i] if items is not None else None,
                            sources[i] if items is None else None,
                            metadata[i] if metadata is not None else {})
              for i, key in enumerate(ids)]  # fmt: skip
    request = pb.UpsertRequest(collection=collection, points=points)
    return Op("Upsert", request, lambda r: UpsertResult(r.inserted, r.replaced))


def get(collection: str, ids: Sequence[str]) -> Op[Items]:
    if isinstance(ids, str):
        raise TypeError("ids must be a sequence of str, not one str")
    request = pb.GetRequest(collection=collection, ids=list(ids))
    return Op("Get", request, lambda r: Items([m.stored_item(s) for s in r.items], r.missing_ids))


def scan(
    collection: str, limit: int, page_token: str, with_vectors: bool, with_metadata: bool
) -> Op[Page]:
    request = pb.ScanRequest(collection=collection, limit=limit, page_token=page_token,
                             with_vectors=with_vectors, with_metadata=with_metadata)  # fmt: skip
    return Op("Scan", request, lambda r: Page([m.stored_item(s) for s in r.items], int(r.total),
                                              r.next_page_token))  # fmt: skip


def count(collection: str, where: Mapping[str, Scalar] | None) -> Op[int]:
    request = pb.CountRequest(collection=collection, where=wire.to_values(where or {}))
    return Op("Count", request, lambda r: int(r.count))


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
    fields = m.search_fields(k, min_score, exclude, where, search_params)
    request = pb.SearchRequest(collection=collection, query=m.query(q), **fields)
    return Op("Search", request, lambda r: m.neighbors(r.neighbors, r.missing_shards))


def search_batch(
    collection: str,
    queries: Sequence[Query],
    k: int,
    min_score: float | None,
    exclude: Sequence[str],
    where: Mapping[str, Scalar] | None,
    search_params: Mapping[str, float] | None = None,
) -> Op[list[Neighbors]]:
    if isinstance(queries, str) or (isinstance(queries, np.ndarray) and queries.ndim != 2):
        raise TypeError("queries must be a sequence of queries (or a 2-d array of vectors)")
    fields = m.search_fields(k, min_score, exclude, where, search_params)
    request = pb.SearchBatchRequest(collection=collection, queries=[m.query(q) for q in queries],
                                    **fields)  # fmt: skip
    parse = lambda r: [m.neighbors(x.neighbors, x.missing_shards) for x in r.results]  # noqa: E731
    return Op("SearchBatch", request, parse)


def distance(
    a: Query | Sequence[Query],
    b: Query | Sequence[Query],
    *,
    collection: str | None = None,
    encoder: str | None = None,
    metric: str | None = None,
    matrix: bool = False,
) -> Op[Any]:
    space = m.space("distance", collection, encoder)
    qa, single_a = m.queries(a)
    qb, single_b = m.queries(b)
    single = single_a and single_b and not matrix
    request = pb.DistanceRequest(**space, a=qa, b=qb, metric=m.metric(metric), matrix=matrix)

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
    if method not in m.METHODS:
        raise ValueError(f"method must be 'add' or 'mul'; got {method!r}")
    request = pb.MostSimilarRequest(
        collection=collection,
        positive=[m.weighted(t) for t in m.as_list(positive)],
        negative=[m.weighted(t) for t in m.as_list(negative)],
        k=k,
        method=m.METHODS[method],
    )

    def parse(r: pb.MostSimilarResponse) -> Analogy:
        vector = wire.unpack(r.vector) if r.HasField("vector") else None
        return Analogy([m.neighbor(n) for n in r.neighbors], vector, tuple(r.missing_shards))

    return Op("MostSimilar", request, parse)


def compare(collections: Sequence[str], q: Query, k: int) -> Op[Comparison]:
    request = pb.CompareRequest(collections=list(collections), query=m.query(q), k=k)

    def parse(r: pb.CompareResponse) -> Comparison:
        names = [a.collection for a in r.answers]
        n = len(names)
        return Comparison(
            collections=names,
            encoders=[a.encoder for a in r.answers],
            neighbors={a.collection: m.neighbors(a.neighbors, a.missing_shards) for a in r.answers},
            jaccard=np.asarray(r.jaccard, np.float32).reshape(n, n),
        )

    return Op("Compare", request, parse)


def doesnt_match(
    items: Sequence[Query], *, collection: str | None = None, encoder: str | None = None
) -> Op[Query]:
    space = m.space("doesnt_match", collection, encoder)
    given = list(items)
    request = pb.DoesntMatchRequest(**space, items=[m.query(i) for i in given])
    return Op("DoesntMatch", request, lambda r: given[r.index])


def mean_vector(
    items: Sequence[Query],
    *,
    collection: str | None = None,
    encoder: str | None = None,
    weights: Sequence[float] | None = None,
    pre_normalize: bool = True,
    post_normalize: bool = False,
) -> Op[FloatArray]:
    space = m.space("mean_vector", collection, encoder)
    request = pb.MeanVectorRequest(
        **space,
        items=[m.query(i) for i in items],
        weights=list(weights) if weights is not None else [],
        pre_normalize=pre_normalize,
        post_normalize=post_normalize,
    )
    return Op("MeanVector", request, lambda r: wire.unpack(r.vector))


# ---------------------------------------------------------------- bulk upsert (UpsertStream)


@dataclass(frozen=True)
class StreamAnswer:
    """An UpsertStream's response: counts over the stream, and each point it left out as
    (message, point in it, id, field, reason)."""

    inserted: int
    replaced: int
    rejected: list[tuple[int, int, str, str, str]]


def upsert_message(collection: str, points: Sequence[Any]) -> Any:
    """One message of an UpsertStream, from `upsert_point` messages."""
    return pb.UpsertRequest(collection=collection, points=points)


def stream_answer(r: pb.UpsertStreamResponse) -> StreamAnswer:
    rejected = [(x.request, x.point, x.id, x.field, x.reason) for x in r.rejected]
    return StreamAnswer(int(r.inserted), int(r.replaced), rejected)


def upsert_stream(collection: str, points: Sequence[Point]) -> Op[StreamAnswer]:
    """One message of an UpsertStream and how to read the stream's response (the bulk
    loader in _ingest.py sends many such messages per stream)."""
    request = upsert_message(collection, [m.upsert_point(p)[0] for p in points])
    return Op("UpsertStream", request, stream_answer)


def upsert_pieces(collection: str, request: Any, size: int) -> list[tuple[int, Any]]:
    """An UpsertStream message cut into messages of at most `size` points: each piece's
    offset in the original and its message."""
    points = request.points
    return [(a, upsert_message(collection, points[a : a + size]))
            for a in range(0, len(points), size)]  # fmt: skip

"""Requests -> the arguments of the calls of the same name in calls.py (see __init__)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np
from embedspace import wire
from embedspace.v1 import embedspace_pb2 as pb
from google.protobuf.message import Message

from ..errors import InvalidInput
from ..queries import SpaceRef
from ..types import (
    FloatArray,
    IdQuery,
    Item,
    ItemQuery,
    Metadata,
    Metric,
    Query,
    Record,
    Scalar,
    SumQuery,
    Tensor,
    Text,
    UpsertPoint,
    VectorItem,
    VectorQuery,
)
from . import METRICS, PAGE_TOKEN_VERSION

T = TypeVar("T")
METHODS = {pb.ANALOGY_METHOD_UNSPECIFIED: "add", pb.ANALOGY_METHOD_ADD: "add",
           pb.ANALOGY_METHOD_MUL: "mul"}  # fmt: skip


def _checked(field: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ValueError as e:
        raise InvalidInput(f"{field}: {e}", field=field) from None


def metric(value: pb.Metric, field: str = "metric") -> Metric | None:
    if value == pb.METRIC_UNSPECIFIED:
        return None
    if value not in METRICS:
        raise InvalidInput(f"{field}: unknown metric {value}; use COSINE, DOT or L2", field=field)
    return METRICS[value]


def vector(message: pb.Vector, field: str) -> FloatArray:
    return _checked(field, lambda: wire.unpack(message))


def metadata(values: Mapping[str, pb.Value], field: str = "metadata") -> Metadata:
    """A map of Values; a bad one is named by its key, in the field path too."""
    out: dict[str, Scalar] = {}
    for key, value in values.items():
        try:
            out[key] = wire.from_value(value)
        except ValueError as e:
            path = f"{field}.{key}" if key.isidentifier() else f"{field}[{key!r}]"
            raise InvalidInput(f"{field}: field {key!r}: {e}", field=path) from None
    return out


def item(message: pb.Item, field: str) -> Item:
    kind = message.WhichOneof("kind")
    if kind == "text":
        return Text(message.text)
    if kind == "tensor":
        return Tensor(_checked(f"{field}.tensor", lambda: wire.unpack_tensor(message.tensor)))
    if kind == "record":
        return Record(metadata(message.record.fields, f"{field}.record.fields"))
    if kind == "vector":
        return VectorItem(vector(message.vector, f"{field}.vector"))
    raise InvalidInput(
        f"{field} has no content: set one of text, tensor, record or vector", field=field
    )


def query(message: pb.Query, field: str = "query") -> Query:
    kind = message.WhichOneof("kind")
    if kind == "item":
        return ItemQuery(item(message.item, f"{field}.item"))
    if kind == "id":
        if not message.id:
            raise InvalidInput(f"{field}: the stored id is empty", field=f"{field}.id")
        return IdQuery(message.id)
    if kind == "vector":
        return VectorQuery(vector(message.vector, f"{field}.vector"))
    if kind == "sum":
        return SumQuery(
            tuple(
                (query(t.query, f"{field}.sum.terms[{i}].query"),
                 t.weight if t.HasField("weight") else 1.0)
                for i, t in enumerate(message.sum.terms)
            )
        )  # fmt: skip
    raise InvalidInput(f"{field} is empty: set one of item, id, vector or sum", field=field)


def weighted(terms: Sequence[pb.WeightedQuery], field: str) -> list[tuple[Query, float | None]]:
    return [
        (query(t.query, f"{field}[{i}].query"), t.weight if t.HasField("weight") else None)
        for i, t in enumerate(terms)
    ]


def _point(i: int, p: pb.UpsertPoint, unpacked: FloatArray | None = None) -> UpsertPoint:
    """A point; `unpacked`: its vector, already read from the message (see _vectors)."""
    field = f"points[{i}]"
    source = p.WhichOneof("source")
    if source == "vector" and unpacked is None:
        unpacked = vector(p.vector, f"{field}.vector")
    return UpsertPoint(
        id=p.id,
        item=item(p.item, f"{field}.item") if source == "item" else None,
        vector=unpacked if source == "vector" else None,
        metadata=metadata(p.metadata, f"{field}.metadata"),
    )


def _vectors(points: Sequence[pb.UpsertPoint]) -> list[FloatArray | None]:
    """Each point's vector (None for an item), read with one np.frombuffer over their
    joined bytes when every vector is packed, of one dimension and of the right length;
    else all None, and each is read alone (wire.unpack), so that a bad one is named."""
    messages = [p.vector if p.WhichOneof("source") == "vector" else None for p in points]
    given = [v for v in messages if v is not None]
    if not given:
        return [None] * len(points)
    dim = given[0].dim
    if dim < 1 or any(v.dim != dim or len(v.data) != 4 * dim or v.values for v in given):
        return [None] * len(points)
    rows = iter(np.frombuffer(b"".join(v.data for v in given), "<f4").reshape(-1, dim))
    return [None if v is None else next(rows) for v in messages]


def _queries(messages: Sequence[pb.Query], field: str) -> list[Query]:
    return [query(q, f"{field}[{i}]") for i, q in enumerate(messages)]


def space(r: pb.DistanceRequest | pb.DoesntMatchRequest | pb.MeanVectorRequest) -> SpaceRef:
    """The space a request names: a collection or an encoder (neither, if it names none:
    the engine refuses that)."""
    given = r.WhichOneof("space")
    if given == "collection":
        return SpaceRef(collection=r.collection)
    if given == "encoder":
        return SpaceRef(encoder=r.encoder)
    return SpaceRef()


def values_form(request: Message, form: int) -> bool:
    """Whether a response gives its vectors as lists of floats rather than packed bytes:
    as `form` asks, or when unspecified, as any vector of the request itself came."""
    if form == pb.VECTOR_FORM_VALUES:
        return True
    if form == pb.VECTOR_FORM_PACKED:
        return False
    if form != pb.VECTOR_FORM_UNSPECIFIED:
        raise InvalidInput(
            f"vector_form: unknown form {form}; use PACKED or VALUES", field="vector_form"
        )
    return _uses_values(request)


def _uses_values(message: Message) -> bool:
    """Whether any Vector in `message` carries a list of floats (maps hold no vectors)."""
    for field, value in message.ListFields():
        kind = field.message_type
        if kind is None or kind.GetOptions().map_entry:
            continue
        for sub in value if field.is_repeated else (value,):
            if kind is pb.Vector.DESCRIPTOR:
                if wire.uses_values(sub):
                    return True
            elif _uses_values(sub):
                return True
    return False


def _after(token: str) -> str:
    """The id a page token (encode.page_token) says the page follows; "" for the first
    page."""
    if not token:
        return ""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        if not raw or raw[0] != PAGE_TOKEN_VERSION:
            raise ValueError("unknown format")
        if len(raw) < 2:
            raise ValueError("it holds no id")
        return raw[1:].decode()
    except ValueError as e:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InvalidInput(
            f"page_token {token[:40]!r} is not a next_page_token a Scan gave ({e}); leave it "
            "empty for the first page",
            field="page_token",
        ) from None


# ---------------------------------------------------------------- each RPC's request


def embed_request(r: pb.EmbedRequest) -> tuple[str, list[Item]]:
    return r.encoder, [item(it, f"items[{i}]") for i, it in enumerate(r.items)]


def create_collection_request(
    r: pb.CreateCollectionRequest,
) -> tuple[str, str, str, Metric | None, dict[str, float], int, int]:
    """Shards and replicas left at 0 mean 1."""
    return (r.collection, r.encoder, r.index, metric(r.metric), dict(r.search_params),
            r.shards or 1, r.replicas or 1)  # fmt: skip


def collection_request(
    r: pb.DescribeCollectionRequest | pb.DropCollectionRequest,
) -> tuple[str]:
    return (r.collection,)


def backup_request(r: pb.BackupRequest) -> tuple[str, str]:
    return r.collection, r.backup


def restore_request(r: pb.RestoreRequest) -> tuple[str, str]:
    return r.backup, r.collection


def upsert_request(r: pb.UpsertRequest) -> tuple[str, list[UpsertPoint]]:
    vectors = _vectors(r.points)
    return r.collection, [_point(i, p, vectors[i]) for i, p in enumerate(r.points)]


def upsert_stream_request(
    r: pb.UpsertRequest,
) -> tuple[str, list[UpsertPoint], dict[int, InvalidInput]]:
    """One message of a bulk upsert: its points, and those that did not convert (by
    position, each standing in as a point with its id and no content) with their error."""
    points, invalid = [], {}
    vectors = _vectors(r.points)
    for i, p in enumerate(r.points):
        try:
            points.append(_point(i, p, vectors[i]))
        except InvalidInput as e:
            points.append(UpsertPoint(p.id, None, None, {}))
            invalid[i] = e
    return r.collection, points, invalid


def ids_request(r: pb.GetRequest | pb.DeleteRequest) -> tuple[str, list[str]]:
    return r.collection, list(r.ids)


def scan_request(r: pb.ScanRequest) -> tuple[str, str, int, bool, bool]:
    """Unset with_vectors and with_metadata mean true."""
    vectors = r.with_vectors if r.HasField("with_vectors") else True
    with_metadata = r.with_metadata if r.HasField("with_metadata") else True
    return r.collection, _after(r.page_token), r.limit, vectors, with_metadata


def count_request(r: pb.CountRequest) -> tuple[str, Metadata]:
    return r.collection, metadata(r.where, "where")


def search_request(
    r: pb.SearchRequest,
) -> tuple[str, Query, int, float | None, list[str], Metadata, dict[str, float]]:
    min_score = r.min_score if r.HasField("min_score") else None
    return (r.collection, query(r.query), r.k, min_score, list(r.exclude),
            metadata(r.where, "where"), dict(r.search_params))  # fmt: skip


def search_batch_request(
    r: pb.SearchBatchRequest,
) -> tuple[str, list[Query], int, float | None, list[str], Metadata, dict[str, float]]:
    min_score = r.min_score if r.HasField("min_score") else None
    return (r.collection, _queries(r.queries, "queries"), r.k, min_score, list(r.exclude),
            metadata(r.where, "where"), dict(r.search_params))  # fmt: skip


def distance_request(
    r: pb.DistanceRequest,
) -> tuple[SpaceRef, list[Query], list[Query], Metric | None, bool]:
    return space(r), _queries(r.a, "a"), _queries(r.b, "b"), metric(r.metric), r.matrix


def most_similar_request(r: pb.MostSimilarRequest) -> tuple[
    str, list[tuple[Query, float | None]], list[tuple[Query, float | None]], int, str
]:  # fmt: skip
    return (r.collection, weighted(r.positive, "positive"), weighted(r.negative, "negative"),
            r.k, method(r.method))  # fmt: skip


def doesnt_match_request(r: pb.DoesntMatchRequest) -> tuple[SpaceRef, list[Query]]:
    return space(r), _queries(r.items, "items")


def compare_request(r: pb.CompareRequest) -> tuple[list[str], Query, int]:
    return list(r.collections), query(r.query), r.k


def mean_vector_request(
    r: pb.MeanVectorRequest,
) -> tuple[SpaceRef, list[Query], list[float], bool, bool]:
    pre = r.pre_normalize if r.HasField("pre_normalize") else True
    return space(r), _queries(r.items, "items"), list(r.weights), pre, r.post_normalize


def method(value: pb.AnalogyMethod) -> str:
    if value not in METHODS:
        raise InvalidInput(f"unknown analogy method {value}; use ADD or MUL", field="method")
    return METHODS[value]

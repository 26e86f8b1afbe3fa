"""The SDK's values as protobuf messages and back: items, queries, points, and the answers'
parts (neighbours, stored items, infos). With `_convert` (one Op per call) and `wire`, the
only SDK modules that touch generated code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

import numpy as np

from . import wire
from ._types import (
    BackupInfo,
    CollectionInfo,
    EncoderInfo,
    Item,
    Neighbor,
    Neighbors,
    Point,
    Provenance,
    Query,
    Ref,
    ReplicaInfo,
    StoredItem,
    Sum,
    Tensor,
)
from .v1 import embedspace_pb2 as pb
from .wire import Scalar

METRICS = {"cosine": pb.METRIC_COSINE, "dot": pb.METRIC_DOT, "l2": pb.METRIC_L2}
METRIC_NAMES = {v: k for k, v in METRICS.items()}
ITEM_KINDS = {pb.ITEM_KIND_TEXT: "text", pb.ITEM_KIND_TENSOR: "tensor",
              pb.ITEM_KIND_RECORD: "record", pb.ITEM_KIND_VECTOR: "vector"}  # fmt: skip
METHODS = {"add": pb.ANALOGY_METHOD_ADD, "mul": pb.ANALOGY_METHOD_MUL}


def metric(metric: str | None) -> pb.Metric:
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


def queries(values: Any) -> tuple[list[pb.Query], bool]:
    """(messages, whether a single query was given)."""
    if isinstance(values, list | tuple) or (isinstance(values, np.ndarray) and values.ndim == 2):
        return [query(v) for v in values], False
    return [query(values)], True


def space(call: str, collection: str | None, encoder: str | None) -> dict[str, str]:
    """The `space` oneof of Distance, DoesntMatch and MeanVector: a collection or an encoder."""
    if (collection is None) == (encoder is None):
        given = "both" if collection is not None else "neither"
        raise ValueError(f"{call} takes exactly one of collection= or encoder=; got {given}")
    return {"collection": collection} if collection is not None else {"encoder": encoder or ""}


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


def backup_info(b: pb.BackupInfo) -> BackupInfo:
    created = b.created.ToDatetime(tzinfo=UTC)
    return BackupInfo(b.backup, b.path, b.count, b.collection, b.encoder, b.bytes, created,
                      b.shards or 1)  # fmt: skip


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


def stored_item(s: pb.StoredItem) -> StoredItem:
    vector = wire.unpack(s.vector) if s.HasField("vector") else None
    return StoredItem(s.id, vector, wire.from_values(s.metadata))


def search_fields(
    k: int,
    min_score: float | None,
    exclude: Sequence[str],
    where: Mapping[str, Scalar] | None,
    search_params: Mapping[str, float] | None,
) -> dict[str, Any]:
    """The fields SearchRequest and SearchBatchRequest share."""
    return {"k": k, "min_score": min_score, "exclude": list(exclude),
            "where": wire.to_values(where or {}),
            "search_params": dict(search_params or {})}  # fmt: skip


def as_list(values: Any) -> list[Any]:
    # gensim accepts a lone key for positive/negative; so do we.
    if isinstance(values, str | Ref | np.ndarray | Sum):
        return [values]
    return list(values)


# ---------------------------------------------------------------- points


class BadPoint(ValueError):
    """A point that cannot be put on the wire; `field` names its offending part."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def point_message(
    key: str, source: Item | None, vector: Any, metadata: Mapping[str, Scalar]
) -> pb.UpsertPoint:
    """An UpsertPoint of an item to embed (`source`) or a vector."""
    message = pb.UpsertPoint(id=key)
    _set_metadata(message, metadata)
    _set_source(message, source, vector)
    return message


# Setting a map's Values in place builds each once; wire.to_value then a copy into the map
# costs several times more, which shows when loading millions of points.
_SETTERS = {str: "string_value", bool: "bool_value", int: "int_value", float: "double_value"}


def _set_metadata(message: pb.UpsertPoint, metadata: Mapping[str, Scalar]) -> None:
    """Fills `message.metadata` as wire.to_values would."""
    entries = message.metadata
    for key, value in metadata.items():
        setter = _SETTERS.get(type(value))
        if setter is None:
            entries[str(key)].CopyFrom(wire.to_value(value))
        else:
            setattr(entries[str(key)], setter, value)


def _set_source(message: pb.UpsertPoint, source: Item | None, vector: Any) -> None:
    """Sets the item to embed, or the vector, in place (wire.pack's packed form)."""
    if source is not None:
        message.item.CopyFrom(item(source))
        return
    array = np.asarray(vector, np.float32)
    if array.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional; got shape {array.shape}")
    message.vector.dim = array.shape[0]
    message.vector.data = array.astype("<f4", copy=False).tobytes()


def _framed(n: int) -> int:
    """The bytes a length-delimited field of n bytes takes: tag, varint length, body."""
    return 1 + max(1, (n.bit_length() + 6) // 7) + n


def upsert_point(p: Point) -> tuple[Any, int]:
    """A Point as an UpsertPoint message, and the bytes it adds to an UpsertRequest. Raises
    BadPoint naming the part (item, vector, metadata) that cannot be converted."""
    message = pb.UpsertPoint()
    try:
        _set_metadata(message, p.metadata)
    except (TypeError, ValueError, AttributeError) as e:
        raise BadPoint("metadata", str(e)) from None
    try:
        message.id = p.id
        _set_source(message, p.item, p.vector)
    except (TypeError, ValueError) as e:
        raise BadPoint("vector" if p.vector is not None else "item", str(e)) from None
    return message, _framed(message.ByteSize())


def upsert_request_bytes(collection: str) -> int:
    """The bytes of an UpsertRequest naming `collection`, before its points."""
    return _framed(len(collection.encode())) if collection else 0

"""Small frozen domain objects the engine works with; no protobuf here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.float32]
Scalar: TypeAlias = str | int | float | bool
Metadata: TypeAlias = Mapping[str, Scalar]


class Metric(StrEnum):
    COSINE = "cosine"
    DOT = "dot"
    L2 = "l2"


class ItemKind(StrEnum):
    TEXT = "text"
    TENSOR = "tensor"
    RECORD = "record"
    VECTOR = "vector"


@dataclass(frozen=True)
class Text:
    text: str
    kind = ItemKind.TEXT


@dataclass(frozen=True, eq=False)
class Tensor:
    array: FloatArray
    kind = ItemKind.TENSOR


@dataclass(frozen=True)
class Record:
    fields: Metadata
    kind = ItemKind.RECORD


@dataclass(frozen=True, eq=False)
class VectorItem:
    """A precomputed vector handed to an encoder of kind `vector`."""

    array: FloatArray
    kind = ItemKind.VECTOR


Item: TypeAlias = Text | Tensor | Record | VectorItem


@dataclass(frozen=True)
class ItemQuery:
    item: Item


@dataclass(frozen=True)
class IdQuery:
    id: str


@dataclass(frozen=True, eq=False)
class VectorQuery:
    array: FloatArray


@dataclass(frozen=True)
class SumQuery:
    terms: tuple[tuple[Query, float], ...]


Query: TypeAlias = ItemQuery | IdQuery | VectorQuery | SumQuery


@dataclass(frozen=True)
class Provenance:
    kind: str
    path: str = ""
    sha256: str = ""
    loss: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EncoderInfo:
    name: str
    dim: int
    metric: Metric
    item_kind: ItemKind
    provenance: Provenance
    tensor_shape: tuple[int, ...] = ()
    record_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplicaInfo:
    """One copy of one shard of a collection: the Ray node holding it ("" when it is not
    placed), whether it is live (answers reads, takes writes), the last write it applied
    and how many vectors it holds."""

    shard: int
    replica: int
    node: str
    live: bool
    seq: int
    count: int


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    encoder: str
    index: str
    metric: Metric | None
    dim: int
    count: int
    search_params: Mapping[str, float] = field(default_factory=dict)
    quarantined: str = ""  # why the collection was set aside at start; "" when it serves
    # How many shards split it and how many copies of each are kept, and where each copy
    # is (empty for a collection in the data directory).
    shards: int = 1
    replicas: int = 1
    placement: tuple[ReplicaInfo, ...] = ()


@dataclass(frozen=True, eq=False)
class StoredItem:
    id: str
    vector: FloatArray
    metadata: Metadata


@dataclass(frozen=True)
class BackupInfo:
    """A backup in the server's backup folder."""

    backup: str
    path: Path
    count: int
    collection: str
    encoder: str
    bytes: int
    created: datetime  # UTC
    shards: int = 1


@dataclass(frozen=True)
class RejectedPoint:
    """A point a bulk upsert left out: which message of the stream, which point in it."""

    request: int
    point: int
    id: str
    field: str
    reason: str


@dataclass(frozen=True)
class Neighbor:
    id: str
    score: float
    metadata: Metadata


class Hits(list[Neighbor]):
    """Neighbours, best first, from a collection some of whose shards did not answer:
    `missing` names them, and the list covers the rest of the collection. Whatever gives
    neighbours may give a Hits; a plain list means the answer is complete."""

    def __init__(self, iterable: Iterable[Neighbor] = (), missing: Iterable[int] = ()) -> None:
        super().__init__(iterable)
        self.missing: tuple[int, ...] = tuple(missing)

    def __repr__(self) -> str:
        return f"Hits({list.__repr__(self)}, missing={self.missing!r})"


@dataclass(frozen=True, eq=False)
class UpsertPoint:
    id: str
    item: Item | None
    vector: FloatArray | None
    metadata: Metadata


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    replaced: int


@dataclass(frozen=True, eq=False)
class DistanceResult:
    distances: FloatArray  # (rows, cols) for a matrix, (n,) for pairs
    metric: Metric


@dataclass(frozen=True, eq=False)
class AnalogyResult:
    neighbors: list[Neighbor]
    vector: FloatArray | None


@dataclass(frozen=True, eq=False)
class OddOneOut:
    index: int
    similarities: FloatArray

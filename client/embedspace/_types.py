"""The SDK's value types: what queries are made of and what calls return."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias, Union

import numpy as np
import numpy.typing as npt

from .wire import FloatArray, Scalar


@dataclass(frozen=True)
class Ref:
    """A stored item, by id, used as a query."""

    id: str


@dataclass(frozen=True, eq=False)
class Tensor:
    """A tensor item (for encoders of images and other fixed-shape inputs)."""

    array: npt.ArrayLike


@dataclass(frozen=True)
class Sum:
    """A weighted sum of queries: sum(weight * vector(query)), e.g.
    `Sum([(Ref("king"), 1), (Ref("man"), -1), (Ref("woman"), 1)])`."""

    terms: Sequence[tuple[Query, float]]


# A query: text to embed, a raw vector, a stored item, a tensor or record item, or a sum.
Query: TypeAlias = Union[str, "np.ndarray[tuple[int], np.dtype[np.floating]]", Ref, Tensor,
                         Mapping[str, Scalar], Sum]  # fmt: skip
# An item to embed: text, a tensor, a record, or a precomputed vector.
Item: TypeAlias = Union[str, Tensor, Mapping[str, Scalar], "np.ndarray[tuple[int], np.dtype[np.floating]]"]  # fmt: skip  # noqa: E501


@dataclass(frozen=True)
class Provenance:
    kind: str
    path: str
    sha256: str
    loss: str
    details: Mapping[str, str]


@dataclass(frozen=True)
class EncoderInfo:
    name: str
    dim: int
    metric: str
    item_kind: str
    tensor_shape: tuple[int, ...]
    record_fields: tuple[str, ...]
    provenance: Provenance


@dataclass(frozen=True)
class ReplicaInfo:
    """One copy of one shard of a collection: the Ray node holding it ("" when it is not
    placed), whether it is live (answers reads, takes writes), the last write it applied
    (`seq`) and how many vectors it holds."""

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
    metric: str
    dim: int
    count: int
    search_params: Mapping[str, float] = field(default_factory=dict)
    # Why the server set the collection aside at start (damaged files); "" when it serves.
    quarantined: str = ""
    # How many shards split the collection and how many copies of each are kept, and
    # where each copy is (empty for a collection in the server's data directory).
    shards: int = 1
    replicas: int = 1
    placement: tuple[ReplicaInfo, ...] = ()


@dataclass(frozen=True)
class Neighbor:
    id: str
    score: float
    metadata: Mapping[str, Scalar] = field(default_factory=dict)


class Neighbors(list[Neighbor]):
    """Neighbours best first: a list that also says which shards of a sharded collection
    had no live replica (`missing_shards`); the list covers the rest of the collection,
    and `partial` is true when it does not cover all of it."""

    def __init__(
        self, neighbors: Iterable[Neighbor] = (), missing_shards: Iterable[int] = ()
    ) -> None:
        super().__init__(neighbors)
        self.missing_shards: tuple[int, ...] = tuple(missing_shards)

    @property
    def partial(self) -> bool:
        return bool(self.missing_shards)

    def __repr__(self) -> str:
        if not self.missing_shards:
            return list.__repr__(self)
        return f"Neighbors({list.__repr__(self)}, missing_shards={self.missing_shards!r})"


@dataclass(frozen=True, eq=False)
class StoredItem:
    """A stored item; `vector` is None when it was left out (`scan(with_vectors=False)`)."""

    id: str
    vector: FloatArray | None
    metadata: Mapping[str, Scalar]


class Items(list[StoredItem]):
    """The stored items of some ids, in the order asked: a list that also names the ids
    that are not stored (`missing_ids`, in the order asked)."""

    def __init__(self, items: Iterable[StoredItem] = (), missing_ids: Iterable[str] = ()) -> None:
        super().__init__(items)
        self.missing_ids: list[str] = list(missing_ids)

    def __repr__(self) -> str:
        return f"Items({list.__repr__(self)}, missing_ids={self.missing_ids!r})"


@dataclass(frozen=True, eq=False)
class Page:
    """One page of a scan, in id order: pass `next_page_token` to get the next one ("" after
    the last page). `total`: how many items the collection holds."""

    items: list[StoredItem]
    total: int
    next_page_token: str


@dataclass(frozen=True, eq=False)
class Comparison:
    """One query under several collections: `neighbors[name]` for each, and `jaccard`,
    the Jaccard@k overlap of their neighbour ids (rows and columns in `collections` order).
    `partial`: some collection's answer left out shards (see its `missing_shards`)."""

    collections: list[str]
    encoders: list[str]
    neighbors: dict[str, Neighbors]
    jaccard: FloatArray

    @property
    def partial(self) -> bool:
        return any(n.partial for n in self.neighbors.values())


@dataclass(frozen=True)
class BackupInfo:
    """A backup in the server's backup folder: `restore(backup, ...)` makes a collection of
    it. `collection` and `encoder`: what it was taken of; `bytes`: its size on disk;
    `created`: when it was written (UTC)."""

    backup: str
    path: str
    count: int
    collection: str
    encoder: str
    bytes: int
    created: datetime
    shards: int = 1


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    replaced: int


@dataclass(frozen=True, eq=False)
class Point:
    """One point for `upsert_many`: an id and exactly one of `item` (embedded by the
    collection's encoder) or `vector` (stored as given), with optional metadata."""

    id: str
    item: Item | None = None
    vector: npt.ArrayLike | None = None
    metadata: Mapping[str, Scalar] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.item is None) == (self.vector is None):
            given = "both" if self.item is not None else "neither"
            raise ValueError(
                f"point {self.id!r}: give exactly one of item= or vector=; got {given}"
            )


@dataclass(frozen=True)
class Rejection:
    """A point `upsert_many` could not store: its position in the points given (`index`),
    its id, the offending part of the point (`vector`, `item`, `metadata.colour`...; ""
    when the whole point) and why."""

    index: int
    id: str
    field: str
    reason: str


@dataclass(frozen=True)
class IngestSummary:
    """What `upsert_many` did: how many ids were new and how many replaced a stored item,
    the points it could not store (by position), how long it took, and how many points
    the server acknowledged (`points`: inserted + replaced + rejected by the server)."""

    inserted: int
    replaced: int
    rejected: list[Rejection]
    seconds: float
    points: int


@dataclass(frozen=True, eq=False)
class Analogy(Sequence[Neighbor]):
    """The answer to an analogy: neighbours best first (indexable like a list), and for
    method "add" the composed unit vector that was searched. `missing_shards`: the shards
    of a sharded collection that had no live replica (`partial` when there are any)."""

    neighbors: list[Neighbor]
    vector: FloatArray | None
    missing_shards: tuple[int, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.missing_shards)

    def __len__(self) -> int:
        return len(self.neighbors)

    def __iter__(self) -> Iterator[Neighbor]:
        return iter(self.neighbors)

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        return self.neighbors[i]

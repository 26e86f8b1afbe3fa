"""The SDK's value types: what queries are made of and what calls return."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
    id: str
    vector: FloatArray
    metadata: Mapping[str, Scalar]


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
    """Where the server wrote a backup: `name` restores it."""

    name: str
    path: str
    count: int


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    replaced: int


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

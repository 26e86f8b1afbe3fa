"""The SDK's value types: what queries are made of and what calls return."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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


@dataclass(frozen=True)
class Neighbor:
    id: str
    score: float
    metadata: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class StoredItem:
    id: str
    vector: FloatArray
    metadata: Mapping[str, Scalar]


@dataclass(frozen=True, eq=False)
class Comparison:
    """One query under several collections: `neighbors[name]` for each, and `jaccard`,
    the Jaccard@k overlap of their neighbour ids (rows and columns in `collections` order)."""

    collections: list[str]
    encoders: list[str]
    neighbors: dict[str, list[Neighbor]]
    jaccard: FloatArray


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
    method "add" the composed unit vector that was searched."""

    neighbors: list[Neighbor]
    vector: FloatArray | None

    def __len__(self) -> int:
        return len(self.neighbors)

    def __iter__(self) -> Iterator[Neighbor]:
        return iter(self.neighbors)

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        return self.neighbors[i]

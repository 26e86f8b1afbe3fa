"""What the engine may ask of a collection, and of the backend that keeps collections.

The engine uses these methods and nothing else, so a collection whose vectors live in
several processes (shards answering through the same methods, their answers merged) plugs
in without a change to the engine. Every method asks for a bounded amount of data: ranking
for arithmetic is pushed down (`rank`), so no caller pulls every stored vector out.

The FAISS collection (collection.py) and the data directory (store.py) are the first
implementations; tests/sharded.py splits each collection over two shards.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..arithmetic import Ranking
from ..errors import InvalidInput
from ..types import (
    CollectionInfo,
    FloatArray,
    Metadata,
    Metric,
    Neighbor,
    Scalar,
    StoredItem,
    UpsertResult,
)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"collection name {name!r} is invalid: use 1-64 characters of [A-Za-z0-9_.-], "
            "starting with a letter or digit"
        )


@dataclass(frozen=True)
class Spec:
    name: str
    encoder: str
    index: str
    metric: Metric
    dim: int
    search_params: tuple[tuple[str, float], ...] = ()
    # How many shards split the collection (by a stable hash of the id), and how many
    # copies of each are kept; a backend that cannot honour them refuses them in `new`.
    shards: int = 1
    replicas: int = 1


class VectorCollection(ABC):
    """Vectors under string ids, with metadata; thread-safe."""

    spec: Spec

    @abstractmethod
    def info(self) -> CollectionInfo: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def get(self, keys: Sequence[str], *, missing_ok: bool = False) -> list[StoredItem]:
        """The stored items, in the order asked; IdNotFound for an unknown id, unless
        `missing_ok`, when unknown ids are left out."""

    @abstractmethod
    def scan(
        self, after: str, limit: int, *, vectors: bool = True, metadata: bool = True
    ) -> tuple[list[StoredItem], int]:
        """At most `limit` items whose id is greater than `after` ("": from the first), in
        id order (code point order, which is UTF-8 byte order), and how many items the
        collection holds. An item stored throughout a scan comes exactly once, whatever is
        written between its pages. Without `vectors` each vector is empty (shape (0,));
        without `metadata` each metadata is {}."""

    @abstractmethod
    def count(self, where: Mapping[str, Scalar] | None = None) -> int:
        """How many items, or how many whose metadata holds each pair of `where` (matched
        as search's `where` is)."""

    @abstractmethod
    def upsert(
        self, keys: Sequence[str], vectors: FloatArray, metadata: Sequence[Metadata]
    ) -> UpsertResult:
        """Inserts or replaces items durably, all of the batch or none of it."""

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> int:
        """Deletes durably; returns how many of the ids were stored."""

    @abstractmethod
    def check_search_params(self, params: Mapping[str, float]) -> None:
        """Raises InvalidInput unless every search parameter applies to this index."""

    @abstractmethod
    def search(
        self,
        queries: FloatArray,
        k: int,
        *,
        exclude: Iterable[str] = (),
        where: Mapping[str, Scalar] | None = None,
        min_score: float | None = None,
        params: Mapping[str, float] | None = None,
    ) -> list[list[Neighbor]]:
        """The k best neighbours of each query row, best first, after the filters."""

    @abstractmethod
    def rank(self, ranking: Ranking, k: int, exclude: Iterable[str] = ()) -> list[Neighbor]:
        """The k stored vectors with the highest `ranking.scores`, best first (ties in the
        order the collection stores them), leaving out `exclude`: exact, over every stored
        vector."""


class Backend(ABC):
    """Makes, keeps and removes collections: the data directory, or shards elsewhere."""

    @abstractmethod
    def load_all(
        self, *, quarantine: bool = False
    ) -> tuple[dict[str, VectorCollection], dict[str, str]]:
        """Every stored collection, and (with `quarantine`) the damaged ones' reasons."""

    def refresh(self, known: Mapping[str, VectorCollection]) -> dict[str, VectorCollection] | None:
        """The collections as they are now, for a backend that other servers share (they
        create and drop too), keeping the `known` objects of names still there; None for a
        backend that only this server changes."""
        return None

    @abstractmethod
    def new(self, spec: Spec) -> VectorCollection:
        """An empty collection, not stored yet (`create` stores it)."""

    @abstractmethod
    def read_backup(self, path: Path, name: str) -> VectorCollection:
        """The collection a backup holds, under `name`, not stored yet."""

    @abstractmethod
    def create(self, collection: VectorCollection) -> None:
        """Stores a new collection, all of it or nothing."""

    @abstractmethod
    def save(self, collection: VectorCollection) -> bool:
        """Persists what changed since the last save (compacting logs, rebuilding indexes
        heavy with tombstones); returns whether there was anything."""

    @abstractmethod
    def drop(self, collection: VectorCollection) -> None:
        """Removes the collection; later writes to it fail."""

    @abstractmethod
    def backup(self, collection: VectorCollection, path: Path) -> int:
        """Writes a consistent copy of the collection to `path`; returns its count."""

    @abstractmethod
    def close(self) -> None: ...

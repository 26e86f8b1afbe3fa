"""A test-only collection split over two in-process shards by a hash of the id, and its
backend. It answers through the collection interface alone (index/base.py), merging the
shards' answers as a distributed collection would; the congruence suites run against it to
show the engine needs nothing more than that interface. A test may take shards `down`:
searches and rankings then answer from the others and name the missing ones (types.Hits),
and scans and counts, which cannot leave a shard out, answer Unavailable naming it, as a
collection whose shard has no live replica does."""

from __future__ import annotations

import heapq
import itertools
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from embedspace_server.arithmetic import Ranking
from embedspace_server.errors import Unavailable
from embedspace_server.index.backups import shard_path
from embedspace_server.index.base import Backend, Spec, VectorCollection
from embedspace_server.index.collection import Collection
from embedspace_server.index.factory import build_index
from embedspace_server.index.snapshot import read_snapshot, write_snapshot
from embedspace_server.index.vectors import checked_vectors
from embedspace_server.types import (
    CollectionInfo,
    FloatArray,
    Hits,
    Metadata,
    Neighbor,
    Scalar,
    StoredItem,
    UpsertResult,
)

SHARDS = 2


def _best(hits: Iterable[Neighbor], k: int) -> list[Neighbor]:
    return sorted(hits, key=lambda h: -h.score)[:k]


class ShardedCollection(VectorCollection):
    def __init__(self, spec: Spec, shards: list[Collection]) -> None:
        self.spec = spec
        self.shards = shards
        self.down: set[int] = set()  # shards that answer no search or ranking

    def _up(self) -> tuple[list[Collection], tuple[int, ...]]:
        """The shards that answer, and those that are down."""
        up = [s for i, s in enumerate(self.shards) if i not in self.down]
        return up, tuple(sorted(self.down))

    def _all(self) -> list[Collection]:
        """Every shard, for a call that cannot leave one out; Unavailable if one is down."""
        if self.down:
            raise Unavailable(
                f"shard {min(self.down)} of collection {self.spec.name!r} has no live replica; "
                "its ids cannot be read or written until a replica is back"
            )
        return self.shards

    def _split(self, keys: Sequence[str]) -> list[list[int]]:
        """The positions of `keys` that each shard owns."""
        parts: list[list[int]] = [[] for _ in self.shards]
        for i, key in enumerate(keys):
            parts[zlib.crc32(key.encode()) % len(self.shards)].append(i)
        return parts

    def info(self) -> CollectionInfo:
        s = self.spec
        return CollectionInfo(
            s.name, s.encoder, s.index, s.metric, s.dim, len(self), dict(s.search_params)
        )

    def __len__(self) -> int:
        """Of every shard, down or not (as info() on a cluster counts the shards it can)."""
        return sum(len(shard) for shard in self.shards)

    def get(self, keys: Sequence[str], *, missing_ok: bool = False) -> list[StoredItem]:
        found: dict[str, StoredItem] = {}
        for shard, part in zip(self.shards, self._split(keys), strict=True):
            got = shard.get([keys[i] for i in part], missing_ok=missing_ok)
            found.update((item.id, item) for item in got)
        return [found[key] for key in keys if key in found]

    def scan(
        self, after: str, limit: int, *, vectors: bool = True, metadata: bool = True
    ) -> tuple[list[StoredItem], int]:
        """Each shard's first page after `after`, merged in id order."""
        answers = [
            shard.scan(after, limit, vectors=vectors, metadata=metadata) for shard in self._all()
        ]
        merged = heapq.merge(*(page for page, _ in answers), key=lambda item: item.id)
        return list(itertools.islice(merged, limit)), sum(total for _, total in answers)

    def count(self, where: Mapping[str, Scalar] | None = None) -> int:
        return sum(shard.count(where) for shard in self._all())

    def upsert(
        self, keys: Sequence[str], vectors: FloatArray, metadata: Sequence[Metadata]
    ) -> UpsertResult:
        """Checked whole before any shard is written, as a cluster's front end does."""
        vectors = checked_vectors(self.spec, keys, vectors)
        inserted = replaced = 0
        for shard, part in zip(self.shards, self._split(keys), strict=True):
            if part:
                result = shard.upsert(
                    [keys[i] for i in part], vectors[part], [metadata[i] for i in part]
                )
                inserted, replaced = inserted + result.inserted, replaced + result.replaced
        return UpsertResult(inserted, replaced)

    def delete(self, keys: Sequence[str]) -> int:
        return sum(
            shard.delete([keys[i] for i in part])
            for shard, part in zip(self.shards, self._split(keys), strict=True)
        )

    def check_search_params(self, params: Mapping[str, float]) -> None:
        self.shards[0].check_search_params(params)

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
        exclude = list(exclude)
        up, missing = self._up()
        answers = [
            shard.search(
                queries, k, exclude=exclude, where=where, min_score=min_score, params=params
            )
            for shard in up
        ]
        return [
            Hits(_best([h for a in per_query for h in a], k), missing)
            for per_query in zip(*answers, strict=True)
        ]

    def rank(self, ranking: Ranking, k: int, exclude: Iterable[str] = ()) -> list[Neighbor]:
        exclude = list(exclude)
        up, missing = self._up()
        return Hits(_best([h for shard in up for h in shard.rank(ranking, k, exclude)], k), missing)


class ShardedBackend(Backend):
    """Keeps sharded collections in memory (a server restart forgets them); a backup is one
    snapshot file per shard."""

    def load_all(
        self, *, quarantine: bool = False
    ) -> tuple[dict[str, VectorCollection], dict[str, str]]:
        return {}, {}

    def new(self, spec: Spec) -> VectorCollection:
        return ShardedCollection(spec, [Collection(spec, build_index(spec)) for _ in range(SHARDS)])

    def read_backup(self, path: Path, name: str) -> VectorCollection:
        shards = [read_snapshot(shard_path(path, i), name) for i in range(SHARDS)]
        return ShardedCollection(shards[0].spec, shards)

    def create(self, collection: VectorCollection) -> None:
        pass  # in memory only

    def save(self, collection: VectorCollection) -> bool:
        return False

    def drop(self, collection: VectorCollection) -> None:
        assert isinstance(collection, ShardedCollection)
        for shard in collection.shards:
            with shard.lock:
                shard.dropped = True

    def backup(self, collection: VectorCollection, path: Path) -> int:
        assert isinstance(collection, ShardedCollection)
        path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        for i, shard in enumerate(collection.shards):
            header, blob, _ = shard.state()
            spec = {**header["spec"], "shards": SHARDS}
            write_snapshot(shard_path(path, i), {**header, "spec": spec, "shard": i}, blob)
            count += sum(key is not None for key in header["keys"])
        return count

    def close(self) -> None:
        pass


__all__ = ["SHARDS", "ShardedBackend", "ShardedCollection"]

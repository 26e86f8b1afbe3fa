"""A test-only collection split over two in-process shards by a hash of the id, and its
backend. It answers through the collection interface alone (index/base.py), merging the
shards' answers as a distributed collection would; the congruence suites run against it to
show the engine needs nothing more than that interface. A test may take shards `down`:
searches and rankings then answer from the others and name the missing ones (types.Hits),
as a collection whose shard has no live replica does."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from embedspace_server.arithmetic import Ranking
from embedspace_server.index.base import Backend, Spec, VectorCollection
from embedspace_server.index.collection import Collection
from embedspace_server.index.factory import build_index
from embedspace_server.index.snapshot import read_snapshot, write_snapshot
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
        return sum(len(shard) for shard in self.shards)

    def get(self, keys: Sequence[str]) -> list[StoredItem]:
        out: list[StoredItem | None] = [None] * len(keys)
        for shard, part in zip(self.shards, self._split(keys), strict=True):
            for i, item in zip(part, shard.get([keys[i] for i in part]), strict=True):
                out[i] = item
        return [item for item in out if item is not None]

    def scan(self, offset: int, limit: int) -> tuple[list[StoredItem], int]:
        items: list[StoredItem] = []
        for shard in self.shards:
            if len(items) >= limit:
                break
            got, total = shard.scan(offset, limit - len(items))
            items += got
            offset = max(0, offset - total)
        return items, len(self)

    def upsert(
        self, keys: Sequence[str], vectors: FloatArray, metadata: Sequence[Metadata]
    ) -> UpsertResult:
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
        shards = [read_snapshot(_shard_path(path, i), name) for i in range(SHARDS)]
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
            write_snapshot(_shard_path(path, i), header, blob)
            count += sum(key is not None for key in header["keys"])
        return count

    def close(self) -> None:
        pass


def _shard_path(path: Path, i: int) -> Path:
    """Shard 0 is the backup's own file (so that the server finds it by name)."""
    return path if i == 0 else path.with_name(f"{path.name}.shard{i}")


__all__ = ["SHARDS", "ShardedBackend", "ShardedCollection"]

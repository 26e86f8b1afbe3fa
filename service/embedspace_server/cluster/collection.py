"""A sharded, replicated collection as a front end sees it: the collection interface
(index/base.py) answered by shard replicas on a Ray cluster.

Ids go to shards by a CRC-32 of their UTF-8 bytes, a hash that never changes between
processes or versions. Writes go to each shard's leader (which makes them durable on every
replica in sync before it answers); a front end retries a write whose leader was lost on the
next leader, under the same write id, so it is applied once. Reads ask one replica in sync
per shard and merge: for exact indexes the merged answer is what one collection holding
every vector gives; a scan merges each shard's first page after the same id, so pages are
exact. A shard with no live replica fails the calls that need its ids, and scans and counts,
which need every shard (UNAVAILABLE, naming the shard); searches and rankings answer from the
other shards and say which were missing (`Hits.missing`).
"""

from __future__ import annotations

import heapq
import itertools
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import ray

from ..arithmetic import Ranking
from ..errors import EmbedspaceServerError, Unavailable
from ..index.base import Spec, VectorCollection
from ..index.collection import Collection
from ..index.factory import build_index
from ..index.vectors import checked_vectors
from ..index.wal import OP_DELETE, OP_UPSERT
from ..types import (
    CollectionInfo,
    FloatArray,
    Hits,
    Metadata,
    Neighbor,
    ReplicaInfo,
    Scalar,
    StoredItem,
    UpsertResult,
)
from .replica import NotLeader, Write, _gather

# How long a front end waits for one shard's answer.
CALL_TIMEOUT_S = 60.0
# How long a front end trusts its view of the shards before asking the catalog again.
VIEW_TTL_S = 1.0
# How many leaders a write tries before it gives up.
WRITE_ATTEMPTS = 4

View = list[tuple[int, Any, list[Any]]]  # per shard: (epoch, leader, replicas in sync)


class ShardUnavailable(Unavailable):
    def __init__(self, name: str, shard: int, why: str = "") -> None:
        super().__init__(
            f"shard {shard} of collection {name!r} has no live replica"
            + (f" ({why})" if why else "")
            + "; its ids cannot be read or written until a replica is back"
        )
        self.shard = shard


def shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode()) % shards


def _best(hits: Iterable[Neighbor], k: int) -> list[Neighbor]:
    """Shards' answers merged: stable, so ties keep shard order, then each shard's own."""
    return sorted(hits, key=lambda h: -h.score)[:k]


class RayCollection(VectorCollection):
    def __init__(self, spec: Spec, catalog: Any) -> None:
        self.spec = spec
        self._catalog = catalog
        self._view: View | None = None
        self._view_at = 0.0
        self._turn = itertools.count()
        # Checks search parameters without a trip to a shard.
        local = replace(spec, shards=1, replicas=1)
        self._prototype = Collection(local, build_index(local))

    # ------------------------------------------------------------ the shards

    def view(self, refresh: bool = False) -> View:
        if refresh or self._view is None or time.monotonic() - self._view_at > VIEW_TTL_S:
            self._view = _unwrapped(self._catalog.view.remote(self.spec.name))
            self._view_at = time.monotonic()
        return self._view

    def _split(self, keys: Sequence[str]) -> dict[int, list[int]]:
        parts: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            parts.setdefault(shard_of(key, self.spec.shards), []).append(i)
        return parts

    def _read(self, shards: Iterable[int], ask: Callable[[int, Any], Any]) -> dict[int, Any]:
        """Each shard's answer from one replica in sync (the next one when one fails), or
        a ShardUnavailable. Domain errors a replica raises are raised here."""
        tries = dict.fromkeys(shards, 0)
        pending = set(tries)
        out: dict[int, Any] = {}
        turn = next(self._turn)
        refresh = False
        while pending:
            view = self.view(refresh)
            refs = {}
            for i in sorted(pending):
                live = view[i][2]
                if tries[i] >= len(live):
                    out[i] = ShardUnavailable(self.spec.name, i)
                else:
                    refs[i] = ask(i, live[(turn + tries[i]) % len(live)])
            pending = set()
            for i, answer in _gather(refs, CALL_TIMEOUT_S).items():
                if isinstance(answer, EmbedspaceServerError):
                    raise answer
                if isinstance(answer, BaseException):
                    tries[i] += 1
                    pending.add(i)
                else:
                    out[i] = answer
            refresh = True
        return out

    def _write(self, parts: Mapping[int, Write]) -> dict[int, Any]:
        """Each shard's write applied by its leader, retried on the next leader if one is
        lost; raises ShardUnavailable for a shard with none."""
        out: dict[int, Any] = {}
        pending = dict(parts)
        view = self.view()
        for attempt in range(WRITE_ATTEMPTS):
            if attempt:
                time.sleep(0.25 * attempt)  # the catalog may still be electing a leader
            refs = {}
            for i, w in pending.items():
                leader = view[i][1]
                if leader is None:
                    view = self._failover(i, view[i][0])
                    leader = view[i][1]
                if leader is None:
                    raise ShardUnavailable(self.spec.name, i)
                refs[i] = leader.write.remote(w)
            failed: dict[int, BaseException] = {}
            for i, answer in _gather(refs, CALL_TIMEOUT_S).items():
                if isinstance(answer, EmbedspaceServerError) and not isinstance(answer, NotLeader):
                    raise answer
                if isinstance(answer, BaseException):
                    failed[i] = answer
                else:
                    out[i] = answer
            if not failed:
                return out
            pending = {i: pending[i] for i in failed}
            for i in failed:
                view = self._failover(i, view[i][0])
        i, why = next(iter(failed.items()))
        raise ShardUnavailable(self.spec.name, i, str(why))

    def _failover(self, shard: int, epoch: int) -> View:
        self._view = _unwrapped(self._catalog.failover.remote(self.spec.name, shard, epoch))
        self._view_at = time.monotonic()
        return self._view

    def _all(self, ask: Callable[[int, Any], Any]) -> dict[int, Any]:
        """Every shard's answer; raises the first ShardUnavailable."""
        answers = self._read(range(self.spec.shards), ask)
        for answer in answers.values():
            if isinstance(answer, BaseException):
                raise answer
        return answers

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        return self.count()

    def info(self) -> CollectionInfo:
        """Describes the collection even with shards missing: the count is then of the
        shards that answered, and the placement says which replicas are live."""
        s = self.spec
        placement = tuple(
            ReplicaInfo(**p) for p in _unwrapped(self._catalog.placement.remote(s.name))
        )
        counts = self._read(range(s.shards), lambda i, r: r.count.remote()).values()
        count = sum(c for c in counts if isinstance(c, int))
        return CollectionInfo(
            s.name, s.encoder, s.index, s.metric, s.dim, count, dict(s.search_params),
            shards=s.shards, replicas=s.replicas, placement=placement,
        )  # fmt: skip

    def get(self, keys: Sequence[str], *, missing_ok: bool = False) -> list[StoredItem]:
        parts = self._split(keys)
        answers = self._read(
            parts, lambda i, r: r.get.remote([keys[j] for j in parts[i]], missing_ok)
        )
        found: dict[str, StoredItem] = {}
        for answer in answers.values():
            if isinstance(answer, BaseException):
                raise answer
            found.update((item.id, item) for item in answer)
        return [found[key] for key in keys if key in found]

    def scan(
        self, after: str, limit: int, *, vectors: bool = True, metadata: bool = True
    ) -> tuple[list[StoredItem], int]:
        """Each shard's first `limit` items after `after`, merged in id order: the first
        `limit` of those are the collection's."""
        answers = self._all(lambda i, r: r.scan.remote(after, limit, vectors, metadata))
        pages = [answers[i][0] for i in range(self.spec.shards)]
        merged = heapq.merge(*pages, key=lambda item: item.id)
        return list(itertools.islice(merged, max(limit, 0))), sum(a[1] for a in answers.values())

    def count(self, where: Mapping[str, Scalar] | None = None) -> int:
        where = dict(where) if where else None
        return sum(self._all(lambda i, r: r.count.remote(where)).values())

    def check_search_params(self, params: Mapping[str, float]) -> None:
        self._prototype.check_search_params(params)

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
        exclude, where = list(exclude), dict(where) if where else None
        params = dict(params) if params else None
        ref = ray.put(np.ascontiguousarray(queries, np.float32))
        answers, missing = self._some(
            lambda i, r: r.search.remote(ref, k, exclude, where, min_score, params)
        )
        per_query = zip(*answers, strict=True) if answers else [[] for _ in range(len(queries))]
        return [Hits(_best((h for a in q for h in a), k), missing) for q in per_query]

    def rank(self, ranking: Ranking, k: int, exclude: Iterable[str] = ()) -> list[Neighbor]:
        exclude = list(exclude)
        answers, missing = self._some(lambda i, r: r.rank.remote(ranking, k, exclude))
        return Hits(_best((h for a in answers for h in a), k), missing)

    def _some(self, ask: Callable[[int, Any], Any]) -> tuple[list[Any], tuple[int, ...]]:
        """The answers of the shards that have a live replica, in shard order, and the
        shards that had none; raises if no shard answered."""
        answers = self._read(range(self.spec.shards), ask)
        missing = tuple(i for i, a in sorted(answers.items()) if isinstance(a, BaseException))
        if len(missing) == self.spec.shards:
            raise answers[0]
        return [a for _, a in sorted(answers.items()) if not isinstance(a, BaseException)], missing

    # ------------------------------------------------------------ writing

    def upsert(
        self, keys: Sequence[str], vectors: FloatArray, metadata: Sequence[Metadata]
    ) -> UpsertResult:
        """Checked whole before any shard is written; a shard that fails fails the call,
        and the shards written keep the write (an upsert is safe to retry)."""
        vectors = checked_vectors(self.spec, keys, vectors)
        parts = self._split(keys)
        writes = {
            i: Write(
                uuid.uuid4().hex,
                OP_UPSERT,
                [keys[j] for j in part],
                vectors[part],
                [dict(metadata[j]) for j in part],
            )
            for i, part in parts.items()
        }
        results = self._write(writes).values()
        return UpsertResult(sum(r.inserted for r in results), sum(r.replaced for r in results))

    def delete(self, keys: Sequence[str]) -> int:
        parts = self._split(list(dict.fromkeys(keys)))
        unique = list(dict.fromkeys(keys))
        writes = {
            i: Write(uuid.uuid4().hex, OP_DELETE, [unique[j] for j in part])
            for i, part in parts.items()
        }
        return sum(self._write(writes).values())

    # ------------------------------------------------------------ backups

    def states(self) -> list[tuple[dict[str, Any], Any]]:
        """A consistent copy of each shard (each at its own moment)."""
        answers = self._all(lambda i, r: r.state.remote())
        return [answers[i] for i in range(self.spec.shards)]


def _unwrapped(ref: Any) -> Any:
    """The answer of a call to the catalog, with the domain error it raised unwrapped."""
    try:
        return ray.get(ref, timeout=CALL_TIMEOUT_S)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, EmbedspaceServerError):
            raise e.cause from None
        raise
    except ray.exceptions.RayError as e:
        raise Unavailable(f"the cluster's catalog did not answer: {e}") from None


__all__ = ["RayCollection", "ShardUnavailable", "shard_of"]

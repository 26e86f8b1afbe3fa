"""One collection: a FAISS index, the string ids of its vectors and their metadata, its
write-ahead log, and the answers to searches and rankings.

Vectors live only in FAISS, which reconstructs a stored vector to use it as a query (lossy
indexes such as SQ or PQ give back their approximation); where each one sits is the
layout's business (layout.py). Every public method takes the collection's lock, so readers
never see a half-applied write.

Per stored vector the bookkeeping is the id (idmap.IdMap, ~90 B) and metadata only for ids
that have some: Python objects cost more than the codes of a quantized index.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..arithmetic import Ranking
from ..errors import CollectionNotFound, FailedPrecondition, IdNotFound
from ..observe import metrics, tracing
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
from .base import Spec, VectorCollection, check_name
from .factory import build_index, faiss_module
from .hits import best_by_score, matches, neighbours
from .idmap import IdMap
from .layout import Layout, faiss_errors
from .params import apply_params, check_param, search_parameters
from .vectors import checked_vectors, prepared
from .wal import (
    OP_DELETE,
    OP_UPSERT,
    Journal,
    decode_delete,
    decode_upsert,
    encode_delete,
    encode_upsert,
)

log = logging.getLogger(__name__)

# Rebuild an index that cannot remove vectors once this share of it is tombstones.
REBUILD_FRACTION = 0.2

# Arithmetic ranks the stored vectors this many at a time.
RANK_CHUNK = 65536


class Collection(VectorCollection):
    """The FAISS collection; see the module's docstring."""

    def __init__(
        self,
        spec: Spec,
        index: Any,
        keys: list[str | None] | None = None,
        metadata: dict[str, Metadata] | None = None,
        seq: int = 0,
    ) -> None:
        """`keys` (the id at each position of `index`, None for a tombstone) and `metadata`
        are taken over, not copied: a collection of a million ids should not hold two copies
        while it loads. The spec's search parameters are set on `index`."""
        self.spec = spec
        self.lock = threading.RLock()
        apply_params(index, spec)
        self._layout = Layout(spec, index, [] if keys is None else keys)
        # Only ids with some metadata are here; the others have {}.
        self._metadata: dict[str, Metadata] = {} if metadata is None else metadata
        # Bumped on every write; the store saves when it differs from what it saved last.
        self.version = 0
        # The write-ahead log (set by the store) and the last seq applied.
        self.journal: Journal | None = None
        self.seq = seq
        # Set by drop: a write that raced the drop must fail, not vanish.
        self.dropped = False

    @property
    def _index(self) -> Any:
        return self._layout.index

    @property
    def _ids(self) -> IdMap:
        return self._layout.ids

    @classmethod
    def create(
        cls,
        name: str,
        encoder: str,
        index: str,
        metric: Metric,
        dim: int,
        search_params: Mapping[str, float] | None = None,
    ) -> Collection:
        check_name(name)
        spec = Spec(name, encoder, index, metric, dim, tuple(sorted((search_params or {}).items())))
        return cls(spec, build_index(spec))

    # ------------------------------------------------------------ reading

    def info(self) -> CollectionInfo:
        with self.lock:
            count = len(self._ids)
        s = self.spec
        return CollectionInfo(
            s.name, s.encoder, s.index, s.metric, s.dim, count, dict(s.search_params)
        )

    def __len__(self) -> int:
        with self.lock:
            return len(self._ids)

    @property
    def tombstones(self) -> int:
        """How many vectors in the index belong to no id (indexes that cannot remove)."""
        with self.lock:
            return self._layout.tombstones

    def get(self, keys: Sequence[str], *, missing_ok: bool = False) -> list[StoredItem]:
        with self.lock:
            labels = self._ids.find(keys)
            if not missing_ok:
                for key, label in zip(keys, labels, strict=True):
                    if label is None:
                        raise IdNotFound(f"no id {key!r} in collection {self.spec.name!r}")
            found = [(k, label) for k, label in zip(keys, labels, strict=True) if label is not None]
            return self._items(found, vectors=True, metadata=True)

    def scan(
        self, after: str, limit: int, *, vectors: bool = True, metadata: bool = True
    ) -> tuple[list[StoredItem], int]:
        with self.lock:
            keys = self._ids.after(after, limit)
            labels = self._ids.find(keys)
            found = [(k, label) for k, label in zip(keys, labels, strict=True) if label is not None]
            return self._items(found, vectors=vectors, metadata=metadata), len(self._ids)

    def _items(
        self, found: Sequence[tuple[str, int]], *, vectors: bool, metadata: bool
    ) -> list[StoredItem]:
        """The stored items at (id, label) pairs; call holding the lock."""
        if vectors and found:
            labels = np.fromiter((label for _, label in found), np.int64, len(found))
            with faiss_errors(self.spec, "give back stored vectors"):
                rows: Any = self._index.reconstruct_batch(labels)
        else:
            rows = itertools.repeat(np.zeros(0, np.float32))
        return [
            StoredItem(key, row, self._metadata.get(key, {}) if metadata else {})
            for (key, _), row in zip(found, rows, strict=False)
        ]

    def count(self, where: Mapping[str, Scalar] | None = None) -> int:
        with self.lock:
            if not where:
                return len(self._ids)
            return sum(1 for md in self._metadata.values() if matches(md, where))

    def metadata(self, key: str) -> Metadata:
        with self.lock:
            return self._metadata.get(key, {})

    def check_search_params(self, params: Mapping[str, float]) -> None:
        """Raises InvalidInput unless every parameter applies to this index and is in range."""
        for name, value in params.items():
            check_param(self._index, self.spec, name, value)

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
        """The k best neighbours of each query row, best first, after filters; timed (the
        wait for a writer included) for metrics and traces."""
        start = time.perf_counter()
        with tracing.child("embedspace.faiss", {"embedspace.batch.size": len(queries)}):
            hits = self._search(queries, k, exclude, where, min_score, params)
        metrics.observe_faiss(self.spec.name, len(queries), time.perf_counter() - start)
        return hits

    def _search(
        self,
        queries: FloatArray,
        k: int,
        exclude: Iterable[str],
        where: Mapping[str, Scalar] | None,
        min_score: float | None,
        params: Mapping[str, float] | None,
    ) -> list[list[Neighbor]]:
        excluded = set(exclude)
        queries = self._prepare(queries)
        overrides = search_parameters(self._index, self.spec, params or {})
        with self.lock:
            if not self._ids:
                return [[] for _ in range(len(queries))]
            n = self._index.ntotal  # tombstones included
            excluded_n = len(excluded) + self.tombstones
            allowed = None
            if where:
                allowed = {key for key, md in self._metadata.items() if matches(md, where)}
            # Over-fetch so that filters still leave k answers; widen until each query has
            # k hits or has reached min_score.
            fetch = min(n, k + excluded_n) if allowed is None else min(n, max(4 * k, 64))
            while True:
                with faiss_errors(self.spec, "search"):
                    scores, ints = self._index.search(queries, fetch, params=overrides)
                metric, by_label, metadata = self.spec.metric, self._ids.by_label, self._metadata
                answers = [
                    neighbours(s, i, k, metric, by_label, metadata, excluded, allowed, min_score)
                    for s, i in zip(scores, ints, strict=True)
                ]
                if fetch >= n or all(done for _, done in answers):
                    return [hits for hits, _ in answers]
                fetch = min(n, fetch * 4)

    def rank(self, ranking: Ranking, k: int, exclude: Iterable[str] = ()) -> list[Neighbor]:
        """Exact, over every stored vector, RANK_CHUNK at a time (ties in insertion order, as
        gensim's stable sort)."""
        excluded = set(exclude)
        with self.lock:
            labels = self._ids.labels()

            def scores(chunk: Any) -> FloatArray:
                with faiss_errors(self.spec, "give back stored vectors"):
                    return ranking.scores(self._index.reconstruct_batch(chunk))

            best = best_by_score(labels, scores, k + len(excluded), RANK_CHUNK)
            keys = [self._ids.by_label[label] for label, _ in best]
            return [
                Neighbor(key, score, self._metadata.get(key, {}))
                for key, (_, score) in zip(keys, best, strict=True)
                if key is not None and key not in excluded
            ][:k]

    # ------------------------------------------------------------ writing

    def _prepare(self, vectors: FloatArray) -> FloatArray:
        return prepared(self.spec, vectors)

    def upsert(
        self, keys: Sequence[str], vectors: FloatArray, metadata: Sequence[Metadata]
    ) -> UpsertResult:
        """Inserts or replaces items; validates everything, then logs, then applies."""
        vectors = checked_vectors(self.spec, keys, vectors)
        with self.lock:
            self._check_live()
            if not self._index.is_trained:
                self._layout.train(vectors)  # deterministic, so replaying the record trains alike
            if self.journal is not None:
                self.seq = self.journal.append(OP_UPSERT, encode_upsert(keys, vectors, metadata))
            return self._apply_upsert(keys, vectors, metadata)

    def delete(self, keys: Sequence[str]) -> int:
        with self.lock:
            self._check_live()
            unique = list(dict.fromkeys(keys))
            labels = self._ids.find(unique)
            present = [k for k, label in zip(unique, labels, strict=True) if label is not None]
            if not present:
                return 0
            if self.journal is not None:
                self.seq = self.journal.append(OP_DELETE, encode_delete(present))
            return self._apply_delete(present)

    def replay(self, seq: int, op: int, body: bytes) -> None:
        """Applies one record of the write-ahead log (recovery)."""
        with self.lock:
            if op == OP_UPSERT:
                keys, vectors, metadata = decode_upsert(body, self.spec.dim)
                if not self._index.is_trained:
                    self._layout.train(vectors)
                self._apply_upsert(keys, vectors, metadata)
            elif op == OP_DELETE:
                self._apply_delete(decode_delete(body))
            else:
                raise ValueError(f"unknown log record type {op}")
            self.seq = seq

    def _apply_upsert(
        self, keys: Sequence[str], vectors: FloatArray, metadata: Sequence[Metadata]
    ) -> UpsertResult:
        replaced = self._layout.place(keys, vectors)
        for key, md in zip(keys, metadata, strict=True):
            if md:
                self._metadata[key] = dict(md)
            else:
                self._metadata.pop(key, None)
        self.version += 1
        return UpsertResult(inserted=len(keys) - replaced, replaced=replaced)

    def _apply_delete(self, keys: Sequence[str]) -> int:
        keys = list(dict.fromkeys(keys))
        removed = self._layout.remove(keys)
        for key in keys:
            self._metadata.pop(key, None)
        self.version += 1
        return removed

    def needs_rebuild(self) -> bool:
        with self.lock:
            total = self._index.ntotal
            return bool(total > 0 and self.tombstones >= REBUILD_FRACTION * total)

    def rebuild(self) -> bool:
        """Rebuilds the index without its tombstones, labelling the vectors afresh 0..n-1;
        returns whether it did. The new index is built outside the lock while writes go on;
        they are recorded, and applied to the new index too before it is swapped in, so
        that steady writes cannot starve the rebuild."""
        layout = self._layout
        with self.lock:
            if not layout.tombstones or layout.changes is not None:
                return False
            keys, vectors = layout.vectors()
            layout.changes = []
        try:
            fresh = Layout.build(self.spec, keys, vectors)
        except RuntimeError as e:
            fresh, error = None, str(e)
        with self.lock:
            changes, layout.changes = layout.changes, None
            if fresh is None or self.dropped:
                if fresh is None:
                    log.warning(
                        "rebuild of %r failed, keeping tombstones: %s", self.spec.name, error
                    )
                return False
            try:
                fresh.apply(changes)
            except FailedPrecondition as e:
                log.warning("rebuild of %r failed, keeping tombstones: %s", self.spec.name, e)
                return False
            self._layout = fresh
            self.version += 1
            return True

    def _check_live(self) -> None:
        if self.dropped:
            raise CollectionNotFound(f"collection {self.spec.name!r} was dropped")

    # ------------------------------------------------------------ persistence

    def state(self) -> tuple[dict[str, Any], Any, int]:
        """A consistent copy of everything to persist: (header, index bytes, version).
        Call it holding the lock to do more in the same consistent moment.

        The header's keys are the id at each position of the index (insertion order),
        None for a tombstone: a list of strings parses into little more than the strings."""
        with self.lock:
            by_label = self._ids.by_label
            header = {
                "spec": {
                    "name": self.spec.name,
                    "encoder": self.spec.encoder,
                    "index": self.spec.index,
                    "metric": self.spec.metric.value,
                    "dim": self.spec.dim,
                    "search_params": dict(self.spec.search_params),
                },
                "seq": self.seq,
                "keys": list(by_label),
                "metadata": {k: dict(v) for k, v in self._metadata.items()},
            }
            blob = faiss_module().serialize_index(self._index)
            return header, blob, self.version

"""The engine: embed, store, search, measure and do arithmetic over encoders and
collections, composed of rooms: the catalogue (which collections exist), queries (spaces,
query vectors, limits), items (upsert, get, scan, count, delete), relations (distances and
gensim's arithmetic) and the batchers (batching.py). It knows nothing of gRPC; every method
is blocking and thread-safe, except the `start_*` methods, which queue work for a shared
batch and return a future. The rooms' calls are the engine's own (`engine.upsert`,
`engine.distance`...).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

import numpy as np

from .batching import BatchedEncoder, SearchCoalescer, SearchRequest, then
from .catalogue import Catalogue
from .config import Settings
from .encoders import EncoderRegistry
from .errors import CollectionNotFound, InvalidInput, blaming
from .index.base import Backend, VectorCollection
from .items import Items
from .queries import Queries, Space
from .relations import Relations
from .threads import thread_initializer
from .types import (
    BackupInfo,
    CollectionInfo,
    EncoderInfo,
    FloatArray,
    IdQuery,
    Item,
    Metadata,
    Metric,
    Neighbor,
    Query,
)

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self, registry: EncoderRegistry, backend: Backend, settings: Settings | None = None
    ) -> None:
        self.registry = registry
        self.limits = settings or Settings()
        self.catalogue = Catalogue(registry, backend, self.limits)
        self.queries = Queries(registry, self.catalogue, self.limits)
        self.items = Items(self.catalogue, self.queries, self.limits)
        self.relations = Relations(self.queries)
        self._coalescers: dict[str, SearchCoalescer] = {}
        self._thread_initializer = thread_initializer(self.limits)
        self.catalogue.on_drop = self._close_coalescer
        # The rooms' calls.
        self.upsert = self.items.upsert
        self.upsert_valid = self.items.upsert_valid
        self.get = self.items.get
        self.scan = self.items.scan
        self.count = self.items.count
        self.delete = self.items.delete
        self.distance = self.relations.distance
        self.analogy = self.relations.analogy
        self.doesnt_match = self.relations.doesnt_match
        self.mean_vector = self.relations.mean_vector

    @property
    def quarantined(self) -> dict[str, str]:
        return self.catalogue.quarantined

    # ------------------------------------------------------------ encoders

    def encoders(self) -> list[EncoderInfo]:
        return self.registry.infos()

    def embed(self, encoder: str, items: Sequence[Item]) -> FloatArray:
        self.queries.check_batch(len(items), "items", "items")
        enc = self.registry.get(encoder)
        self.queries.check_texts(items)
        return enc.encode(items, _item_fields(len(items)))

    def embeds_in_batches(self, encoder: str) -> bool:
        """Whether concurrent embeds for `encoder` share forward passes (`start_embed`)."""
        return isinstance(self.registry.get(encoder), BatchedEncoder)

    def start_embed(self, encoder: str, items: Sequence[Item]) -> Future[FloatArray]:
        """Validates the items and queues them for the encoder's next shared forward pass,
        without blocking. Only for an encoder that `embeds_in_batches`."""
        self.queries.check_batch(len(items), "items", "items")
        enc = self.registry.get(encoder)
        if not isinstance(enc, BatchedEncoder):
            raise TypeError(f"encoder {encoder!r} does not embed in batches; use embed()")
        self.queries.check_texts(items)
        return enc.encode_nowait(items, _item_fields(len(items)))

    # ------------------------------------------------------------ collections

    def create_collection(
        self,
        name: str,
        encoder: str,
        index: str = "",
        metric: Metric | None = None,
        search_params: Mapping[str, float] | None = None,
        *,
        shards: int = 1,
        replicas: int = 1,
    ) -> CollectionInfo:
        return self.catalogue.create(
            name, encoder, index, metric, search_params, shards=shards, replicas=replicas
        )

    def collections(self) -> list[CollectionInfo]:
        return self.catalogue.infos()

    def collection(self, name: str) -> VectorCollection:
        return self.catalogue.get(name)

    def describe(self, name: str) -> CollectionInfo:
        return self.catalogue.describe(name)

    def drop_collection(self, name: str) -> None:
        self.catalogue.drop(name)

    def backup(self, collection: str, name: str = "") -> BackupInfo:
        """Writes a consistent snapshot of a collection into the backup folder (`name`
        defaults to "<collection>-<UTC time>")."""
        coll = self.catalogue.get(collection)  # an unknown collection before a bad name
        with blaming("backup"):
            return self.catalogue.backup(coll.spec.name, name)

    def backups(self) -> list[BackupInfo]:
        """The backups in the backup folder, oldest first."""
        return self.catalogue.backups()

    def restore(self, backup: str, collection: str) -> CollectionInfo:
        """Creates `collection` from a backup."""
        return self.catalogue.restore(backup, collection)

    def snapshot(self) -> int:
        """Saves every collection that changed since its last save; returns how many."""
        return self.catalogue.save()

    # ------------------------------------------------------------ search and distance

    def coalesces_search(self) -> bool:
        """Whether concurrent searches of a collection share FAISS calls (search_batch > 1)."""
        return self.limits.search_batch > 1

    def start_search(
        self,
        collection: str,
        query: Query,
        k: int = 10,
        *,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        where: Metadata | None = None,
        params: Mapping[str, float] | None = None,
    ) -> Future[list[Neighbor]]:
        """Validates the search and queues it for its collection's next coalesced FAISS
        call. Blocks only to embed items or read stored ids the query names, and to search
        at once where coalescing is off (search_batch 1). The neighbours are the list the
        collection gave: a types.Hits where some of its shards did not answer."""
        space = self._search_space(collection, k, min_score, params)
        coll = space.collection
        assert coll is not None
        vector = self.queries.resolve(space, [query], ["query"])[0]
        request = SearchRequest(
            vector, k, tuple(exclude), dict(where or {}), min_score, dict(params or {})
        )
        if not self.coalesces_search():
            done: Future[list[Neighbor]] = Future()
            done.set_result(request.run(coll, [vector])[0])
            return done
        queued = self._coalescer(coll).submit_nowait([request])
        return then(queued, lambda answers: answers[0])

    def search_batch(
        self,
        collection: str,
        queries: Sequence[Query],
        k: int = 10,
        *,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        where: Metadata | None = None,
        params: Mapping[str, float] | None = None,
    ) -> list[list[Neighbor]]:
        """Many queries with one set of parameters: resolved together (their items embedded
        in one batch) and searched in one call of the collection; one answer per query, as
        `start_search` gives it."""
        self.queries.check_batch(len(queries), "queries", "queries")
        space = self._search_space(collection, k, min_score, params)
        coll = space.collection
        assert coll is not None
        fields = [f"queries[{i}]" for i in range(len(queries))]
        vectors = self.queries.resolve(space, queries, fields)
        return coll.search(
            vectors, k, exclude=tuple(exclude), where=dict(where or {}), min_score=min_score,
            params=dict(params or {}),
        )  # fmt: skip

    def _search_space(
        self, collection: str, k: int, min_score: float | None, params: Mapping[str, float] | None
    ) -> Space:
        """The collection of a search, once its parameters are checked."""
        self.queries.check_k(k)
        self.queries.check_min_score(min_score)
        space = self.queries.collection_space(collection)
        assert space.collection is not None
        with blaming("search_params"):  # one caller's error stays its own
            space.collection.check_search_params(params or {})
        return space

    def _coalescer(self, coll: VectorCollection) -> SearchCoalescer:
        """The search batcher of a collection: concurrent searches share FAISS calls."""
        name = coll.spec.name
        batcher = self._coalescers.get(name)  # without the lock: the usual case
        if batcher is not None and batcher.collection is coll:
            return batcher
        with self.catalogue.lock:
            if not self.catalogue.is_current(coll):
                raise CollectionNotFound(f"collection {name!r} was dropped")
            batcher = self._coalescers.get(name)
            if batcher is None or batcher.collection is not coll:
                if batcher is not None:
                    batcher.close()
                batcher = SearchCoalescer(coll, self.limits, self._thread_initializer)
                self._coalescers[name] = batcher
            return batcher

    def _close_coalescer(self, name: str) -> None:
        with self.catalogue.lock:
            batcher = self._coalescers.pop(name, None)
        if batcher is not None:
            batcher.close()

    def close(self) -> None:
        """Stops the batch threads."""
        with self.catalogue.lock:
            batchers = list(self._coalescers.values())
            self._coalescers.clear()
        for batcher in batchers:
            batcher.close()

    def compare(
        self, collections: Sequence[str], query: Query, k: int = 10
    ) -> tuple[list[tuple[str, str, list[Neighbor]]], FloatArray]:
        """The same query over several collections: each one's (name, encoder, neighbours,
        a types.Hits where shards were missing) and the Jaccard@k matrix of their ids."""
        if len(collections) < 2 or len(set(collections)) != len(collections):
            raise InvalidInput(
                "compare needs two or more different collections", field="collections"
            )
        self.queries.check_batch(len(collections), "collections", "collections")
        exclude = [query.id] if isinstance(query, IdQuery) else []
        answers = []
        for name in collections:
            hits = self.start_search(name, query, k, exclude=exclude).result()
            answers.append((name, self.collection(name).spec.encoder, hits))
        sets = [{h.id for h in hits} for _, _, hits in answers]
        jaccard = np.array(
            [[len(a & b) / len(a | b) if a | b else 1.0 for b in sets] for a in sets], np.float32
        )
        return answers, jaccard


def _item_fields(n: int) -> list[str]:
    return [f"items[{i}]" for i in range(n)]


__all__ = ["Engine"]

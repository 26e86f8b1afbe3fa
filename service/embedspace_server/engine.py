"""The engine: embed, store, search, measure and do arithmetic over encoders and
collections, composed of rooms: the catalogue (which collections exist), queries (spaces,
query vectors, limits), arithmetic (gensim's, in numpy) and the batchers (batching.py). It
knows nothing of gRPC; every method is blocking and thread-safe, except the `start_*`
methods, which queue work for a shared batch and return a future.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from .arithmetic import Ranking, check_weights, pairwise_distances, unit, weighted_mean
from .batching import BatchedEncoder, SearchCoalescer, SearchRequest, then
from .catalogue import Catalogue
from .config import Settings
from .encoders import EncoderRegistry
from .errors import CollectionNotFound, InvalidInput
from .index.base import Backend, VectorCollection
from .queries import Queries
from .threads import thread_initializer
from .types import (
    AnalogyResult,
    CollectionInfo,
    DistanceResult,
    EncoderInfo,
    FloatArray,
    IdQuery,
    Item,
    ItemQuery,
    Metadata,
    Metric,
    Neighbor,
    OddOneOut,
    Query,
    StoredItem,
    Text,
    UpsertPoint,
    UpsertResult,
)
from .vecmath import check_vector, unit_rows

log = logging.getLogger(__name__)


def _is_key(query: Query) -> bool:
    """gensim normalises keys (here: stored ids and embedded items), not raw vectors."""
    return isinstance(query, IdQuery | ItemQuery)


class Engine:
    def __init__(
        self, registry: EncoderRegistry, backend: Backend, settings: Settings | None = None
    ) -> None:
        self.registry = registry
        self.limits = settings or Settings()
        self.catalogue = Catalogue(registry, backend, self.limits)
        self.queries = Queries(registry, self.catalogue, self.limits)
        self._coalescers: dict[str, SearchCoalescer] = {}
        self._thread_initializer = thread_initializer(self.limits)
        self.catalogue.on_drop = self._close_coalescer

    @property
    def quarantined(self) -> dict[str, str]:
        return self.catalogue.quarantined

    # ------------------------------------------------------------ encoders

    def encoders(self) -> list[EncoderInfo]:
        return self.registry.infos()

    def embed(self, encoder: str, items: Sequence[Item]) -> FloatArray:
        self.queries.check_batch(len(items), "items")
        enc = self.registry.get(encoder)
        self.queries.check_texts(items)
        return enc.encode(items)

    def embeds_in_batches(self, encoder: str) -> bool:
        """Whether concurrent embeds for `encoder` share forward passes (`start_embed`)."""
        return isinstance(self.registry.get(encoder), BatchedEncoder)

    def start_embed(self, encoder: str, items: Sequence[Item]) -> Future[FloatArray]:
        """Validates the items and queues them for the encoder's next shared forward pass,
        without blocking. Only for an encoder that `embeds_in_batches`."""
        self.queries.check_batch(len(items), "items")
        enc = self.registry.get(encoder)
        if not isinstance(enc, BatchedEncoder):
            raise TypeError(f"encoder {encoder!r} does not embed in batches; use embed()")
        self.queries.check_texts(items)
        return enc.encode_nowait(items)

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

    def backup(self, collection: str, name: str = "") -> tuple[str, Path, int]:
        return self.catalogue.backup(collection, name)

    def restore(self, name: str, collection: str) -> CollectionInfo:
        return self.catalogue.restore(name, collection)

    def snapshot(self) -> int:
        """Saves every collection that changed since its last save; returns how many."""
        return self.catalogue.save()

    # ------------------------------------------------------------ items

    def upsert(self, collection: str, points: Sequence[UpsertPoint]) -> UpsertResult:
        coll = self.collection(collection)
        self.queries.check_batch(len(points), "points")
        vectors = np.empty((len(points), coll.spec.dim), np.float32)
        to_embed: list[int] = []
        for i, point in enumerate(points):
            self.queries.check_id(i, point.id)
            if (point.item is None) == (point.vector is None):
                raise InvalidInput(f"point {point.id!r} needs exactly one of an item or a vector")
            if point.vector is not None:
                check_vector(point.vector, coll.spec.dim, f"vector of point {point.id!r}")
                vectors[i] = point.vector
            else:
                to_embed.append(i)
                self.queries.check_texts([point.item], [f"point {point.id!r}"])
        if to_embed:
            space = self.queries.space(collection)
            items = [points[i].item for i in to_embed]
            vectors[to_embed] = space.embed(
                [it for it in items if it is not None],
                [f"point {points[i].id!r}" for i in to_embed],
            )
        return coll.upsert([p.id for p in points], vectors, [p.metadata for p in points])

    def get(self, collection: str, ids: Sequence[str]) -> list[StoredItem]:
        self.queries.check_batch(len(ids), "ids")
        return self.collection(collection).get(ids)

    def scan(self, collection: str, offset: int, limit: int) -> tuple[list[StoredItem], int]:
        limit = min(limit or self.limits.max_batch, self.limits.max_batch)
        return self.collection(collection).scan(offset, limit)

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        self.queries.check_batch(len(ids), "ids")
        return self.collection(collection).delete(ids)

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
        self.queries.check_k(k)
        if min_score is not None and not np.isfinite(min_score):
            raise InvalidInput(f"min_score must be a finite number; got {min_score}")
        space = self.queries.space(collection, need_collection=True)
        coll = space.collection
        assert coll is not None
        coll.check_search_params(params or {})  # one caller's error stays its own
        vector = self.queries.resolve(space, [query])[0]
        request = SearchRequest(
            vector, k, tuple(exclude), dict(where or {}), min_score, dict(params or {})
        )
        if not self.coalesces_search():
            done: Future[list[Neighbor]] = Future()
            done.set_result(request.run(coll, [vector])[0])
            return done
        queued = self._coalescer(coll).submit_nowait([request])
        return then(queued, lambda answers: answers[0])

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
            raise InvalidInput("compare needs two or more different collections")
        self.queries.check_batch(len(collections), "collections")
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

    def distance(
        self,
        space_name: str,
        a: Sequence[Query],
        b: Sequence[Query],
        *,
        metric: Metric | None = None,
        matrix: bool = False,
    ) -> DistanceResult:
        space = self.queries.space(space_name)
        if not a or not b:
            raise InvalidInput("distance needs at least one query on each side")
        self.queries.check_batch(max(len(a), len(b)), "queries on one side")
        if not matrix and len(a) != len(b):
            raise InvalidInput(
                f"pairwise distance needs as many queries in a as in b; got {len(a)} and "
                f"{len(b)} (ask for the matrix instead)"
            )
        vectors = self.queries.resolve(space, [*a, *b])
        va, vb = vectors[: len(a)], vectors[len(a) :]
        metric = metric or space.metric
        return DistanceResult(pairwise_distances(va, vb, metric, matrix=matrix), metric)

    # ------------------------------------------------------------ arithmetic (gensim)

    def analogy(
        self,
        collection: str,
        positive: Sequence[tuple[Query, float | None]],
        negative: Sequence[tuple[Query, float | None]] = (),
        k: int = 10,
        *,
        method: str = "add",
    ) -> AnalogyResult:
        """gensim `most_similar` (method "add", 3CosAdd) or `most_similar_cosmul` ("mul");
        the collection ranks its own vectors (its answer, a types.Hits where shards were
        missing, is the result's neighbours as it is)."""
        self.queries.check_k(k)
        space = self.queries.space(collection, need_collection=True)
        coll = space.collection
        assert coll is not None
        terms = [*positive, *negative]
        if not terms or (method == "mul" and not positive):
            raise InvalidInput("analogy needs at least one positive term")
        self.queries.check_batch(len(terms), "analogy terms")
        check_weights([w for _, w in terms if w is not None])
        if method not in ("add", "mul"):
            raise InvalidInput(f"analogy method must be 'add' or 'mul'; got {method!r}")
        if method == "mul" and any(w is not None for _, w in terms):
            raise InvalidInput("method 'mul' (3CosMul) takes no weights")
        queries = [q for q, _ in terms]
        vectors = self.queries.resolve(space, queries)
        excluded = {q.id for q in queries if isinstance(q, IdQuery)} | {
            q.item.text for q in queries if isinstance(q, ItemQuery) and isinstance(q.item, Text)
        }
        key_rows = [_is_key(q) for q in queries]
        vectors[key_rows] = unit_rows(vectors[key_rows])
        if method == "mul":
            ranking = Ranking.mul(vectors[: len(positive)], vectors[len(positive) :])
            return AnalogyResult(coll.rank(ranking, k, excluded), None)
        weights = [
            (1.0 if i < len(positive) else -1.0) if w is None else w
            for i, (_, w) in enumerate(terms)
        ]
        mean = unit(weighted_mean(vectors, weights))
        return AnalogyResult(coll.rank(Ranking.add(mean), k, excluded), mean)

    def doesnt_match(self, space_name: str, items: Sequence[Query]) -> OddOneOut:
        """gensim `doesnt_match`: the item least similar to the mean of all items, each
        unit-normalised (raw vectors too: gensim takes only keys here)."""
        space = self.queries.space(space_name)
        if not items:
            raise InvalidInput("doesnt_match needs at least one item")
        self.queries.check_batch(len(items), "items")
        vectors = unit_rows(self.queries.resolve(space, items))
        mean = unit(weighted_mean(vectors, [1.0] * len(vectors)))
        sims = (vectors @ mean).astype(np.float32)
        return OddOneOut(int(np.argmin(sims)), sims)

    def mean_vector(
        self,
        space_name: str,
        items: Sequence[Query],
        weights: Sequence[float] | None = None,
        *,
        pre_normalize: bool = True,
        post_normalize: bool = False,
    ) -> FloatArray:
        """gensim `get_mean_vector`: sum(w * v) / sum(|w|), keys normalised first if asked."""
        space = self.queries.space(space_name)
        if not items:
            raise InvalidInput("cannot compute a mean with no items")
        self.queries.check_batch(len(items), "items")
        if weights is None or len(weights) == 0:
            weights = [1.0] * len(items)
        if len(weights) != len(items):
            raise InvalidInput(
                f"mean_vector needs one weight per item; got {len(weights)} weights for "
                f"{len(items)} items"
            )
        check_weights(weights)
        vectors = self.queries.resolve(space, items)
        if pre_normalize:
            keys = [_is_key(q) for q in items]
            vectors[keys] = unit_rows(vectors[keys])
        mean = weighted_mean(vectors, weights)
        return unit(mean) if post_normalize else mean


__all__ = ["Engine"]

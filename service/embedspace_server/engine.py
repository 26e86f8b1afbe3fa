"""The engine: embed, store, search, measure and do arithmetic over encoders and
collections. It knows nothing of gRPC; every method is blocking and thread-safe.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .batching import BatchedEncoder, MicroBatcher, then
from .config import Settings
from .encoders import Encoder, EncoderRegistry
from .errors import (
    AlreadyExists,
    CollectionNotFound,
    EmbedspaceServerError,
    FailedPrecondition,
    InvalidInput,
    NotFound,
)
from .index import Collection, CollectionStore
from .index.collection import check_name
from .index.disk import remove_temp_files
from .index.snapshot import read_snapshot
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
    Scalar,
    StoredItem,
    SumQuery,
    Text,
    UpsertPoint,
    UpsertResult,
    VectorQuery,
)
from .vecmath import check_vector, unit_rows

log = logging.getLogger(__name__)

MAX_QUERY_DEPTH = 16
DEFAULT_INDEX = "Flat"
BACKUP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
MAX_ID_CHARS = 1024


@dataclass(frozen=True)
class _Space:
    """A resolved space: its encoder, and its collection when it is one."""

    name: str
    encoder: Encoder | None  # None: a collection whose encoder is not loaded now
    collection: Collection | None

    @property
    def dim(self) -> int:
        if self.collection is not None:
            return self.collection.spec.dim
        assert self.encoder is not None
        return self.encoder.info.dim

    @property
    def metric(self) -> Metric:
        if self.collection is not None:
            return self.collection.spec.metric
        assert self.encoder is not None
        return self.encoder.info.metric

    def embed(self, items: Sequence[Item], labels: Sequence[str] | None = None) -> FloatArray:
        """Items embedded with the space's encoder, checked against the space's dimension."""
        coll = self.collection
        if self.encoder is None:
            assert coll is not None
            raise FailedPrecondition(
                f"collection {coll.spec.name!r} embeds items with encoder "
                f"{coll.spec.encoder!r}, which this server has not loaded"
            )
        if self.encoder.info.dim != self.dim:
            raise FailedPrecondition(
                f"encoder {self.encoder.info.name!r} now gives {self.encoder.info.dim}-d "
                f"vectors but collection {self.name!r} holds {self.dim}-d vectors"
            )
        return self.encoder.encode(items, labels)


def _is_key(query: Query) -> bool:
    """gensim normalises keys (here: stored ids and embedded items), not raw vectors."""
    return isinstance(query, IdQuery | ItemQuery)


class Engine:
    def __init__(
        self, registry: EncoderRegistry, store: CollectionStore, settings: Settings | None = None
    ) -> None:
        self.registry = registry
        self.store = store
        self.limits = settings or Settings()
        loaded, damaged = store.load_all(quarantine=self.limits.quarantine_damaged)
        self._collections: dict[str, Collection] = loaded
        # Collections whose files are damaged, set aside at start with the reason.
        self.quarantined: dict[str, str] = damaged
        self._lock = threading.Lock()  # guards the set of collections and snapshots
        self._coalescers: dict[str, _Coalescer] = {}
        backups = self._backup_folder()
        if backups.is_dir():
            remove_temp_files(backups)  # of backups a crash interrupted

    # ------------------------------------------------------------ encoders

    def encoders(self) -> list[EncoderInfo]:
        return self.registry.infos()

    def embed(self, encoder: str, items: Sequence[Item]) -> FloatArray:
        self._check_batch(len(items), "items")
        enc = self.registry.get(encoder)
        self._check_texts(items)
        return enc.encode(items)

    def embeds_in_batches(self, encoder: str) -> bool:
        """Whether concurrent embeds for `encoder` share forward passes (`start_embed`)."""
        return isinstance(self.registry.get(encoder), BatchedEncoder)

    def start_embed(self, encoder: str, items: Sequence[Item]) -> Future[FloatArray]:
        """Validates the items and queues them for the encoder's next shared forward pass,
        without blocking. Only for an encoder that `embeds_in_batches`."""
        self._check_batch(len(items), "items")
        enc = self.registry.get(encoder)
        if not isinstance(enc, BatchedEncoder):
            raise TypeError(f"encoder {encoder!r} does not embed in batches; use embed()")
        self._check_texts(items)
        return enc.encode_nowait(items)

    # ------------------------------------------------------------ collections

    def create_collection(
        self,
        name: str,
        encoder: str,
        index: str = "Flat",
        metric: Metric | None = None,
        search_params: Mapping[str, float] | None = None,
    ) -> CollectionInfo:
        enc = self.registry.get(encoder)
        self._check_new_name(name, encoder)
        with self._lock:
            self._check_free(name)
            collection = Collection.create(
                name,
                encoder,
                index or DEFAULT_INDEX,
                metric or enc.info.metric,
                enc.info.dim,
                search_params,
            )
            self.store.create(collection)
            self._collections[name] = collection
        return collection.info()

    def _check_new_name(self, name: str, encoder: str) -> None:
        """A collection may share its name only with the encoder it uses."""
        check_name(name)
        if name in self.registry and name != encoder:
            raise InvalidInput(
                f"collection name {name!r} is the name of an encoder; a collection may share "
                f"its name only with the encoder it uses (here {encoder!r})"
            )

    def _check_free(self, name: str) -> None:
        """Call holding the lock."""
        if name in self._collections:
            raise AlreadyExists(f"collection {name!r} already exists")
        if name in self.quarantined:
            raise AlreadyExists(f"collection {name!r} exists and is quarantined: "
                                f"{self.quarantined[name]}")  # fmt: skip

    def collections(self) -> list[CollectionInfo]:
        with self._lock:
            found = list(self._collections.values())
            damaged = sorted(self.quarantined.items())
        return [c.info() for c in found] + [_quarantined_info(n, why) for n, why in damaged]

    def collection(self, name: str) -> Collection:
        try:
            return self._collections[name]
        except KeyError:
            if name in self.quarantined:
                raise FailedPrecondition(
                    f"collection {name!r} is quarantined: {self.quarantined[name]}"
                ) from None
            raise CollectionNotFound(
                f"no collection named {name!r}; existing: {sorted(self._collections)}"
            ) from None

    def describe(self, name: str) -> CollectionInfo:
        if name in self.quarantined:
            return _quarantined_info(name, self.quarantined[name])
        return self.collection(name).info()

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self.store.drop(self.collection(name))
            del self._collections[name]
            batcher = self._coalescers.pop(name, None)
        if batcher is not None:
            batcher.close()

    def backup(self, collection: str, name: str = "") -> tuple[str, Path, int]:
        """Writes a consistent snapshot of a collection into the backup folder while the
        server keeps serving; returns (name, path, count)."""
        coll = self.collection(collection)
        if not name:
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            name = f"{collection}-{stamp}"
        path = self._backup_path(name)
        count = self.store.backup(coll, path)
        return name, path, count

    def restore(self, name: str, collection: str) -> CollectionInfo:
        """Creates `collection` from a backup."""
        path = self._backup_path(name)
        if not path.is_file():
            raise NotFound(f"no backup named {name!r} in {str(path.parent)!r}")
        check_name(collection)
        restored = read_snapshot(path, collection)
        self._check_new_name(collection, restored.spec.encoder)
        with self._lock:
            self._check_free(collection)
            self.store.create(restored)
            self._collections[collection] = restored
        return restored.info()

    def _backup_path(self, name: str) -> Path:
        if not BACKUP_NAME.match(name) or name in (".", ".."):
            raise InvalidInput(
                f"backup name {name!r} is invalid: use 1-128 characters of [A-Za-z0-9_.-]"
            )
        return self._backup_folder() / name

    def _backup_folder(self) -> Path:
        return Path(self.limits.backup_dir or self.limits.data_dir / "backups")

    def ensure_builtin_collections(self) -> list[str]:
        """Creates `xkcd-<space>`, the 949 XKCD colour names under each loaded colour
        encoder, where missing; returns the names created."""
        from .encoders.colour import xkcd_colours

        created = []
        for info in self.encoders():
            name = f"xkcd-{info.name}"
            if info.provenance.kind != "colour" or name in self._collections:
                continue
            self.create_collection(name, info.name)
            points = [
                UpsertPoint(n, Text(n), None, {"hex": _hex(rgb)}) for n, rgb in xkcd_colours()
            ]
            step = self.limits.max_batch
            for i in range(0, len(points), step):
                self.upsert(name, points[i : i + step])
            created.append(name)
            log.info("created built-in collection %r (%d colours)", name, len(points))
        return created

    def snapshot(self) -> int:
        """Rebuilds indexes heavy with tombstones, then snapshots every collection that
        changed since its last save (compacting its log); returns how many were saved."""
        with self._lock:
            collections = list(self._collections.values())
        for c in collections:
            if c.needs_rebuild():
                c.rebuild()
        saved = 0
        with self._lock:
            for c in self._collections.values():
                try:
                    saved += self.store.save(c)
                except EmbedspaceServerError as e:  # the log still holds every write
                    log.warning("collection %r not snapshotted: %s; its log holds every "
                                "acknowledged write", c.spec.name, e)  # fmt: skip
        return saved

    # ------------------------------------------------------------ items

    def upsert(self, collection: str, points: Sequence[UpsertPoint]) -> UpsertResult:
        coll = self.collection(collection)
        self._check_batch(len(points), "points")
        vectors = np.empty((len(points), coll.spec.dim), np.float32)
        to_embed: list[int] = []
        for i, point in enumerate(points):
            if not point.id:
                raise InvalidInput(f"point {i} has an empty id")
            if len(point.id) > MAX_ID_CHARS:
                raise InvalidInput(
                    f"point {i} has an id of {len(point.id)} characters; at most {MAX_ID_CHARS}"
                )
            if (point.item is None) == (point.vector is None):
                raise InvalidInput(f"point {point.id!r} needs exactly one of an item or a vector")
            if point.vector is not None:
                check_vector(point.vector, coll.spec.dim, f"vector of point {point.id!r}")
                vectors[i] = point.vector
            else:
                to_embed.append(i)
                self._check_texts([point.item], [f"point {point.id!r}"])
        if to_embed:
            space = self._space(collection)
            items = [points[i].item for i in to_embed]
            vectors[to_embed] = space.embed(
                [it for it in items if it is not None],
                [f"point {points[i].id!r}" for i in to_embed],
            )
        return coll.upsert([p.id for p in points], vectors, [p.metadata for p in points])

    def get(self, collection: str, ids: Sequence[str]) -> list[StoredItem]:
        self._check_batch(len(ids), "ids")
        return self.collection(collection).get(ids)

    def scan(self, collection: str, offset: int, limit: int) -> tuple[list[StoredItem], int]:
        limit = min(limit or self.limits.max_batch, self.limits.max_batch)
        return self.collection(collection).scan(offset, limit)

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        self._check_batch(len(ids), "ids")
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
        at once where coalescing is off (search_batch 1)."""
        self._check_k(k)
        if min_score is not None and not np.isfinite(min_score):
            raise InvalidInput(f"min_score must be a finite number; got {min_score}")
        space = self._space(collection, need_collection=True)
        assert space.collection is not None
        space.collection.check_search_params(params or {})  # one caller's error stays its own
        vector = self._resolve(space, [query])[0]
        if self.limits.search_batch <= 1:
            done: Future[list[Neighbor]] = Future()
            done.set_result(
                space.collection.search(
                    vector[None], k, exclude=exclude, where=where, min_score=min_score,
                    params=params,
                )[0]
            )  # fmt: skip
            return done
        request = _SearchRequest(
            vector, k, tuple(exclude), dict(where or {}), min_score, dict(params or {})
        )
        queued = self._coalescer(space.collection).submit_nowait([request])
        return then(queued, lambda answers: answers[0])

    def _coalescer(self, coll: Collection) -> MicroBatcher[_SearchRequest, list[Neighbor]]:
        """The search batcher of a collection: concurrent searches share FAISS calls."""
        batcher = self._coalescers.get(coll.spec.name)  # without the lock: the usual case
        if batcher is not None and batcher.collection is coll:
            return batcher
        with self._lock:
            if self._collections.get(coll.spec.name) is not coll:  # dropped meanwhile
                raise CollectionNotFound(f"collection {coll.spec.name!r} was dropped")
            batcher = self._coalescers.get(coll.spec.name)
            if batcher is None or batcher.collection is not coll:
                if batcher is not None:
                    batcher.close()
                batcher = _Coalescer(coll, self.limits)
                self._coalescers[coll.spec.name] = batcher
            return batcher

    def close(self) -> None:
        """Stops the batch threads."""
        with self._lock:
            for batcher in self._coalescers.values():
                batcher.close()
            self._coalescers.clear()

    def compare(
        self, collections: Sequence[str], query: Query, k: int = 10
    ) -> tuple[list[tuple[str, str, list[Neighbor]]], FloatArray]:
        """The same query over several collections: each one's (name, encoder, neighbours)
        and the Jaccard@k matrix of their neighbour ids."""
        if len(collections) < 2 or len(set(collections)) != len(collections):
            raise InvalidInput("compare needs two or more different collections")
        self._check_batch(len(collections), "collections")
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
        space = self._space(space_name)
        if not a or not b:
            raise InvalidInput("distance needs at least one query on each side")
        self._check_batch(max(len(a), len(b)), "queries on one side")
        if not matrix and len(a) != len(b):
            raise InvalidInput(
                f"pairwise distance needs as many queries in a as in b; got {len(a)} and "
                f"{len(b)} (ask for the matrix instead)"
            )
        vectors = self._resolve(space, [*a, *b])
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
        """gensim `most_similar` (method "add", 3CosAdd) or `most_similar_cosmul` ("mul")."""
        self._check_k(k)
        space = self._space(collection, need_collection=True)
        coll = space.collection
        assert coll is not None
        terms = [*positive, *negative]
        if not terms or (method == "mul" and not positive):
            raise InvalidInput("analogy needs at least one positive term")
        self._check_batch(len(terms), "analogy terms")
        _check_weights([w for _, w in terms if w is not None])
        queries = [q for q, _ in terms]
        vectors = self._resolve(space, queries)
        excluded = {q.id for q in queries if isinstance(q, IdQuery)} | {
            q.item.text for q in queries if isinstance(q, ItemQuery) and isinstance(q.item, Text)
        }
        key_rows = [_is_key(q) for q in queries]
        vectors[key_rows] = unit_rows(vectors[key_rows])
        if method == "add":
            weights = [
                (1.0 if i < len(positive) else -1.0) if w is None else w
                for i, (_, w) in enumerate(terms)
            ]
            mean = _unit(_weighted_mean(vectors, weights))
            return AnalogyResult(_rank_all(coll, lambda cos: cos(mean), k, excluded), mean)
        if method != "mul":
            raise InvalidInput(f"analogy method must be 'add' or 'mul'; got {method!r}")
        if any(w is not None for _, w in terms):
            raise InvalidInput("method 'mul' (3CosMul) takes no weights")
        pos, neg = vectors[: len(positive)], vectors[len(positive) :]

        def cosmul(cos: Callable[[FloatArray], FloatArray]) -> FloatArray:
            # gensim most_similar_cosmul: similarities shifted to [0, 1], then
            # prod(positive) / (prod(negative) + 1e-6).
            p = np.prod([(1 + cos(t)) / 2 for t in pos], axis=0)
            n = np.prod([(1 + cos(t)) / 2 for t in neg], axis=0) if len(neg) else 1.0
            out: FloatArray = p / (n + 0.000001)
            return out

        return AnalogyResult(_rank_all(coll, cosmul, k, excluded), None)

    def doesnt_match(self, space_name: str, items: Sequence[Query]) -> OddOneOut:
        """gensim `doesnt_match`: the item least similar to the mean of all items, each
        unit-normalised (raw vectors too: gensim takes only keys here)."""
        space = self._space(space_name)
        if not items:
            raise InvalidInput("doesnt_match needs at least one item")
        self._check_batch(len(items), "items")
        vectors = unit_rows(self._resolve(space, items))
        mean = _unit(_weighted_mean(vectors, [1.0] * len(vectors)))
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
        space = self._space(space_name)
        if not items:
            raise InvalidInput("cannot compute a mean with no items")
        self._check_batch(len(items), "items")
        if weights is None or len(weights) == 0:
            weights = [1.0] * len(items)
        if len(weights) != len(items):
            raise InvalidInput(
                f"mean_vector needs one weight per item; got {len(weights)} weights for "
                f"{len(items)} items"
            )
        _check_weights(weights)
        vectors = self._resolve(space, items)
        if pre_normalize:
            keys = [_is_key(q) for q in items]
            vectors[keys] = unit_rows(vectors[keys])
        mean = _weighted_mean(vectors, weights)
        return _unit(mean) if post_normalize else mean

    # ------------------------------------------------------------ helpers

    def _check_texts(self, items: Sequence[Item | None], labels: Sequence[str] = ()) -> None:
        limit = self.limits.max_text_chars
        for i, item in enumerate(items):
            if isinstance(item, Text) and len(item.text) > limit:
                label = labels[i] if labels else f"item {i}"
                raise InvalidInput(
                    f"{label} is a text of {len(item.text)} characters; at most {limit} "
                    "(max_text_chars)"
                )

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.limits.max_k:
            raise InvalidInput(f"k must be between 1 and {self.limits.max_k}; got {k}")

    def _check_batch(self, n: int, what: str) -> None:
        if n == 0:
            raise InvalidInput(f"no {what} given")
        if n > self.limits.max_batch:
            raise InvalidInput(
                f"too many {what}: {n}; at most {self.limits.max_batch} per call (max_batch)"
            )

    def _space(self, name: str, *, need_collection: bool = False) -> _Space:
        coll = self._collections.get(name)
        if coll is not None:
            loaded = coll.spec.encoder in self.registry
            return _Space(name, self.registry.get(coll.spec.encoder) if loaded else None, coll)
        if need_collection or name in self.quarantined:
            self.collection(name)  # raises CollectionNotFound with the list, or quarantined
        if name not in self.registry:
            raise NotFound(
                f"no collection or encoder named {name!r}; collections: "
                f"{sorted(self._collections)}, encoders: {sorted(e.name for e in self.encoders())}"
            )
        return _Space(name, self.registry.get(name), None)

    def _resolve(self, space: _Space, queries: Sequence[Query]) -> FloatArray:
        """Each query as a vector of the space's dimension; items embedded in one batch."""
        items: list[Item] = []
        budget = [0]

        def collect(q: Query, depth: int) -> None:
            budget[0] -= 1
            if budget[0] < 0:
                raise InvalidInput(
                    f"query has more than {self.limits.max_query_terms} terms (max_query_terms)"
                )
            if depth > MAX_QUERY_DEPTH:
                raise InvalidInput(f"query nests deeper than {MAX_QUERY_DEPTH} weighted sums")
            if isinstance(q, ItemQuery):
                items.append(q.item)
            elif isinstance(q, SumQuery):
                if not q.terms:
                    raise InvalidInput("a weighted sum needs at least one term")
                _check_weights([w for _, w in q.terms])
                for sub, _ in q.terms:
                    collect(sub, depth + 1)

        for q in queries:
            budget[0] = self.limits.max_query_terms  # per query
            collect(q, 0)
        self._check_texts(items)
        embedded = iter(space.embed(items)) if items else iter(())

        def value(q: Query) -> npt.NDArray[np.floating]:
            if isinstance(q, ItemQuery):
                return next(embedded)
            if isinstance(q, IdQuery):
                if space.collection is None:
                    raise InvalidInput(
                        f"query names stored id {q.id!r}, but {space.name!r} is an encoder, "
                        "not a collection"
                    )
                return space.collection.vector(q.id)
            if isinstance(q, VectorQuery):
                check_vector(q.array, space.dim, "query vector")
                return q.array.astype(np.float32, copy=False)
            total = np.zeros(space.dim, np.float64)
            for sub, w in q.terms:
                total += w * value(sub)
            return total

        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            out = np.stack([value(q) for q in queries]).astype(np.float32)
        if not np.isfinite(out).all():
            raise InvalidInput("the query's vector overflows float32")
        return out


@dataclass(frozen=True, eq=False)
class _SearchRequest:
    vector: FloatArray
    k: int
    exclude: tuple[str, ...]
    where: dict[str, Scalar]
    min_score: float | None
    params: dict[str, float]

    def group(self) -> tuple[object, ...]:
        where, params = tuple(sorted(self.where.items())), tuple(sorted(self.params.items()))
        return (self.k, self.exclude, where, self.min_score, params)


class _Coalescer(MicroBatcher[_SearchRequest, list[Neighbor]]):
    """Concurrent searches on one collection gathered into one FAISS call per set of
    parameters (k, exclusions, filter, min_score): each caller gets exactly the answer a
    search of its own would give."""

    def __init__(self, collection: Collection, settings: Settings) -> None:
        self.collection = collection
        super().__init__(
            self._search_all,
            max_items=settings.search_batch,
            max_wait_s=settings.search_wait_ms / 1000,
            name=f"search-{collection.spec.name}",
        )

    def _search_all(self, requests: list[_SearchRequest]) -> list[list[Neighbor]]:
        answers: list[list[Neighbor]] = [[] for _ in requests]
        groups: dict[tuple[object, ...], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.group(), []).append(i)
        for members in groups.values():
            first = requests[members[0]]
            hits = self.collection.search(
                np.stack([requests[i].vector for i in members]),
                first.k,
                exclude=first.exclude,
                where=first.where,
                min_score=first.min_score,
                params=first.params,
            )
            for i, h in zip(members, hits, strict=True):
                answers[i] = h
        return answers


def _quarantined_info(name: str, reason: str) -> CollectionInfo:
    return CollectionInfo(name, "", "", None, 0, 0, {}, quarantined=reason)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def _check_weights(weights: Sequence[float]) -> None:
    bad = [w for w in weights if not np.isfinite(w)]
    if bad:
        raise InvalidInput(f"weights must be finite numbers; got {bad[0]}")


def _weighted_mean(vectors: FloatArray, weights: Sequence[float]) -> FloatArray:
    """sum(w * v) / sum(|w|) as gensim's get_mean_vector, in float64 so that large weights
    do not overflow on the way; a result that does not fit float32 is refused."""
    w = np.asarray(weights, np.float64)
    mean = (w[:, None] * vectors.astype(np.float64)).sum(axis=0)
    total = float(np.abs(w).sum())
    if total > 0:
        mean = mean / total
    out: FloatArray = mean.astype(np.float32)
    if not np.isfinite(out).all():
        raise InvalidInput("the weighted mean overflows float32; use smaller weights")
    return out


def _unit(vector: FloatArray) -> FloatArray:
    out: FloatArray = unit_rows(vector[None])[0]
    return out


def _rank_all(
    coll: Collection,
    score: Callable[[Callable[[FloatArray], FloatArray]], FloatArray],
    k: int,
    excluded: set[str],
) -> list[Neighbor]:
    """Exact ranking over every stored vector, as gensim does: dot(vectors, t) / norms."""
    keys, matrix = coll.all_vectors()
    if not keys:
        return []
    norms = np.linalg.norm(matrix, axis=1)

    def cos(t: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            out: FloatArray = (matrix @ t) / norms
        return out

    scores = score(cos)
    order = np.argsort(-scores, kind="stable")
    hits = []
    for i in order:
        if keys[i] in excluded:
            continue
        hits.append(Neighbor(keys[i], float(scores[i]), coll.metadata(keys[i])))
        if len(hits) == k:
            break
    return hits


def pairwise_distances(
    a: FloatArray, b: FloatArray, metric: Metric, *, matrix: bool = True
) -> FloatArray:
    """Distances between rows: 1 - cosine, minus the dot product, or Euclidean.

    matrix=True gives the len(a) x len(b) matrix; False, one distance per pair of rows.
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if metric is Metric.COSINE:
        a64, b64 = unit_rows(a64), unit_rows(b64)
    if metric is Metric.L2:
        if matrix:
            sq = (a64**2).sum(1)[:, None] + (b64**2).sum(1)[None, :] - 2 * a64 @ b64.T
            out = np.sqrt(np.maximum(sq, 0.0))
        else:
            out = np.linalg.norm(a64 - b64, axis=1)
    else:
        dots = a64 @ b64.T if matrix else (a64 * b64).sum(1)
        out = 1.0 - dots if metric is Metric.COSINE else -dots
    result: FloatArray = out.astype(np.float32)
    return result


__all__ = ["DEFAULT_INDEX", "Engine", "pairwise_distances"]

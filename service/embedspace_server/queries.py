"""Spaces, queries and limits: a name becomes a space (a collection, or an encoder), each
query becomes a vector of that space, and every request is held to the configured limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .arithmetic import check_weights
from .catalogue import Catalogue
from .config import Settings
from .encoders import Encoder, EncoderRegistry
from .errors import FailedPrecondition, InvalidInput, NotFound
from .index.base import VectorCollection
from .types import (
    FloatArray,
    IdQuery,
    Item,
    ItemQuery,
    Metric,
    Query,
    SumQuery,
    Text,
    VectorQuery,
)
from .vecmath import check_vector

MAX_QUERY_DEPTH = 16
MAX_ID_CHARS = 1024


@dataclass(frozen=True)
class Space:
    """A resolved space: its encoder, and its collection when it is one."""

    name: str
    encoder: Encoder | None  # None: a collection whose encoder is not loaded now
    collection: VectorCollection | None

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


class Queries:
    def __init__(self, registry: EncoderRegistry, catalogue: Catalogue, limits: Settings) -> None:
        self.registry = registry
        self.catalogue = catalogue
        self.limits = limits

    def check_texts(self, items: Sequence[Item | None], labels: Sequence[str] = ()) -> None:
        limit = self.limits.max_text_chars
        for i, item in enumerate(items):
            if isinstance(item, Text) and len(item.text) > limit:
                label = labels[i] if labels else f"item {i}"
                raise InvalidInput(
                    f"{label} is a text of {len(item.text)} characters; at most {limit} "
                    "(max_text_chars)"
                )

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.limits.max_k:
            raise InvalidInput(f"k must be between 1 and {self.limits.max_k}; got {k}")

    def check_batch(self, n: int, what: str) -> None:
        if n == 0:
            raise InvalidInput(f"no {what} given")
        if n > self.limits.max_batch:
            raise InvalidInput(
                f"too many {what}: {n}; at most {self.limits.max_batch} per call (max_batch)"
            )

    def check_id(self, i: int, key: str) -> None:
        if not key:
            raise InvalidInput(f"point {i} has an empty id")
        if len(key) > MAX_ID_CHARS:
            raise InvalidInput(f"point {i} has an id of {len(key)} characters; at most "
                               f"{MAX_ID_CHARS}")  # fmt: skip

    def space(self, name: str, *, need_collection: bool = False) -> Space:
        catalogue = self.catalogue
        if name in catalogue:
            coll = catalogue.get(name)
            loaded = coll.spec.encoder in self.registry
            return Space(name, self.registry.get(coll.spec.encoder) if loaded else None, coll)
        if need_collection or name in catalogue.quarantined:
            catalogue.get(name)  # raises CollectionNotFound with the list, or quarantined
        if name not in self.registry:
            raise NotFound(
                f"no collection or encoder named {name!r}; collections: {catalogue.names()}, "
                f"encoders: {sorted(e.name for e in self.registry.infos())}"
            )
        return Space(name, self.registry.get(name), None)

    def resolve(self, space: Space, queries: Sequence[Query]) -> FloatArray:
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
                check_weights([w for _, w in q.terms])
                for sub, _ in q.terms:
                    collect(sub, depth + 1)

        for q in queries:
            budget[0] = self.limits.max_query_terms  # per query
            collect(q, 0)
        self.check_texts(items)
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
                return space.collection.get([q.id])[0].vector
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

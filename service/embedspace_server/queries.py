"""Spaces, queries and limits: the space a request names becomes a collection or an
encoder, each query becomes a vector of that space, and every request is held to the
configured limits. Bad input names the request field to blame (`queries[2].vector`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .arithmetic import check_weights
from .catalogue import Catalogue
from .config import Settings
from .encoders import Encoder, EncoderRegistry
from .errors import FailedPrecondition, InvalidInput
from .index.base import VectorCollection
from .observe import tracing
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
class SpaceRef:
    """The space a request's queries live in, as it names it: a collection (whose stored
    ids the queries may then name) or an encoder. Give exactly one."""

    collection: str | None = None
    encoder: str | None = None


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
        """Items embedded with the space's encoder, checked against the space's dimension;
        `labels` are the items' field paths, which errors name."""
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

    def check_texts(self, items: Sequence[Item | None], fields: Sequence[str] = ()) -> None:
        """Texts are held to max_text_chars; `fields` are the items' paths (default
        `items[i]`)."""
        limit = self.limits.max_text_chars
        for i, item in enumerate(items):
            if isinstance(item, Text) and len(item.text) > limit:
                field = fields[i] if fields else f"items[{i}]"
                raise InvalidInput(
                    f"{field} is a text of {len(item.text)} characters; at most {limit} "
                    "(max_text_chars)",
                    field=field,
                )

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.limits.max_k:
            raise InvalidInput(f"k must be between 1 and {self.limits.max_k}; got {k}", field="k")

    def check_min_score(self, min_score: float | None) -> None:
        if min_score is not None and not np.isfinite(min_score):
            raise InvalidInput(
                f"min_score must be a finite number; got {min_score}", field="min_score"
            )

    def check_batch(self, n: int, what: str, field: str) -> None:
        """`n` of `what` (the request's repeated `field`): at least one, at most max_batch."""
        if n == 0:
            raise InvalidInput(f"no {what} given", field=field)
        if n > self.limits.max_batch:
            raise InvalidInput(
                f"too many {what}: {n}; at most {self.limits.max_batch} per call (max_batch)",
                field=field,
            )

    def check_id(self, i: int, key: str) -> None:
        field = f"points[{i}].id"
        if not key:
            raise InvalidInput(f"point {i} has an empty id", field=field)
        if len(key) > MAX_ID_CHARS:
            raise InvalidInput(f"point {i} has an id of {len(key)} characters; at most "
                               f"{MAX_ID_CHARS}", field=field)  # fmt: skip

    def collection_space(self, name: str) -> Space:
        """A collection as a space (NotFound or quarantined as the catalogue says)."""
        coll = self.catalogue.get(name)
        loaded = coll.spec.encoder in self.registry
        return Space(name, self.registry.get(coll.spec.encoder) if loaded else None, coll)

    def space(self, ref: SpaceRef) -> Space:
        """The space a request names; an encoder's name means the encoder, whatever
        collection may share it."""
        if ref.collection is not None:
            return self.collection_space(ref.collection)
        if ref.encoder is not None:
            return Space(ref.encoder, self.registry.get(ref.encoder), None)
        raise InvalidInput("name the space of the queries: set collection or encoder",
                           field="space")  # fmt: skip

    def resolve(self, space: Space, queries: Sequence[Query], fields: Sequence[str]) -> FloatArray:
        """Each query as a vector of the space's dimension; items embedded in one batch.
        `fields` are the queries' paths in the request, which errors name. Traced as the
        call's `embedspace.resolve` span (the forward pass it waits for is a child), unless
        every query is a plain vector."""
        if all(isinstance(q, VectorQuery) for q in queries):  # nothing to look up or embed
            return self._resolve(space, queries, fields)
        with tracing.child("embedspace.resolve", {"embedspace.queries": len(queries)}):
            return self._resolve(space, queries, fields)

    def _resolve(self, space: Space, queries: Sequence[Query], fields: Sequence[str]) -> FloatArray:
        items: list[Item] = []
        item_fields: list[str] = []
        budget = [0]

        def collect(q: Query, field: str, depth: int, top: str) -> None:
            budget[0] -= 1
            if budget[0] < 0:
                raise InvalidInput(
                    f"query has more than {self.limits.max_query_terms} terms (max_query_terms)",
                    field=top,
                )
            if depth > MAX_QUERY_DEPTH:
                raise InvalidInput(
                    f"query nests deeper than {MAX_QUERY_DEPTH} weighted sums", field=field
                )
            if isinstance(q, ItemQuery):
                items.append(q.item)
                item_fields.append(f"{field}.item")
            elif isinstance(q, SumQuery):
                if not q.terms:
                    raise InvalidInput("a weighted sum needs at least one term", field=field)
                check_weights([w for _, w in q.terms], f"{field}.sum.terms[{{}}].weight")
                for j, (sub, _) in enumerate(q.terms):
                    collect(sub, f"{field}.sum.terms[{j}].query", depth + 1, top)

        for q, field in zip(queries, fields, strict=True):
            budget[0] = self.limits.max_query_terms  # per query
            collect(q, field, 0, field)
        self.check_texts(items, item_fields)
        embedded = iter(space.embed(items, item_fields)) if items else iter(())

        def value(q: Query, field: str) -> npt.NDArray[np.floating]:
            if isinstance(q, ItemQuery):
                return next(embedded)
            if isinstance(q, IdQuery):
                if space.collection is None:
                    raise InvalidInput(
                        f"query names stored id {q.id!r}, but {space.name!r} is an encoder, "
                        "not a collection",
                        field=f"{field}.id",
                    )
                return space.collection.get([q.id])[0].vector
            if isinstance(q, VectorQuery):
                check_vector(q.array, space.dim, f"{field}.vector")
                return q.array.astype(np.float32, copy=False)
            total = np.zeros(space.dim, np.float64)
            for j, (sub, w) in enumerate(q.terms):
                total += w * value(sub, f"{field}.sum.terms[{j}].query")
            return total

        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            out = np.stack([value(q, f) for q, f in zip(queries, fields, strict=True)])
            out = out.astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if len(bad):
            raise InvalidInput("the query's vector overflows float32", field=fields[bad[0]])
        return out

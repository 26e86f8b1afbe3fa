"""The engine's questions about the geometry of a space: distances, and gensim's analogies,
odd one out and means. Queries become vectors through the Queries room; the sums are
arithmetic.py's; a collection ranks its own vectors for an analogy. Blocking and
thread-safe."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .arithmetic import Ranking, check_weights, pairwise_distances, unit, weighted_mean
from .errors import InvalidInput
from .queries import Queries, SpaceRef
from .types import (
    AnalogyResult,
    DistanceResult,
    FloatArray,
    IdQuery,
    ItemQuery,
    Metric,
    OddOneOut,
    Query,
    Text,
)
from .vecmath import unit_rows


def _is_key(query: Query) -> bool:
    """gensim normalises keys (here: stored ids and embedded items), not raw vectors."""
    return isinstance(query, IdQuery | ItemQuery)


def _fields(name: str, n: int) -> list[str]:
    return [f"{name}[{i}]" for i in range(n)]


class Relations:
    def __init__(self, queries: Queries) -> None:
        self.queries = queries

    def distance(
        self,
        space_ref: SpaceRef,
        a: Sequence[Query],
        b: Sequence[Query],
        *,
        metric: Metric | None = None,
        matrix: bool = False,
    ) -> DistanceResult:
        space = self.queries.space(space_ref)
        if not a or not b:
            raise InvalidInput(
                "distance needs at least one query on each side", field="b" if a else "a"
            )
        longer = "a" if len(a) >= len(b) else "b"
        self.queries.check_batch(max(len(a), len(b)), "queries on one side", longer)
        if not matrix and len(a) != len(b):
            raise InvalidInput(
                f"pairwise distance needs as many queries in a as in b; got {len(a)} and "
                f"{len(b)} (ask for the matrix instead)",
                field="b",
            )
        fields = _fields("a", len(a)) + _fields("b", len(b))
        vectors = self.queries.resolve(space, [*a, *b], fields)
        va, vb = vectors[: len(a)], vectors[len(a) :]
        metric = metric or space.metric
        return DistanceResult(pairwise_distances(va, vb, metric, matrix=matrix), metric)

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
        space = self.queries.collection_space(collection)
        coll = space.collection
        assert coll is not None
        terms = [*positive, *negative]
        fields = _fields("positive", len(positive)) + _fields("negative", len(negative))
        if not terms or (method == "mul" and not positive):
            raise InvalidInput("analogy needs at least one positive term", field="positive")
        self.queries.check_batch(len(terms), "analogy terms", "positive")
        for (_, w), field in zip(terms, fields, strict=True):
            check_weights([] if w is None else [w], f"{field}.weight")
        if method not in ("add", "mul"):
            raise InvalidInput(
                f"analogy method must be 'add' or 'mul'; got {method!r}", field="method"
            )
        weighted = [f for (_, w), f in zip(terms, fields, strict=True) if w is not None]
        if method == "mul" and weighted:
            raise InvalidInput(
                "method 'mul' (3CosMul) takes no weights", field=f"{weighted[0]}.weight"
            )
        queries = [q for q, _ in terms]
        vectors = self.queries.resolve(space, queries, [f"{f}.query" for f in fields])
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

    def doesnt_match(self, space_ref: SpaceRef, items: Sequence[Query]) -> OddOneOut:
        """gensim `doesnt_match`: the item least similar to the mean of all items, each
        unit-normalised (raw vectors too: gensim takes only keys here)."""
        space = self.queries.space(space_ref)
        if not items:
            raise InvalidInput("doesnt_match needs at least one item", field="items")
        self.queries.check_batch(len(items), "items", "items")
        vectors = unit_rows(self.queries.resolve(space, items, _fields("items", len(items))))
        mean = unit(weighted_mean(vectors, [1.0] * len(vectors)))
        sims = (vectors @ mean).astype(np.float32)
        return OddOneOut(int(np.argmin(sims)), sims)

    def mean_vector(
        self,
        space_ref: SpaceRef,
        items: Sequence[Query],
        weights: Sequence[float] | None = None,
        *,
        pre_normalize: bool = True,
        post_normalize: bool = False,
    ) -> FloatArray:
        """gensim `get_mean_vector`: sum(w * v) / sum(|w|), keys normalised first if asked."""
        space = self.queries.space(space_ref)
        if not items:
            raise InvalidInput("cannot compute a mean with no items", field="items")
        self.queries.check_batch(len(items), "items", "items")
        if weights is None or len(weights) == 0:
            weights = [1.0] * len(items)
        if len(weights) != len(items):
            raise InvalidInput(
                f"mean_vector needs one weight per item; got {len(weights)} weights for "
                f"{len(items)} items",
                field="weights",
            )
        check_weights(weights, "weights[{}]")
        vectors = self.queries.resolve(space, items, _fields("items", len(items)))
        if pre_normalize:
            keys = [_is_key(q) for q in items]
            vectors[keys] = unit_rows(vectors[keys])
        mean = weighted_mean(vectors, weights)
        return unit(mean) if post_normalize else mean

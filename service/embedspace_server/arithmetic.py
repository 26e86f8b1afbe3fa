"""gensim's vector arithmetic and the service's distances, as pure numpy: no encoders, no
collections. `Ranking` is what a collection is given to rank its own vectors, so that no
caller pulls every stored vector out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InvalidInput
from .types import FloatArray, Metric
from .vecmath import unit_rows

# gensim most_similar_cosmul's epsilon.
COSMUL_EPSILON = 0.000001


def check_weights(weights: Sequence[float], field: str = "weights") -> None:
    """Raises InvalidInput unless every weight is finite; `field` is the path of the
    weights, with `{}` standing for the position of the bad one if it has one."""
    bad = [i for i, w in enumerate(weights) if not np.isfinite(w)]
    if bad:
        raise InvalidInput(
            f"weights must be finite numbers; got {weights[bad[0]]}", field=field.format(bad[0])
        )


def weighted_mean(vectors: FloatArray, weights: Sequence[float]) -> FloatArray:
    """sum(w * v) / sum(|w|) as gensim's get_mean_vector, in float64 so that large weights
    do not overflow on the way; a result that does not fit float32 is refused."""
    w = np.asarray(weights, np.float64)
    mean = (w[:, None] * vectors.astype(np.float64)).sum(axis=0)
    total = float(np.abs(w).sum())
    if total > 0:
        mean = mean / total
    out: FloatArray = mean.astype(np.float32)
    if not np.isfinite(out).all():
        raise InvalidInput(
            "the weighted mean overflows float32; use smaller weights", field="weights"
        )
    return out


def unit(vector: FloatArray) -> FloatArray:
    out: FloatArray = unit_rows(vector[None])[0]
    return out


@dataclass(frozen=True, eq=False)
class Ranking:
    """Scores of stored vectors against arithmetic terms, exactly as gensim ranks its
    vocabulary (dot(vectors, t) / norms):

    - "add" (most_similar, 3CosAdd): cos(v, target), `target` the composed unit vector;
    - "mul" (most_similar_cosmul, 3CosMul): prod((1 + cos(v, p)) / 2 over positive) /
      (prod((1 + cos(v, n)) / 2 over negative) + 1e-6).

    Each vector's score depends on that vector alone, so shards rank apart and merge.
    """

    method: str
    positive: FloatArray  # "add": one row, the target
    negative: FloatArray

    @classmethod
    def add(cls, target: FloatArray) -> Ranking:
        return cls("add", target[None], np.zeros((0, len(target)), np.float32))

    @classmethod
    def mul(cls, positive: FloatArray, negative: FloatArray) -> Ranking:
        return cls("mul", positive, negative)

    def scores(self, vectors: FloatArray) -> FloatArray:
        norms = np.linalg.norm(vectors, axis=1)

        def cos(t: FloatArray) -> FloatArray:
            with np.errstate(divide="ignore", invalid="ignore"):
                out: FloatArray = (vectors @ t) / norms
            return out

        if self.method == "add":
            return cos(self.positive[0])
        p = np.prod([(1 + cos(t)) / 2 for t in self.positive], axis=0)
        n = (
            np.prod([(1 + cos(t)) / 2 for t in self.negative], axis=0)
            if len(self.negative)
            else 1.0
        )
        out: FloatArray = p / (n + COSMUL_EPSILON)
        return out


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

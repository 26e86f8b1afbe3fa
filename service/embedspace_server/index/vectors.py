"""The vectors of an upsert, checked and prepared as an index keeps them (float32 rows,
unit length in a cosine collection); shared by every kind of collection, so that a sharded
one refuses what a single one refuses before any shard is written."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInput
from ..types import FloatArray, Metric
from ..vecmath import unit_rows
from .base import Spec

# A cosine row whose norm is this close to 1 (two float32 ulps) is unit length already:
# normalising it again could change its last bits.
UNIT_TOLERANCE = 2 * float(np.finfo(np.float32).eps)


def prepared(spec: Spec, vectors: FloatArray) -> FloatArray:
    """Rows of float32 as the index keeps them: unit length for cosine. A row that is unit
    length already (as every vector a cosine collection gives back is) is left as it is, bit
    for bit, so that exporting and upserting again stores the very same vector."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, spec.dim)
    if spec.metric is not Metric.COSINE:
        return vectors
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    unit = np.abs(norms - 1) <= UNIT_TOLERANCE
    if unit.all():
        return vectors
    out = unit_rows(vectors)
    out[unit] = vectors[unit]
    return out


def checked_vectors(spec: Spec, keys: Sequence[str], vectors: FloatArray) -> FloatArray:
    """The vectors of an upsert, prepared. InvalidInput, naming the point by its position in
    `keys` (`points[i].id`, `points[i].vector`), for an id given twice, a vector of another
    dimension, one with NaN or infinite values, or a zero vector in a cosine collection."""
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        i = next(i for i, k in enumerate(keys) if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidInput(f"id {keys[i]!r} appears twice in one upsert", f"points[{i}].id")
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) != len(keys):
        raise InvalidInput(
            f"an upsert of {len(keys)} ids needs {len(keys)} vectors of dimension {spec.dim}; "
            f"got an array of shape {tuple(vectors.shape)}",
            "points",
        )
    if vectors.shape[1] != spec.dim and len(keys):
        raise InvalidInput(
            f"the vector of id {keys[0]!r} has dimension {vectors.shape[1]}; collection "
            f"{spec.name!r} holds vectors of dimension {spec.dim}",
            "points[0].vector",
        )
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        i = int(bad[0])
        raise InvalidInput(
            f"the vector of id {keys[i]!r} contains NaN or infinite values",
            f"points[{i}].vector",
        )
    vectors = prepared(spec, vectors)
    if spec.metric is Metric.COSINE:
        zero = np.flatnonzero(~np.any(vectors, axis=1))
        if len(zero):
            i = int(zero[0])
            raise InvalidInput(
                f"the vector of id {keys[i]!r} is all zeros: collection {spec.name!r} "
                "compares by cosine and cannot normalise it",
                f"points[{i}].vector",
            )
    return vectors

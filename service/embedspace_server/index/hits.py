"""From FAISS's raw answers to neighbours: the filters (metadata, exclusions, min_score),
and the exact top k of a score over every stored vector, taken a chunk at a time."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..types import FloatArray, Metadata, Metric, Neighbor, Scalar


def matches(metadata: Metadata, where: Mapping[str, Scalar]) -> bool:
    """Whether the metadata holds every field of `where` with that very value."""
    for key, want in where.items():
        if key not in metadata:
            return False
        have = metadata[key]
        # bool is an int in Python; a filter on True must not match 1.
        if isinstance(have, bool) != isinstance(want, bool) or have != want:
            return False
    return True


def neighbours(
    scores: FloatArray,
    labels: Any,
    k: int,
    metric: Metric,
    by_label: Sequence[str | None],
    metadata: Mapping[str, Metadata],
    excluded: set[str],
    allowed: set[str] | None,
    min_score: float | None,
) -> tuple[list[Neighbor], bool]:
    """One query's row of FAISS results as neighbours after the filters, and whether
    fetching more rows could not add any."""
    out: list[Neighbor] = []
    for raw, i in zip(scores.tolist(), labels.tolist(), strict=True):
        if i < 0:
            return out, True
        key = by_label[i]
        if key is None or key in excluded or (allowed is not None and key not in allowed):
            continue
        score = -math.sqrt(max(raw, 0.0)) if metric is Metric.L2 else raw
        if min_score is not None and score < min_score:
            return out, True
        out.append(Neighbor(key, score, metadata.get(key, {})))
        if len(out) == k:
            return out, True
    return out, False


def best_by_score(
    labels: Any, scores: Callable[[Any], FloatArray], keep: int, chunk: int
) -> list[tuple[int, float]]:
    """The `keep` labels with the highest scores, best first, ties in the order of `labels`,
    as (label, score): `scores` is asked for `chunk` labels at a time, and each chunk's best
    `keep` are merged, which gives what ranking all of them at once would."""
    best: list[tuple[float, int, int]] = []  # (-score, position, label)
    for start in range(0, len(labels), chunk):
        part = labels[start : start + chunk]
        got = scores(part)
        top = np.argsort(-got, kind="stable")[:keep]
        candidates = [(-float(got[i]), start + int(i), int(part[i])) for i in top]
        best = heapq.nsmallest(keep, [*best, *candidates])
    return [(label, -negative) for negative, _, label in best]

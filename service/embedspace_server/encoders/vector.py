"""Precomputed vectors of a declared dimension: the encoder only validates them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import EncoderInfo, FloatArray, Item, ItemKind, Metric, Provenance, VectorItem
from ..vecmath import check_vector
from .base import Encoder


class VectorEncoder(Encoder):
    def __init__(self, name: str, dim: int, metric: Metric = Metric.COSINE) -> None:
        self.info = EncoderInfo(
            name=name,
            dim=dim,
            metric=metric,
            item_kind=ItemKind.VECTOR,
            provenance=Provenance(kind="vector"),
        )

    def check(self, label: str, item: Item) -> None:
        assert isinstance(item, VectorItem)
        check_vector(item.array, self.info.dim, f"encoder {self.info.name!r}: {label}", label)

    def _encode(self, items: Sequence[Item]) -> FloatArray:
        return np.stack([item.array for item in items if isinstance(item, VectorItem)])

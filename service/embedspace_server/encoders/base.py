"""The Encoder interface: validate items, embed a batch, warm up."""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidInput
from ..observe import metrics, tracing
from ..types import EncoderInfo, FloatArray, Item, ItemKind, Tensor, Text, VectorItem


def describe_item(item: Item) -> str:
    """A short description of an item for error messages."""
    if isinstance(item, Text):
        return "a text"
    if isinstance(item, Tensor | VectorItem):
        name = "a tensor" if isinstance(item, Tensor) else "a vector"
        return f"{name} of shape {tuple(item.array.shape)}"
    return f"a record with fields {sorted(item.fields)}"


_KIND_NOUNS = {
    ItemKind.TEXT: "text items",
    ItemKind.TENSOR: "tensor items",
    ItemKind.RECORD: "record items",
    ItemKind.VECTOR: "vector items",
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Encoder(ABC):
    """Turns a batch of items of one kind into float32 vectors of `info.dim`."""

    info: EncoderInfo

    def encode(self, items: Sequence[Item], labels: Sequence[str] | None = None) -> FloatArray:
        """Validates every item, then embeds the batch: shape (len(items), dim), float32.

        `labels` name the items in error messages (default "item 0", "item 1", ...).
        """
        self.validate(items, labels)
        return self._checked(self.forward(items), len(items))

    def forward(self, items: Sequence[Item]) -> FloatArray:
        """One forward pass over items already validated, timed for metrics and traces."""
        start = time.perf_counter()
        with tracing.child("embedspace.forward", {"embedspace.batch.size": len(items)}):
            out = self._encode(items)
        metrics.observe_forward(self.info.name, len(items), time.perf_counter() - start)
        return out

    def _checked(self, out: FloatArray, count: int) -> FloatArray:
        """`out` as contiguous float32 rows, one per item."""
        out = np.ascontiguousarray(out, dtype=np.float32)
        assert out.shape == (count, self.info.dim), out.shape
        return out

    def validate(self, items: Sequence[Item], labels: Sequence[str] | None = None) -> None:
        """Raises InvalidInput unless every item is one this encoder can embed."""
        if not items:
            raise InvalidInput(f"encoder {self.info.name!r}: no items to embed", field="items")
        for i, item in enumerate(items):
            label = labels[i] if labels else f"item {i}"
            if item.kind is not self.info.item_kind:
                raise InvalidInput(
                    f"encoder {self.info.name!r} expects {_KIND_NOUNS[self.info.item_kind]}; "
                    f"{label} is {describe_item(item)}",
                    field=label,
                )
            self.check(label, item)

    def check(self, label: str, item: Item) -> None:  # noqa: B027 (optional hook)
        """Raises InvalidInput if one item of the right kind is still unusable; `label`
        names the item in messages and is the error's field (the engine passes the item's
        path in the request, as `points[3].item`)."""

    @abstractmethod
    def _encode(self, items: Sequence[Item]) -> FloatArray: ...

    def warmup(self) -> None:  # noqa: B027 (optional hook)
        """Runs one forward pass so the first request does not pay for lazy start-up."""

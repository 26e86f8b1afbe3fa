"""String ids <-> labels (positions in a FAISS index), and the ids in order, at about
90 B per id.

A dict id -> label costs ~70 B per id on top of the id string (its slot and an int object),
more than the codes of a quantized index. Here label -> id is a list of the id strings, None
where a label holds no id (a tombstone), and id -> label is a numpy array of the ids' hashes,
sorted, beside their labels: 16 B per id, searched with searchsorted, each match confirmed by
comparing the id itself, so equal hashes cost only a longer look. Ids added since the arrays
were built wait in a small dict, folded in once it grows to a fraction of the whole. Labels
ascend in insertion order, so the list is also the insertion order.

Scans page through the ids in id order (code point order): a SortedList of the same id
strings (~9 B per id: references, no copies) gives the ids after any id in O(log n) plus the
page, however the ids were written, and writes keep it in step in O(log n).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from sortedcontainers import SortedList  # type: ignore[import-untyped]

# Fold the recent ids into the sorted arrays once they number more than this, or than this
# share of all ids: a fold costs a sort of every hash.
FOLD_MIN = 1024
FOLD_SHARE = 1 / 8


class IdMap:
    def __init__(self, keys: list[str | None]) -> None:
        """`keys` (the id at each label, None for a tombstone) is taken over, not copied."""
        self.by_label = keys
        self._count = sum(k is not None for k in keys)
        self._sorted = SortedList(k for k in keys if k is not None)
        self._fold()

    def _fold(self) -> None:
        """Rebuilds the sorted arrays from the list, leaving the recent dict empty."""
        labels = self.labels()
        hashes = np.fromiter(map(hash, self), np.int64, len(labels))
        order = np.argsort(hashes, kind="stable")
        self._hashes: npt.NDArray[np.int64] = hashes[order]
        self._labels: npt.NDArray[np.int64] = labels[order]
        self._recent: dict[str, int] = {}

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        """The ids in insertion order (label order)."""
        return (k for k in self.by_label if k is not None)

    def after(self, key: str, limit: int) -> list[str]:
        """The first `limit` ids greater than `key` ("": from the first), in id order."""
        ids = self._sorted.irange(minimum=key or None, inclusive=(False, True))
        return list(itertools.islice(ids, max(limit, 0)))

    def labels(self) -> npt.NDArray[np.int64]:
        """The label of each id, in insertion order."""
        held = np.fromiter((k is not None for k in self.by_label), bool, len(self.by_label))
        return np.flatnonzero(held)

    def find(self, keys: Sequence[str]) -> list[int | None]:
        """The label of each of `keys`, None for an id not held."""
        hashes = np.fromiter(map(hash, keys), np.int64, len(keys))
        starts = np.searchsorted(self._hashes, hashes).tolist()
        return [
            self._find(key, h, i) for key, h, i in zip(keys, hashes.tolist(), starts, strict=True)
        ]

    def _find(self, key: str, h: int, i: int) -> int | None:
        label = self._recent.get(key)
        if label is not None:
            return label
        # Entries of equal hash sit together: this id, ids since deleted, or other ids.
        while i < len(self._hashes) and self._hashes[i] == h:
            label = int(self._labels[i])
            if self.by_label[label] == key:
                return label
            i += 1
        return None

    def append(self, keys: Sequence[str]) -> None:
        """Gives `keys` (none of them held) the next labels."""
        for key in keys:
            self._recent[key] = len(self.by_label)
            self.by_label.append(key)
        self._sorted.update(keys)
        self._count += len(keys)
        if len(self._recent) > max(FOLD_MIN, FOLD_SHARE * self._count):
            self._fold()

    def bury(self, label: int) -> None:
        """Forgets the id at `label`, which stays in use: a tombstone."""
        key = self.by_label[label]
        assert key is not None
        self.by_label[label] = None
        self._recent.pop(key, None)
        self._sorted.remove(key)
        self._count -= 1
        # Its entry in the hash arrays, if any, stays until the next fold: `_find` skips it.

    def remove(self, labels: Sequence[int]) -> None:
        """Forgets the ids at `labels` (distinct, each holding one) and moves every later
        label down to close the gaps, as FAISS's remove_ids does to an index of flat codes."""
        gone = np.zeros(len(self.by_label), bool)
        gone[np.asarray(labels, np.int64)] = True
        for label in labels:
            self._sorted.remove(self.by_label[label])
        below = np.cumsum(gone)  # for a kept label, how many removed labels lie below it
        keep = ~gone[self._labels]
        self._hashes = self._hashes[keep]
        self._labels = self._labels[keep] - below[self._labels[keep]]
        self._recent = {k: i - int(below[i]) for k, i in self._recent.items() if not gone[i]}
        self.by_label = [k for k, g in zip(self.by_label, gone.tolist(), strict=True) if not g]
        self._count -= len(labels)

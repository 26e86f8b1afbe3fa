"""Where each id's vector sits in a FAISS index. An id's label is the position of its
vector, with no FAISS id map: an id map costs ~50 B per vector, and labels that are
positions stay in insertion order by themselves. Indexes of flat codes (Flat,
SQ, PQ) overwrite a replaced vector in place and close the gap a delete leaves; the others
(HNSW, IVF) append a replaced vector and keep the old one, and a deleted one, as tombstones
until a rebuild. Not thread-safe: the collection's lock guards a layout."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import FailedPrecondition
from ..types import FloatArray
from .base import Spec
from .factory import build_index, faiss_module, first_line, removable
from .idmap import IdMap
from .params import apply_params

# What was written while a rebuild ran: (ids, their vectors, or None for a delete).
Change = tuple[Sequence[str], FloatArray | None]


@contextlib.contextmanager
def faiss_errors(spec: Spec, what: str) -> Iterator[None]:
    """FAISS errors (an operation the index type lacks) become FailedPrecondition."""
    try:
        yield
    except RuntimeError as e:
        raise FailedPrecondition(
            f"index {spec.index!r} of collection {spec.name!r} cannot {what}: {first_line(e)}"
        ) from None


class Layout:
    def __init__(self, spec: Spec, index: Any, keys: list[str | None]) -> None:
        """`keys` is the id at each position of `index` (None: a tombstone), taken over."""
        self.spec = spec
        self.index = index
        self.ids = IdMap(keys)
        self.removable = removable(index)
        # Set while a rebuild runs: what is written meanwhile, to apply to the new layout.
        self.changes: list[Change] | None = None

    @classmethod
    def build(cls, spec: Spec, keys: list[str], vectors: FloatArray) -> Layout:
        """A new index holding `vectors` at positions 0..n-1 (a rebuild; may raise
        RuntimeError from FAISS)."""
        index = build_index(spec)
        apply_params(index, spec)
        if not index.is_trained and len(vectors):
            index.train(vectors)
        if len(vectors):
            index.add(vectors)
        labelled: list[str | None] = list(keys)
        return cls(spec, index, labelled)

    @property
    def tombstones(self) -> int:
        """How many vectors in the index belong to no id (indexes that cannot remove)."""
        return int(self.index.ntotal) - len(self.ids)

    def vectors(self) -> tuple[list[str], FloatArray]:
        """Every stored id and its vector, in insertion order."""
        keys = list(self.ids)
        if not keys:
            return keys, np.zeros((0, self.spec.dim), np.float32)
        with faiss_errors(self.spec, "give back stored vectors"):
            out: FloatArray = self.index.reconstruct_batch(self.ids.labels())
        return keys, out

    def train(self, vectors: FloatArray) -> None:
        try:
            self.index.train(vectors)
        except RuntimeError as e:
            raise FailedPrecondition(
                f"index {self.spec.index!r} needs training and the first upsert is its "
                f"training set; {len(vectors)} vectors were not enough: {first_line(e)}"
            ) from None

    def place(self, keys: Sequence[str], vectors: FloatArray) -> int:
        """Puts the vectors in the index under their ids; returns how many replaced one."""
        if self.changes is not None:
            self.changes.append((keys, vectors))
        labels = self.ids.find(keys)
        old = [(j, label) for j, label in enumerate(labels) if label is not None]
        if self.removable:
            # A replaced vector is overwritten where it is, keeping its label.
            if old:
                self._overwrite([label for _, label in old], vectors[[j for j, _ in old]])
            new = [j for j, label in enumerate(labels) if label is None]
        else:
            # Indexes that cannot remove keep the old vector as a tombstone.
            for _, label in old:
                self.ids.bury(label)
            new = list(range(len(keys)))
        if new:
            with faiss_errors(self.spec, "store vectors"):
                self.index.add(vectors[new])
            self.ids.append([keys[j] for j in new])
        return len(old)

    def _overwrite(self, labels: list[int], vectors: FloatArray) -> None:
        """Replaces the codes at `labels` of an index of flat codes with those of `vectors`."""
        index = self.index
        size = index.code_size
        codes = faiss_module().rev_swig_ptr(index.codes.data(), index.ntotal * size)
        codes.reshape(-1, size)[labels] = index.sa_encode(vectors)

    def remove(self, keys: Sequence[str]) -> int:
        """Takes the ids' vectors out of the index; returns how many were there."""
        if self.changes is not None:
            self.changes.append((keys, None))
        labels = self.ids.find(keys)
        present = [label for label in labels if label is not None]
        if self.removable:
            with faiss_errors(self.spec, "delete"):
                self.index.remove_ids(np.array(present, np.int64))
            self.ids.remove(present)
        else:
            for label in present:
                self.ids.bury(label)
        return len(present)

    def apply(self, changes: Sequence[Change]) -> None:
        """Writes recorded elsewhere (during a rebuild), applied to this layout in order."""
        for keys, vectors in changes:
            if vectors is None:
                self.remove(keys)
            else:
                self.place(keys, vectors)

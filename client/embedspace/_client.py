"""`Client`: every SDK call, defined once.

This file is the source of `_async_client.py`: scripts/gen_async_client.py turns each
`def` into `async def` and each `self._run(...)` into `await self._run(...)`. Each call
builds its request and reads its response through one `_convert.Op`; the base class runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt

from . import _convert as ops
from ._base import USE_CLIENT_DEFAULT, BlockingBase, Timeout
from ._types import (
    Analogy,
    BackupInfo,
    CollectionInfo,
    Comparison,
    EncoderInfo,
    Item,
    Neighbors,
    Query,
    StoredItem,
    UpsertResult,
)
from .wire import FloatArray, Scalar


class Client(BlockingBase):
    """A blocking client. Use it as a context manager, or call `close()`."""

    def encoders(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> list[EncoderInfo]:
        """The encoders the server loaded, with their provenance."""
        return self._run(ops.encoders(), timeout)

    def embed(
        self, encoder: str, items: Sequence[Item], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> FloatArray:
        """Embeds items with one encoder: a (len(items), dim) float32 array."""
        return self._run(ops.embed(encoder, items), timeout)

    def create_collection(
        self,
        name: str,
        encoder: str,
        *,
        index: str = "Flat",
        metric: str | None = None,
        search_params: Mapping[str, float] | None = None,
        shards: int = 1,
        replicas: int = 1,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> CollectionInfo:
        """Creates a collection; `index` is a FAISS factory string, `metric` cosine/dot/l2,
        `search_params` the defaults of an approximate index ("efSearch", "nprobe").
        `shards` (1-64) split it by a hash of the id and `replicas` (1-8) copy each shard
        onto different nodes; more than 1 of either needs a server on a Ray cluster
        (`embedspace serve --ray`): others answer FailedPrecondition."""
        op = ops.create_collection(name, encoder, index, metric, search_params, shards, replicas)
        return self._run(op, timeout)

    def collections(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> list[CollectionInfo]:
        return self._run(ops.collections(), timeout)

    def describe(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> CollectionInfo:
        return self._run(ops.describe(name), timeout)

    def drop_collection(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> None:
        return self._run(ops.drop_collection(name), timeout)

    def backup(
        self, collection: str, name: str | None = None, *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> BackupInfo:
        """Writes a consistent snapshot of a collection into the server's backup folder."""
        return self._run(ops.backup(collection, name), timeout)

    def restore(
        self, name: str, collection: str, *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> CollectionInfo:
        """Creates `collection` from the backup `name`."""
        return self._run(ops.restore(name, collection), timeout)

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        *,
        items: Sequence[Item] | None = None,
        vectors: npt.ArrayLike | None = None,
        metadata: Sequence[Mapping[str, Scalar]] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> UpsertResult:
        """Inserts or replaces items by id: give `items` to embed server-side, or `vectors`."""
        return self._run(ops.upsert(collection, ids, items, vectors, metadata), timeout)

    def get(
        self, collection: str, ids: Sequence[str], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> list[StoredItem]:
        return self._run(ops.get(collection, ids), timeout)

    def scan(
        self,
        collection: str,
        offset: int = 0,
        limit: int = 0,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> tuple[list[StoredItem], int]:
        """A page of the collection's items in insertion order, and how many it holds
        (`limit` 0: as many as the server allows in one call)."""
        return self._run(ops.scan(collection, offset, limit), timeout)

    def delete(
        self, collection: str, ids: Sequence[str], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> int:
        """Deletes ids; returns how many were stored (unknown ids are ignored)."""
        return self._run(ops.delete(collection, ids), timeout)

    def search(
        self,
        collection: str,
        query: Query,
        k: int = 10,
        *,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        where: Mapping[str, Scalar] | None = None,
        search_params: Mapping[str, float] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Neighbors:
        """The k nearest neighbours of a query, best first: a list, whose `missing_shards`
        names the shards of a sharded collection that had no live replica (`partial`)."""
        return self._run(
            ops.search(collection, query, k, min_score, exclude, where, search_params), timeout
        )

    def distance(
        self,
        space: str,
        a: Query | Sequence[Query],
        b: Query | Sequence[Query],
        *,
        metric: str | None = None,
        matrix: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Any:
        """Distance between two queries (a float), between pairs of two lists (an array),
        or the matrix between two lists (`matrix=True`)."""
        return self._run(ops.distance(space, a, b, metric, matrix), timeout)

    def analogy(
        self,
        collection: str,
        positive: Sequence[Query | tuple[Query, float]],
        negative: Sequence[Query | tuple[Query, float]] = (),
        k: int = 10,
        *,
        method: str = "add",
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Analogy:
        """gensim most_similar (method "add") or most_similar_cosmul ("mul"); like
        `search`, the answer says which shards were missing (`missing_shards`, `partial`)."""
        return self._run(ops.analogy(collection, positive, negative, k, method), timeout)

    def compare(
        self,
        collections: Sequence[str],
        query: Query,
        k: int = 10,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Comparison:
        """The same query over several collections (the same items under different
        encoders): each one's neighbours (with its `missing_shards`, as `search` gives them)
        and their Jaccard@k overlap."""
        return self._run(ops.compare(collections, query, k), timeout)

    def doesnt_match(
        self, collection: str, items: Sequence[Query], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> Query:
        """gensim doesnt_match: the one of `items` furthest from their mean."""
        return self._run(ops.doesnt_match(collection, items), timeout)

    def mean_vector(
        self,
        space: str,
        items: Sequence[Query],
        *,
        weights: Sequence[float] | None = None,
        pre_normalize: bool = True,
        post_normalize: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> FloatArray:
        """gensim get_mean_vector over items, stored ids and vectors."""
        op = ops.mean_vector(space, items, weights, pre_normalize, post_normalize)
        return self._run(op, timeout)

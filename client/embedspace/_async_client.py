# Generated from _client.py by scripts/gen_async_client.py: do not edit.
"""`AsyncClient`: the calls of `Client`, awaitable.

Each call is defined once, in `_client.py`. `python scripts/gen_async_client.py` writes this file
from it; `make lint` fails when it is stale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy.typing as npt

from . import _convert as ops
from ._base import USE_CLIENT_DEFAULT, AsyncBase, Timeout
from ._ingest import Options
from ._types import (
    Analogy,
    BackupInfo,
    CollectionInfo,
    Comparison,
    EncoderInfo,
    IngestSummary,
    Item,
    Items,
    Neighbors,
    Page,
    Point,
    Query,
    StoredItem,
    UpsertResult,
)
from .wire import FloatArray, Scalar


class AsyncClient(AsyncBase):
    """An asyncio client with the same methods as `Client`. Use `async with`, or
    `await close()`.

    `target` is the server's host:port; left out (None), it is the EMBEDSPACE_TARGET
    environment variable, or 127.0.0.1:50051 when that is unset or empty. `timeout`
    (seconds; None: no limit) applies to every call that does not give its own; `retries`
    is how often UNAVAILABLE is retried. TLS: `tls=True`, or `root_certificates`,
    `private_key` and `certificate_chain` (PEM bytes or paths), or any `credentials`;
    `token` is sent as a bearer token. With the `opentelemetry` package installed, each call
    made inside a span carries its trace context (`traceparent`), so the server's spans join
    the caller's trace.
    """

    async def encoders(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> list[EncoderInfo]:
        """The encoders the server loaded, with their provenance."""
        return await self._run(ops.encoders(), timeout)

    async def embed(
        self, encoder: str, items: Sequence[Item], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> FloatArray:
        """Embeds items with one encoder: a (len(items), dim) float32 array."""
        return await self._run(ops.embed(encoder, items), timeout)

    async def create_collection(
        self,
        collection: str,
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
        op = ops.create_collection(
            collection, encoder, index, metric, search_params, shards, replicas
        )
        return await self._run(op, timeout)

    async def collections(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> list[CollectionInfo]:
        return await self._run(ops.collections(), timeout)

    async def describe(
        self, collection: str, *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> CollectionInfo:
        return await self._run(ops.describe(collection), timeout)

    async def drop_collection(
        self, collection: str, *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> None:
        return await self._run(ops.drop_collection(collection), timeout)

    async def backup(
        self,
        collection: str,
        backup: str | None = None,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> BackupInfo:
        """Writes a consistent snapshot of a collection into the server's backup folder, as
        `backup` (None: "<collection>-<UTC time>"), while the server keeps serving."""
        return await self._run(ops.backup(collection, backup), timeout)

    async def backups(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> list[BackupInfo]:
        """The backups in the server's backup folder, oldest first."""
        return await self._run(ops.backups(), timeout)

    async def restore(
        self, backup: str, collection: str, *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> CollectionInfo:
        """Creates `collection` (which must not exist) from the backup `backup`."""
        return await self._run(ops.restore(backup, collection), timeout)

    async def upsert(
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
        return await self._run(ops.upsert(collection, ids, items, vectors, metadata), timeout)

    async def upsert_many(
        self,
        collection: str,
        points: Iterable[Point],
        *,
        batch_size: int = 512,
        max_bytes: int = 4 * 1024 * 1024,
        in_flight: int = 4,
        stream_messages: int = 8,
        progress: bool = False,
        total: int | None = None,
        stop_on_reject: bool = False,
        on_acknowledged: Callable[[int], object] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> IngestSummary:
        """Bulk loading: upserts every Point of `points` (any iterable, read lazily) through
        UpsertStream, in messages of at most `batch_size` points and `max_bytes` bytes,
        `stream_messages` messages a stream, `in_flight` streams at once. `timeout` is per
        message and per stream in flight: a stream may take timeout x its messages x
        `in_flight` (embedding texts can be slow, and streams share the server). A stream
        that fails with Unavailable or ResourceExhausted is sent again after a backoff (up
        to `retries` times); `batch_size` is halved while the server says a message has
        too many points. A point the server refuses is left out and
        reported by its position in `points` (the summary's `rejected`); with
        `stop_on_reject`, the first one raises PointsRejected instead, carrying the summary
        so far. `on_acknowledged(n)`: called whenever the first n points grow to be all
        acknowledged (resume an interrupted load from there). `progress`: a bar on a
        terminal (`pip install 'embedspace[files]'`; `total` gives it an ETA), else a line
        to stderr every few seconds. Other errors raise as usual."""
        options = Options(batch_size, max_bytes, in_flight, stream_messages, progress, total,
                          stop_on_reject, on_acknowledged, self.retries)  # fmt: skip
        return await self._ingest(collection, points, options, timeout)

    async def get(
        self, collection: str, ids: Sequence[str], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> Items:
        """The stored items of `ids`, in their order: a list of those stored, whose
        `missing_ids` names the ids that are not."""
        return await self._run(ops.get(collection, ids), timeout)

    async def scan(
        self,
        collection: str,
        *,
        limit: int = 0,
        page_token: str = "",
        with_vectors: bool = True,
        with_metadata: bool = True,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Page:
        """One page of the collection's items in id order (`limit` 0: as many as the server
        allows in one call): pass its `next_page_token` as `page_token` for the next page.
        `with_vectors=False` leaves vectors out (StoredItem.vector is None)."""
        return await self._run(ops.scan(collection, limit, page_token, with_vectors, with_metadata),
                         timeout)  # fmt: skip

    async def scan_all(
        self,
        collection: str,
        *,
        page_size: int = 0,
        with_vectors: bool = True,
        with_metadata: bool = True,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[StoredItem]:
        """Every item of the collection, in id order, fetched a page at a time as it is
        iterated (`page_size` 0: the server's largest page). Each item that exists from the
        first page to the last comes exactly once, whatever is written meanwhile."""
        token = ""
        while True:
            op = ops.scan(collection, page_size, token, with_vectors, with_metadata)
            page = await self._run(op, timeout)
            # A loop, not `yield from`: AsyncClient's copy of this method is an async generator.
            for stored in page.items:
                yield stored
            token = page.next_page_token
            if not token:
                return

    async def count(
        self,
        collection: str,
        where: Mapping[str, Scalar] | None = None,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> int:
        """How many items the collection holds (whose metadata has each pair of `where`)."""
        return await self._run(ops.count(collection, where), timeout)

    async def delete(
        self, collection: str, ids: Sequence[str], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> int:
        """Deletes ids; returns how many were stored (unknown ids are ignored)."""
        return await self._run(ops.delete(collection, ids), timeout)

    async def search(
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
        return await self._run(
            ops.search(collection, query, k, min_score, exclude, where, search_params), timeout
        )

    async def search_batch(
        self,
        collection: str,
        queries: Sequence[Query],
        k: int = 10,
        *,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        where: Mapping[str, Scalar] | None = None,
        search_params: Mapping[str, float] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> list[Neighbors]:
        """`search` of many queries with the same parameters, in one call (at most the
        server's max_batch): one Neighbors per query, in order."""
        op = ops.search_batch(collection, queries, k, min_score, exclude, where, search_params)
        return await self._run(op, timeout)

    async def distance(
        self,
        a: Query | Sequence[Query],
        b: Query | Sequence[Query],
        *,
        collection: str | None = None,
        encoder: str | None = None,
        metric: str | None = None,
        matrix: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Any:
        """Distance between two queries (a float), between pairs of two lists (an array),
        or the matrix between two lists (`matrix=True`), in the space of exactly one of
        `collection` (whose stored ids queries may name) or `encoder`."""
        op = ops.distance(a, b, collection=collection, encoder=encoder, metric=metric,
                          matrix=matrix)  # fmt: skip
        return await self._run(op, timeout)

    async def analogy(
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
        return await self._run(ops.analogy(collection, positive, negative, k, method), timeout)

    async def compare(
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
        return await self._run(ops.compare(collections, query, k), timeout)

    async def doesnt_match(
        self,
        items: Sequence[Query],
        *,
        collection: str | None = None,
        encoder: str | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Query:
        """gensim doesnt_match: the one of `items` furthest from their mean, in the space of
        exactly one of `collection` or `encoder`."""
        op = ops.doesnt_match(items, collection=collection, encoder=encoder)
        return await self._run(op, timeout)

    async def mean_vector(
        self,
        items: Sequence[Query],
        *,
        collection: str | None = None,
        encoder: str | None = None,
        weights: Sequence[float] | None = None,
        pre_normalize: bool = True,
        post_normalize: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> FloatArray:
        """gensim get_mean_vector over items, stored ids and vectors, in the space of exactly
        one of `collection` or `encoder`."""
        op = ops.mean_vector(
            items, collection=collection, encoder=encoder, weights=weights,
            pre_normalize=pre_normalize, post_normalize=post_normalize,
        )  # fmt: skip
        return await self._run(op, timeout)

"""How each call runs, decided in this one place: checked and queued on the event loop for
a shared batch (an embed for a batching encoder, a search by a plain vector), or on a
worker thread (everything that blocks). Both are held to the limit on pending calls, and
work queued for a worker never starts once its caller's deadline has passed or it gave up.

The servicer converts a request, awaits the method of the same name here and converts the
answer back; it knows nothing of threads or batches.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from contextvars import ContextVar
from typing import Any, TypeVar

from .engine import Engine
from .errors import Cancelled, DeadlineExceeded, InvalidInput, Overloaded
from .observe import metrics, tracing
from .observe.calls import current_call
from .queries import SpaceRef
from .types import (
    AnalogyResult,
    BackupInfo,
    CollectionInfo,
    DistanceResult,
    EncoderInfo,
    FloatArray,
    Item,
    Metadata,
    Metric,
    Neighbor,
    OddOneOut,
    Query,
    RejectedPoint,
    StoredItem,
    UpsertPoint,
    UpsertResult,
    VectorQuery,
)

R = TypeVar("R")

# The caller's deadline (time.monotonic()), set by the servicer for the call it serves.
call_deadline: ContextVar[float | None] = ContextVar("call_deadline", default=None)


class Calls:
    def __init__(self, engine: Engine, pool: Executor, max_pending: int) -> None:
        self.engine = engine
        self.pool = pool
        self.max_pending = max_pending
        self.pending = 0  # calls queued or running (touched on the event loop only)

    def _admit(self) -> Any:
        """Counts the call in, or refuses it past max_pending; returns its pending gauge."""
        call = current_call.get()
        labels = (call.encoder, call.collection) if call is not None else ("", "")
        if self.pending >= self.max_pending:
            metrics.rejected(*labels).inc()
            raise Overloaded(
                f"the server is busy: {self.pending} calls are waiting or running "
                f"(max_pending {self.max_pending}); retry later"
            )
        gauge = metrics.pending(*labels)
        gauge.inc()
        self.pending += 1
        return gauge

    async def _worker(self, fn: Callable[[], R]) -> R:
        """Runs `fn` on a worker thread, in the call's context (its deadline, its trace),
        unless the caller is gone before it starts."""
        gauge = self._admit()
        deadline = call_deadline.get()
        stop = threading.Event()
        queued = time.time_ns()

        def job() -> R:
            if tracing.recording():
                tracing.span_between("embedspace.queue", queued, time.time_ns())
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded("the call's deadline passed while it was queued")
            if stop.is_set():
                raise Cancelled("the call was cancelled while it was queued")
            return fn()

        context = contextvars.copy_context()
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, context.run, job)
        except asyncio.CancelledError:
            stop.set()
            raise
        finally:
            self.pending -= 1
            gauge.dec()

    async def _batched(self, start: Callable[[], Future[R]]) -> R:
        """Checks and queues on the event loop (`start` never blocks), then awaits the
        batch; a caller that gives up before its batch runs is left out of it."""
        gauge = self._admit()
        try:
            return await asyncio.wrap_future(start())
        finally:
            self.pending -= 1
            gauge.dec()

    # ------------------------------------------------------------ the calls

    async def encoders(self) -> list[EncoderInfo]:
        return await self._worker(self.engine.encoders)

    async def embed(self, encoder: str, items: Sequence[Item]) -> FloatArray:
        if self.engine.embeds_in_batches(encoder):
            return await self._batched(lambda: self.engine.start_embed(encoder, items))
        return await self._worker(lambda: self.engine.embed(encoder, items))

    async def create_collection(
        self,
        name: str,
        encoder: str,
        index: str,
        metric: Metric | None,
        search_params: Mapping[str, float],
        shards: int = 1,
        replicas: int = 1,
    ) -> CollectionInfo:
        e = self.engine
        return await self._worker(
            lambda: e.create_collection(
                name, encoder, index, metric, search_params, shards=shards, replicas=replicas
            )
        )

    async def collections(self) -> list[CollectionInfo]:
        return await self._worker(self.engine.collections)

    async def describe(self, name: str) -> CollectionInfo:
        return await self._worker(lambda: self.engine.describe(name))

    async def drop_collection(self, name: str) -> None:
        await self._worker(lambda: self.engine.drop_collection(name))

    async def backup(self, collection: str, name: str) -> BackupInfo:
        return await self._worker(lambda: self.engine.backup(collection, name))

    async def backups(self) -> list[BackupInfo]:
        return await self._worker(self.engine.backups)

    async def restore(self, backup: str, collection: str) -> CollectionInfo:
        return await self._worker(lambda: self.engine.restore(backup, collection))

    async def upsert(self, collection: str, points: Sequence[UpsertPoint]) -> UpsertResult:
        return await self._worker(lambda: self.engine.upsert(collection, points))

    async def upsert_stream(
        self, messages: AsyncIterable[tuple[str, list[UpsertPoint], dict[int, InvalidInput]]]
    ) -> tuple[UpsertResult, list[RejectedPoint], int]:
        """Bulk loading: each message (a collection, its points, and those that did not
        convert) applied in turn as it arrives, as an upsert is (one worker call each, held
        to the same limits), but leaving out the points that fail validation. Returns the
        totals, the points left out and how many messages came. An error that is not one
        point's ends the stream; the messages before it stay applied."""
        inserted = replaced = count = 0
        rejected: list[RejectedPoint] = []
        async for collection, points, invalid in messages:
            result, left_out = await self._worker(
                functools.partial(
                    self.engine.upsert_valid, collection, points, invalid, request=count
                )
            )
            inserted += result.inserted
            replaced += result.replaced
            rejected += left_out
            count += 1
        return UpsertResult(inserted, replaced), rejected, count

    async def get(self, collection: str, ids: Sequence[str]) -> list[StoredItem]:
        """The stored items of the ids, in their order; unknown ids left out."""
        return await self._worker(lambda: self.engine.get(collection, ids, missing_ok=True))

    async def scan(
        self, collection: str, after: str, limit: int, vectors: bool, metadata: bool
    ) -> tuple[list[StoredItem], int, bool]:
        return await self._worker(
            lambda: self.engine.scan(collection, after, limit, vectors=vectors, metadata=metadata)
        )

    async def count(self, collection: str, where: Metadata) -> int:
        return await self._worker(lambda: self.engine.count(collection, where))

    async def delete(self, collection: str, ids: Sequence[str]) -> int:
        return await self._worker(lambda: self.engine.delete(collection, ids))

    async def search(
        self,
        collection: str,
        query: Query,
        k: int,
        min_score: float | None,
        exclude: Sequence[str],
        where: Metadata,
        params: Mapping[str, float],
    ) -> list[Neighbor]:
        """A search by a plain vector is checked and queued on the event loop (that takes
        microseconds and waits on no lock); items to embed and stored ids to read go to a
        worker first."""

        def start() -> Future[list[Neighbor]]:
            return self.engine.start_search(
                collection, query, k, min_score=min_score, exclude=exclude, where=where,
                params=params,
            )  # fmt: skip

        if isinstance(query, VectorQuery) and self.engine.coalesces_search():
            return await self._batched(start)
        return await self._worker(lambda: start().result())

    async def search_batch(
        self,
        collection: str,
        queries: Sequence[Query],
        k: int,
        min_score: float | None,
        exclude: Sequence[str],
        where: Metadata,
        params: Mapping[str, float],
    ) -> list[list[Neighbor]]:
        return await self._worker(
            lambda: self.engine.search_batch(
                collection, queries, k, min_score=min_score, exclude=exclude, where=where,
                params=params,
            )
        )  # fmt: skip

    async def compare(
        self, collections: Sequence[str], query: Query, k: int
    ) -> tuple[list[tuple[str, str, list[Neighbor]]], FloatArray]:
        return await self._worker(lambda: self.engine.compare(collections, query, k))

    async def distance(
        self, space: SpaceRef, a: Sequence[Query], b: Sequence[Query], metric: Metric | None,
        matrix: bool,
    ) -> DistanceResult:  # fmt: skip
        return await self._worker(
            lambda: self.engine.distance(space, a, b, metric=metric, matrix=matrix)
        )

    async def analogy(
        self,
        collection: str,
        positive: Sequence[tuple[Query, float | None]],
        negative: Sequence[tuple[Query, float | None]],
        k: int,
        method: str,
    ) -> AnalogyResult:
        return await self._worker(
            lambda: self.engine.analogy(collection, positive, negative, k, method=method)
        )

    async def doesnt_match(self, space: SpaceRef, items: Sequence[Query]) -> OddOneOut:
        return await self._worker(lambda: self.engine.doesnt_match(space, items))

    async def mean_vector(
        self, space: SpaceRef, items: Sequence[Query], weights: Sequence[float],
        pre_normalize: bool, post_normalize: bool,
    ) -> FloatArray:  # fmt: skip
        return await self._worker(
            lambda: self.engine.mean_vector(
                space, items, weights, pre_normalize=pre_normalize, post_normalize=post_normalize
            )
        )

"""Micro-batching: concurrent callers' work gathered into one call.

A `MicroBatcher` owns one worker thread. Callers `submit` a list of items and block until
their own results come back. The worker takes everything queued, waits at most `max_wait_s`
for more while the batch is under `max_items`, runs one call over the whole batch, and hands
each caller its slice. A lone caller waits at most `max_wait_s`; while a batch runs, the next
one forms, which is where the gain comes from.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from .config import Settings
from .encoders import Encoder
from .errors import EmbedspaceServerError
from .observe import tracing
from .types import FloatArray, Item, Neighbor, Scalar

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from .index.base import VectorCollection

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")


def then(source: Future[R], fn: Callable[[R], A]) -> Future[A]:
    """A future of `fn(result)`; errors pass through, and cancelling it cancels `source`
    (so a caller that gives up before its batch starts is left out of the batch)."""
    out: Future[A] = Future()

    def give(f: Future[R]) -> None:
        with contextlib.suppress(InvalidStateError):  # `out` was cancelled meanwhile
            if f.cancelled():
                out.cancel()
            elif (error := f.exception()) is not None:
                out.set_exception(error)
            else:
                try:
                    out.set_result(fn(f.result()))
                except Exception as e:
                    out.set_exception(e)

    source.add_done_callback(give)
    out.add_done_callback(lambda o: o.cancelled() and source.cancel())
    return out


@dataclass(frozen=True)
class _Queued(Generic[T, R]):
    """A caller's items waiting for a batch; `caller` is its trace context, when traced."""

    items: list[T]
    future: Future[list[R]]
    caller: Context | None
    queued: int  # time.time_ns()


@dataclass(frozen=True)
class Failed:
    """A result that is an error for the caller whose item it is, and for no other."""

    error: BaseException


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Sequence[R | Failed]],
        *,
        max_items: int,
        max_wait_s: float,
        name: str,
        stage: str = "embedspace.batch",
        initializer: Callable[[], None] | None = None,
    ) -> None:
        """`stage` names the span each traced caller gets for the batch it joined;
        `initializer` runs first on the batch thread (per-thread settings)."""
        self._run = run
        self._initializer = initializer
        self.stage = stage
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self._queue: deque[_Queued[T, R]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0  # how many calls `run` has seen, for tests and metrics
        self._thread = threading.Thread(target=self._loop, name=f"batch-{name}", daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[T]) -> list[R]:
        """Blocks until this caller's results are ready; re-raises the batch's error."""
        return self.submit_nowait(items).result()

    def submit_nowait(self, items: Sequence[T]) -> Future[list[R]]:
        """Queues the items; the future holds this caller's results or the batch's error.
        Cancelling it before its batch starts keeps its items out of the batch."""
        future: Future[list[R]] = Future()
        queued = _Queued(list(items), future, tracing.caller(), time.time_ns())
        with self._cond:
            if self._closed:
                raise RuntimeError("batcher is closed")
            self._queue.append(queued)
            self._cond.notify()
        return future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(10)

    def _take(self) -> list[_Queued[T, R]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return []
            taken = [self._queue.popleft()]
            size = len(taken[0].items)
            deadline = time.monotonic() + self.max_wait_s
            while size < self.max_items:
                if self._queue:
                    nxt = self._queue[0]
                    if size + len(nxt.items) > self.max_items:
                        break
                    taken.append(self._queue.popleft())
                    size += len(nxt.items)
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            return taken

    def _loop(self) -> None:
        if self._initializer is not None:
            self._initializer()
        while True:
            taken = self._take()
            if not taken:
                return
            # From here a future cannot be cancelled; one cancelled before is left out.
            taken = [q for q in taken if q.future.set_running_or_notify_cancel()]
            if not taken:
                continue
            items = [item for q in taken for item in q.items]
            started = time.time_ns()
            try:
                results = self._run(items)
            except BaseException as e:  # every caller of the batch sees the error
                for q in taken:
                    q.future.set_exception(e)
                continue
            self.batches += 1
            # The spans first, so that a call's trace is whole when it has its answer.
            self._trace(taken, started, len(items))
            start = 0
            for q in taken:
                part = results[start : start + len(q.items)]
                start += len(q.items)
                failed = next((r for r in part if isinstance(r, Failed)), None)
                if failed is not None:
                    q.future.set_exception(failed.error)
                else:
                    q.future.set_result([r for r in part if not isinstance(r, Failed)])

    def _trace(self, taken: list[_Queued[T, R]], started: int, size: int) -> None:
        """Each traced caller's wait in the queue, and the batch it joined, as its spans."""
        ended = time.time_ns()
        attributes = {"embedspace.batch.id": self.batches, "embedspace.batch.size": size}
        for q in taken:
            if q.caller is not None:
                tracing.span_between("embedspace.queue", q.queued, started, parent=q.caller)
                tracing.span_between(self.stage, started, ended, attributes, parent=q.caller)


class BatchedEncoder(Encoder):
    """An encoder whose forward passes are shared by concurrent callers. Validation stays
    per caller (one caller's bad item never fails another's batch)."""

    def __init__(
        self,
        inner: Encoder,
        *,
        max_items: int,
        max_wait_s: float,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self.inner = inner
        self.info = inner.info
        self.batcher: MicroBatcher[Item, FloatArray] = MicroBatcher(
            lambda items: list(inner.forward(items)),
            max_items=max_items,
            max_wait_s=max_wait_s,
            name=inner.info.name,
            stage="embedspace.forward",
            initializer=initializer,
        )

    def check(self, label: str, item: Item) -> None:
        self.inner.check(label, item)

    def forward(self, items: Sequence[Item]) -> FloatArray:
        """Waits for the shared forward pass the items join (timed where it runs)."""
        return np.stack(self.batcher.submit(items))

    def _encode(self, items: Sequence[Item]) -> FloatArray:
        return self.inner._encode(items)

    def encode_nowait(
        self, items: Sequence[Item], labels: Sequence[str] | None = None
    ) -> Future[FloatArray]:
        """Validates the items (`labels` name them, as in `encode`), then queues them for
        the next forward pass."""
        self.validate(items, labels)
        queued = self.batcher.submit_nowait(items)
        return then(queued, lambda rows: self._checked(np.stack(rows), len(items)))

    def warmup(self) -> None:
        self.inner.warmup()


# Encoder kinds with a forward pass worth sharing between concurrent callers.
BATCHED_KINDS = ("sentence-transformers", "trained")


def batch_encoders(
    encoders: Sequence[Encoder], settings: Settings, initializer: Callable[[], None] | None
) -> list[Encoder]:
    """The encoders, those whose forward passes concurrent callers should share wrapped in
    a BatchedEncoder (unless embed_batch is 1)."""
    if settings.embed_batch <= 1:
        return list(encoders)
    return [
        BatchedEncoder(
            e,
            max_items=settings.embed_batch,
            max_wait_s=settings.embed_wait_ms / 1000,
            initializer=initializer,
        )
        if e.info.provenance.kind in BATCHED_KINDS
        else e
        for e in encoders
    ]


@dataclass(frozen=True, eq=False)
class SearchRequest:
    vector: FloatArray
    k: int
    exclude: tuple[str, ...]
    where: dict[str, Scalar]
    min_score: float | None
    params: dict[str, float]

    def group(self) -> tuple[object, ...]:
        """Requests of one group share a FAISS call."""
        where, params = tuple(sorted(self.where.items())), tuple(sorted(self.params.items()))
        return (self.k, self.exclude, where, self.min_score, params)

    def run(self, collection: VectorCollection, vectors: list[FloatArray]) -> list[list[Neighbor]]:
        """Searches `vectors` with this request's parameters."""
        return collection.search(
            np.stack(vectors),
            self.k,
            exclude=self.exclude,
            where=self.where,
            min_score=self.min_score,
            params=self.params,
        )


class SearchCoalescer(MicroBatcher[SearchRequest, list[Neighbor]]):
    """Concurrent searches on one collection gathered into one FAISS call per set of
    parameters (k, exclusions, filter, min_score): each caller gets exactly the answer a
    search of its own would give, or its own group's error."""

    def __init__(
        self,
        collection: VectorCollection,
        settings: Settings,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self.collection = collection
        super().__init__(
            self._search_all,
            max_items=settings.search_batch,
            max_wait_s=settings.search_wait_ms / 1000,
            name=f"search-{collection.spec.name}",
            stage="embedspace.faiss",
            initializer=initializer,
        )

    def _search_all(self, requests: list[SearchRequest]) -> list[list[Neighbor] | Failed]:
        # Each query's list goes to its caller as the collection made it: a types.Hits
        # keeps the shards that did not answer.
        answers: list[list[Neighbor] | Failed] = [[] for _ in requests]
        groups: dict[tuple[object, ...], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.group(), []).append(i)
        for members in groups.values():
            first = requests[members[0]]
            try:
                hits: Sequence[list[Neighbor] | Failed] = first.run(
                    self.collection, [requests[i].vector for i in members]
                )
            except EmbedspaceServerError as e:
                hits = [Failed(e)] * len(members)
            for i, h in zip(members, hits, strict=True):
                answers[i] = h
        return answers

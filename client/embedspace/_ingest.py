"""`upsert_many`: bulk loading through the client-streaming UpsertStream RPC.

Points are read lazily from any iterable and cut into messages (at most `batch_size` points
and `max_bytes` bytes each), messages into streams (at most `stream_messages` each), and up
to `in_flight` streams are open at once: threads for `Client` (`run_blocking`), tasks for
`AsyncClient` (`run_async`). Both share the cutting, the retry policy and the bookkeeping
below. A stream that fails with UNAVAILABLE or RESOURCE_EXHAUSTED is sent again whole after
a backoff (upserts are by id, so the messages it had applied are simply written again); one
refused for carrying too many points (the server's max_batch) is sent again in messages of
half the size, and so is everything after it.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from . import _convert as ops
from . import _messages as m
from ._progress import Progress
from ._types import IngestSummary, Point, Rejection
from .errors import (
    Cancelled,
    EmbedspaceError,
    InvalidArgument,
    PointsRejected,
    ResourceExhausted,
    Unavailable,
    from_rpc_error,
)

# Backoff before the n-th resend of a failed stream (from 0): half of min(cap, first * 2**n)
# plus a random part of up to the other half, so that streams failing together spread out.
FIRST_BACKOFF = 0.25
MAX_BACKOFF = 10.0


@dataclass(frozen=True)
class Options:
    batch_size: int
    max_bytes: int
    in_flight: int
    stream_messages: int
    progress: bool
    total: int | None
    stop_on_reject: bool
    on_acknowledged: Callable[[int], object] | None
    retries: int

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_bytes", "in_flight", "stream_messages"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1; got {value!r}")


@dataclass
class _Message:
    """One message of a stream: the position of each of its points in the points given."""

    indexes: list[int]
    request: Any


@dataclass
class _Stream:
    """Consecutive points [start, end) of those given, as messages; `bad` are the points
    among them that could not be converted (they are reported, not sent)."""

    start: int
    end: int
    messages: list[_Message]
    bad: list[Rejection]

    def largest(self) -> int:
        return max((len(x.indexes) for x in self.messages), default=0)

    def requests(self, collection: str, batch_size: int) -> list[Any]:
        """The messages to send, first cut again to `batch_size` points if it shrank."""
        if self.largest() > batch_size:
            self.messages = [
                _Message(x.indexes[a : a + batch_size], piece)
                for x in self.messages
                for a, piece in ops.upsert_pieces(collection, x.request, batch_size)
            ]
        return [x.request for x in self.messages]


class _Cutter:
    """Reads points as streams are wanted, never further."""

    def __init__(self, collection: str, points: Iterable[Point], options: Options) -> None:
        if isinstance(points, Point | str | bytes):
            raise TypeError("upsert_many takes an iterable of Point objects")
        self._collection = collection
        self._points: Iterator[tuple[int, Point]] = enumerate(points)
        self._options = options
        self._overhead = m.upsert_request_bytes(collection)
        self._held: tuple[int, Any, int] | None = None  # read, but for the next stream
        self._position = 0

    def next_stream(self, batch_size: int) -> _Stream | None:
        o = self._options
        start = self._position
        messages: list[_Message] = []
        bad: list[Rejection] = []
        indexes: list[int] = []
        points: list[Any] = []
        size = self._overhead
        # A long run of points that do not convert still ends a stream, to be reported.
        for i, message, n in self._converted(bad, batch_size * o.stream_messages):
            if points and (len(points) >= batch_size or size + n > o.max_bytes):
                messages.append(_Message(indexes, ops.upsert_message(self._collection, points)))
                indexes, points, size = [], [], self._overhead
                if len(messages) == o.stream_messages:
                    self._held = (i, message, n)
                    self._position = i
                    return _Stream(start, i, messages, bad)
            indexes.append(i)
            points.append(message)
            size += n
        if points:
            messages.append(_Message(indexes, ops.upsert_message(self._collection, points)))
        if not messages and not bad:
            return None
        return _Stream(start, self._position, messages, bad)

    def _converted(self, bad: list[Rejection], most_bad: int) -> Iterator[tuple[int, Any, int]]:
        """(position, UpsertPoint message, its bytes) of the points still to send; points
        that do not convert go to `bad`, up to `most_bad` of them."""
        if self._held is not None:
            held, self._held = self._held, None
            self._position = held[0] + 1
            yield held
        for i, point in self._points:
            self._position = i + 1
            if not isinstance(point, Point):
                raise TypeError(f"upsert_many takes Point objects; got a {type(point).__name__} "
                                f"at position {i}")  # fmt: skip
            try:
                message, n = m.upsert_point(point)
            except m.BadPoint as e:
                bad.append(Rejection(i, point.id, e.field, str(e)))
                if len(bad) >= most_bad:
                    return
                continue
            yield i, message, n


class _Plan:
    """The batch size in force, and what to do after a stream fails."""

    def __init__(self, options: Options) -> None:
        self.batch_size = options.batch_size
        self._retries = options.retries
        self._lock = threading.Lock()

    def after_failure(self, stream: _Stream, error: EmbedspaceError, attempt: int) -> float | None:
        """Seconds to wait before sending `stream` again (None: at once, in smaller
        messages, not counted as a retry); raises `error` when it is not worth another try."""
        if isinstance(error, InvalidArgument) and any(
            v.field == "points" for v in error.field_violations
        ):
            largest = stream.largest()
            if largest <= 1:
                raise error
            with self._lock:  # streams failing together halve it once
                self.batch_size = min(self.batch_size, max(1, largest // 2))
            return None
        if isinstance(error, Unavailable | ResourceExhausted) and attempt < self._retries:
            step = min(MAX_BACKOFF, FIRST_BACKOFF * 2.0**attempt)
            return step / 2 + random.uniform(0, step / 2)
        raise error


_POINT_PREFIX = re.compile(r"^points\[\d+\]\.?")


class _Ledger:
    """What the server acknowledged: counts, refused points by position, and the longest
    acknowledged prefix of the points given (reported through `on_acknowledged`)."""

    def __init__(self, options: Options) -> None:
        self._options = options
        self.inserted = self.replaced = self.points = self.done = self.acknowledged = 0
        self.rejected: list[Rejection] = []
        self._ends: dict[int, int] = {}  # start -> end of the streams done past the prefix
        self._start = time.monotonic()

    def complete(self, stream: _Stream, answer: ops.StreamAnswer | None) -> None:
        self.rejected += stream.bad
        if answer is not None:
            self.inserted += answer.inserted
            self.replaced += answer.replaced
            self.points += sum(len(x.indexes) for x in stream.messages)
            for request, point, key, field, reason in answer.rejected:
                try:
                    index = stream.messages[request].indexes[point]
                except IndexError:  # a server outside the contract: keep the report anyway
                    index = -1
                self.rejected.append(Rejection(index, key, _POINT_PREFIX.sub("", field), reason))
        self.done += stream.end - stream.start
        self._ends[stream.start] = stream.end
        before = self.acknowledged
        while self.acknowledged in self._ends:
            self.acknowledged = self._ends.pop(self.acknowledged)
        if self.acknowledged > before and self._options.on_acknowledged is not None:
            self._options.on_acknowledged(self.acknowledged)
        if self.rejected and self._options.stop_on_reject:
            raise PointsRejected(self.summary())

    def summary(self) -> IngestSummary:
        rejected = sorted(self.rejected, key=lambda r: r.index)
        seconds = time.monotonic() - self._start
        return IngestSummary(self.inserted, self.replaced, rejected, seconds, self.points)

    def report(self, progress: Progress, final: bool = False) -> None:
        counts = (self.done, self.inserted + self.replaced, len(self.rejected))
        (progress.close if final else progress.update)(*counts)


def stream_deadline(timeout: float | None, messages: int, options: Options) -> float | None:
    """A stream's time limit: `timeout` for each of its messages and each stream it shares
    the server with (a message of texts waits on the forward passes of all of them)."""
    return None if timeout is None else timeout * messages * options.in_flight


def run_blocking(
    call: Any,
    collection: str,
    points: Iterable[Point],
    options: Options,
    timeout: float | None,
    metadata: Any,
) -> IngestSummary:
    """upsert_many over a blocking stub's UpsertStream (`call`), in `in_flight` threads."""
    plan, ledger = _Plan(options), _Ledger(options)
    cutter = _Cutter(collection, points, options)
    progress = Progress(options.progress, options.total)
    stop = threading.Event()
    calls: set[Any] = set()
    lock = threading.Lock()

    def send(stream: _Stream) -> ops.StreamAnswer | None:
        attempt = 0
        while stream.messages:
            requests = stream.requests(collection, plan.batch_size)
            deadline = stream_deadline(timeout, len(requests), options)
            future = call.future(iter(requests), timeout=deadline, metadata=metadata)
            with lock:
                calls.add(future)
            if stop.is_set():
                future.cancel()
            try:
                return ops.stream_answer(future.result())
            except grpc.FutureCancelledError:
                raise Cancelled("upsert_many stopped") from None
            except grpc.RpcError as e:
                error = from_rpc_error(e)
            finally:
                with lock:
                    calls.discard(future)
            delay = plan.after_failure(stream, error, attempt)
            if delay is not None:
                attempt += 1
                if stop.wait(delay):
                    raise Cancelled("upsert_many stopped")
        return None

    with ThreadPoolExecutor(options.in_flight, thread_name_prefix="embedspace-upsert") as pool:
        running: dict[Future[ops.StreamAnswer | None], _Stream] = {}
        try:
            while True:
                while len(running) < options.in_flight:
                    stream = cutter.next_stream(plan.batch_size)
                    if stream is None:
                        break
                    running[pool.submit(send, stream)] = stream
                if not running:
                    break
                done, _ = wait(running, timeout=progress.wait(), return_when=FIRST_COMPLETED)
                for future in done:
                    ledger.complete(running.pop(future), future.result())
                ledger.report(progress)
        except BaseException:
            stop.set()
            with lock:
                for c in calls:
                    c.cancel()
            for future in running:
                future.cancel()
            raise
        finally:
            ledger.report(progress, final=True)
    return ledger.summary()


async def run_async(
    call: Any,
    collection: str,
    points: Iterable[Point],
    options: Options,
    timeout: float | None,
    metadata: Any,
) -> IngestSummary:
    """upsert_many over an asyncio stub's UpsertStream (`call`), in `in_flight` tasks."""
    plan, ledger = _Plan(options), _Ledger(options)
    cutter = _Cutter(collection, points, options)
    progress = Progress(options.progress, options.total)

    async def send(stream: _Stream) -> ops.StreamAnswer | None:
        attempt = 0
        while stream.messages:
            requests = stream.requests(collection, plan.batch_size)
            try:
                deadline = stream_deadline(timeout, len(requests), options)
                response = await call(iter(requests), timeout=deadline, metadata=metadata)
                return ops.stream_answer(response)
            except grpc.aio.AioRpcError as e:
                error = from_rpc_error(e)
            delay = plan.after_failure(stream, error, attempt)
            if delay is not None:
                attempt += 1
                await asyncio.sleep(delay)
        return None

    running: dict[asyncio.Task[ops.StreamAnswer | None], _Stream] = {}
    try:
        while True:
            while len(running) < options.in_flight:
                stream = cutter.next_stream(plan.batch_size)
                if stream is None:
                    break
                running[asyncio.create_task(send(stream))] = stream
            if not running:
                break
            done, _ = await asyncio.wait(
                set(running), timeout=progress.wait(), return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                ledger.complete(running.pop(task), task.result())
            ledger.report(progress)
    except BaseException:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    finally:
        ledger.report(progress, final=True)
    return ledger.summary()

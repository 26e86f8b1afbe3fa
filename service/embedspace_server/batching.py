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
from typing import Generic, TypeVar

from .encoders import Encoder
from .types import FloatArray, Item

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


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Sequence[R]],
        *,
        max_items: int,
        max_wait_s: float,
        name: str,
    ) -> None:
        self._run = run
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self._queue: deque[tuple[list[T], Future[list[R]]]] = deque()
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
        with self._cond:
            if self._closed:
                raise RuntimeError("batcher is closed")
            self._queue.append((list(items), future))
            self._cond.notify()
        return future

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(10)

    def _take(self) -> list[tuple[list[T], Future[list[R]]]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return []
            taken = [self._queue.popleft()]
            size = len(taken[0][0])
            deadline = time.monotonic() + self.max_wait_s
            while size < self.max_items:
                if self._queue:
                    nxt = self._queue[0]
                    if size + len(nxt[0]) > self.max_items:
                        break
                    taken.append(self._queue.popleft())
                    size += len(nxt[0])
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            return taken

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if not taken:
                return
            # From here a future cannot be cancelled; one cancelled before is left out.
            taken = [(r, f) for r, f in taken if f.set_running_or_notify_cancel()]
            if not taken:
                continue
            items = [item for request, _ in taken for item in request]
            try:
                results = self._run(items)
            except BaseException as e:  # every caller of the batch sees the error
                for _, future in taken:
                    future.set_exception(e)
                continue
            self.batches += 1
            start = 0
            for request, future in taken:
                future.set_result(list(results[start : start + len(request)]))
                start += len(request)


class BatchedEncoder(Encoder):
    """An encoder whose forward passes are shared by concurrent callers. Validation stays
    per caller (one caller's bad item never fails another's batch)."""

    def __init__(self, inner: Encoder, *, max_items: int, max_wait_s: float) -> None:
        self.inner = inner
        self.info = inner.info
        self.batcher: MicroBatcher[Item, FloatArray] = MicroBatcher(
            lambda items: list(inner._encode(items)),
            max_items=max_items,
            max_wait_s=max_wait_s,
            name=inner.info.name,
        )

    def check(self, label: str, item: Item) -> None:
        self.inner.check(label, item)

    def _encode(self, items: Sequence[Item]) -> FloatArray:
        import numpy as np

        return np.stack(self.batcher.submit(items))

    def encode_nowait(self, items: Sequence[Item]) -> Future[FloatArray]:
        """Validates the items, then queues them for the next forward pass."""
        import numpy as np

        self.validate(items)
        queued = self.batcher.submit_nowait(items)
        return then(queued, lambda rows: self._checked(np.stack(rows), len(items)))

    def warmup(self) -> None:
        self.inner.warmup()

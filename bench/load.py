"""Load generators: many clients calling the service in a closed loop, from threads (one
blocking Client each) or from asyncio tasks (one AsyncClient, one channel)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from embedspace import AsyncClient, Client


class ThreadLoad:
    """`clients` threads, each with its own blocking Client, calling in a closed loop."""

    kind = "threads"

    def __init__(self, target: str, clients: int) -> None:
        self.clients = [Client(target, timeout=120) for _ in range(clients)]

    def rate(self, call: Callable[[Client, int], Any], duration: float, clients: int) -> float:
        """Calls per second completed within `duration`, with `clients` in flight."""
        counts = [0] * clients
        errors: list[BaseException] = []
        barrier = threading.Barrier(clients + 1)
        deadline = [0.0]

        def worker(j: int) -> None:
            client, i, n = self.clients[j], j, 0
            barrier.wait()
            try:
                while True:
                    call(client, i)
                    if time.perf_counter() > deadline[0]:
                        break
                    n += 1
                    i += clients
            except BaseException as e:
                errors.append(e)
            counts[j] = n

        threads = [threading.Thread(target=worker, args=(j,)) for j in range(clients)]
        for t in threads:
            t.start()
        deadline[0] = time.perf_counter() + duration
        barrier.wait()
        for t in threads:
            t.join(duration + 120)
        if errors:
            raise errors[0]
        return sum(counts) / duration

    def close(self) -> None:
        for c in self.clients:
            c.close()


class AsyncLoad:
    """One AsyncClient (one channel) shared by `clients` tasks on one event loop."""

    kind = "asyncio"

    def __init__(self, target: str, clients: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = AsyncClient(target, timeout=120)

    def rate(self, call: Callable[[AsyncClient, int], Any], duration: float, clients: int) -> float:
        async def main() -> int:
            counts = [0] * clients
            deadline = time.perf_counter() + duration

            async def task(j: int) -> None:
                i = j
                while True:
                    await call(self.client, i)
                    if time.perf_counter() > deadline:
                        return
                    counts[j] += 1
                    i += clients

            await asyncio.gather(*(task(j) for j in range(clients)))
            return sum(counts)

        done = asyncio.run_coroutine_threadsafe(main(), self.loop).result(duration + 120)
        return done / duration

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

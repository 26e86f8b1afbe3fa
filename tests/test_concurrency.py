"""Readers and writers on one collection at once: no errors, no half-written batch ever
visible, and the answers agree with the state the writes leave."""

from __future__ import annotations

import random
import threading
from typing import Any

import numpy as np
from embedspace import Client


def test_searches_during_upserts_and_deletes_see_whole_batches(
    client: Client, shared_server: Any, collection_name: str
) -> None:
    name = collection_name
    client.create_collection(name, "vec8")
    errors: list[BaseException] = []
    stop = threading.Event()
    live: dict[int, int] = {}  # batch -> size, as acknowledged
    lock = threading.Lock()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        with Client(shared_server.target) as es:
            for b in range(seed * 1000, seed * 1000 + 60):
                size = rng.randint(1, 12)
                ids = [f"b{b}-{i}" for i in range(size)]
                vectors = np.random.default_rng(b).normal(size=(size, 8))
                es.upsert(name, ids, vectors=vectors, metadata=[{"batch": b, "size": size}] * size)
                with lock:
                    live[b] = size
                if rng.random() < 0.3:
                    with lock:
                        victim = rng.choice(sorted(live))
                        n = live.pop(victim)
                    es.delete(name, [f"b{victim}-{i}" for i in range(n)])

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        with Client(shared_server.target) as es:
            while not stop.is_set():
                q = np.random.default_rng(rng.randint(0, 10**6)).normal(size=8)
                hits = es.search(name, q, k=20)
                assert len({h.id for h in hits}) == len(hits)
                batch = rng.randint(0, 2) * 1000 + rng.randint(0, 59)
                found = es.search(name, q, k=50, where={"batch": batch})
                # A batch is all there or not at all.
                assert all(h.metadata["size"] == len(found) for h in found), (batch, found)

    def guard(fn: Any, seed: int) -> None:
        try:
            fn(seed)
        except BaseException as e:
            errors.append(e)

    writers = [threading.Thread(target=guard, args=(writer, s)) for s in range(3)]
    readers = [threading.Thread(target=guard, args=(reader, 10 + s)) for s in range(4)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(120)
    stop.set()
    for t in readers:
        t.join(60)
    assert not errors, errors[:3]
    assert client.describe(name).count == sum(live.values())
    for b, size in live.items():
        found = client.search(name, np.ones(8), k=50, where={"batch": b})
        assert len(found) == size

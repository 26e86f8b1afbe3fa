"""A bounded soak: many concurrent clients, mixed reads and writes over a fixed id pool,
for a fixed time on loopback. No errors, and server memory levels off."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from embedspace import Client, EmbedspaceError

from .serve_process import BIN, ServeProcess

pytestmark = pytest.mark.slow

SECONDS = 24
CLIENTS = 16
POOL = 2000  # ids: writes replace and delete within it, so the data size stays bounded


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_soak_mixed_load_has_no_errors_and_flat_memory(tmp_path: Path) -> None:
    config = tmp_path / "es.toml"
    config.write_text('[[encoders]]\nname = "v"\nkind = "vector"\ndim = 64\n')
    proc = ServeProcess([str(BIN / "embedspace"), "serve", "--config", str(config),
                         "--port", "0", "--data-dir", str(tmp_path / "data")])  # fmt: skip
    try:
        proc.wait_serving(60)
        with Client(proc.target) as es:
            es.create_collection("soak", "v")
            vectors = np.random.default_rng(0).normal(size=(POOL, 64))
            for i in range(0, POOL, 1000):
                es.upsert(
                    "soak", [f"i{j}" for j in range(i, i + 1000)], vectors=vectors[i : i + 1000]
                )
        counts: Counter[str] = Counter()
        errors: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            with Client(proc.target, timeout=30) as es:
                while not stop.is_set():
                    roll = rng.random()
                    try:
                        if roll < 0.6:
                            q = np.random.default_rng(rng.randint(0, 10**9)).normal(size=64)
                            es.search("soak", q, k=10)
                            kind = "search"
                        elif roll < 0.9:
                            ids = [f"i{rng.randrange(POOL)}" for _ in range(rng.randint(1, 8))]
                            ids = list(dict.fromkeys(ids))
                            vectors = np.random.default_rng(seed).normal(size=(len(ids), 64))
                            es.upsert(
                                "soak", ids, vectors=vectors, metadata=[{"s": seed}] * len(ids)
                            )
                            kind = "upsert"
                        else:
                            es.delete("soak", [f"i{rng.randrange(POOL)}"])
                            kind = "delete"
                    except EmbedspaceError as e:
                        with lock:
                            errors.append(f"{type(e).__name__}: {e}")
                        continue
                    with lock:
                        counts[kind] += 1

        threads = [threading.Thread(target=client, args=(s,)) for s in range(CLIENTS)]
        start = time.monotonic()
        for t in threads:
            t.start()
        rss: list[int] = []
        while time.monotonic() - start < SECONDS:
            time.sleep(1)
            rss.append(_rss_kib(proc.proc.pid))
        stop.set()
        for t in threads:
            t.join(30)
        elapsed = time.monotonic() - start
    finally:
        proc.kill()
    total = sum(counts.values())
    print(f"\nsoak: {CLIENTS} clients, {elapsed:.0f} s, {total} calls ({total / elapsed:.0f}/s): "
          f"{dict(counts)}; errors: {len(errors)}; RSS MiB per second: "
          f"{[round(r / 1024) for r in rss]}")  # fmt: skip
    assert not errors, errors[:5]
    assert all(counts[k] > 0 for k in ("search", "upsert", "delete"))
    third = len(rss) // 3
    # Levels off: the last third grows no more than 10% over the middle third's peak.
    assert max(rss[-third:]) <= 1.10 * max(rss[third : 2 * third]), rss

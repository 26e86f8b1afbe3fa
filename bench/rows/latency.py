"""L: latency of small calls, 1 client, sequential, against the gRPC health check on the same
server (the floor: no worker-pool hop)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from embedspace import Client
from embedspace_server.process import ServeProcess
from harness import call_times, cpu_note, interleave, med, pct, say, spread, verdict
from report import Row

from . import Bench


def small_call_latency(b: Bench, server: ServeProcess) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    say("L: latency of small calls, 1 client, sequential")
    p = b.p
    per_block = max(50, p.latency_calls // p.rounds)
    rng = np.random.default_rng(1)
    a, v = rng.normal(size=(2, 8)).astype(np.float32)
    client = Client(server.target, timeout=30)
    channel = grpc.insecure_channel(server.target)
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")
    calls: dict[str, Callable[[], Any]] = {
        "distance": lambda: client.distance(a, v, encoder="v8"),
        "list": lambda: client.collections(),
        "health": lambda: health.Check(request, timeout=30),
    }
    for fn in calls.values():  # warm up: channel, pool threads
        for _ in range(100):
            fn()
    got = interleave(
        b.meter,
        p.rounds,
        [
            (name, f"L {name}", lambda fn=fn: call_times(fn, per_block))
            for name, fn in calls.items()
        ],
    )
    client.close()
    channel.close()
    samples = {k: [x * 1e3 for blk in v for x in blk.value] for k, v in got.items()}
    p50 = {k: [pct([x * 1e3 for x in blk.value], 50) for blk in v] for k, v in got.items()}
    floor = med(p50["health"])
    rows = []
    for name, label in (
        ("distance", "distance, two 8-d vectors (v8 encoder)"),
        ("list", "empty call (ListCollections, no collections)"),
    ):
        s = samples[name]
        rel = [x / y for x, y in zip(p50[name], p50["health"], strict=True)]
        rows.append(
            Row(
                "L",
                f"{label}: p50 / p99 ms, 1 client",
                f"{pct(s, 50):.2f} / {pct(s, 99):.2f}",
                f"gRPC health Check p50 {floor:.2f} ms",
                f"{spread(rel, '{:.2f}')} x health",
                "p50 <= 1 ms",
                verdict(p50[name], 1.0, at_most=True),
            )
        )
    b.report.add(rows, got)
    hs = samples["health"]
    b.report.info.append(
        f"L: {len(hs)} calls per kind; health Check (async servicer, no worker "
        f"pool hop) p50 {pct(hs, 50):.2f} ms, p99 {pct(hs, 99):.2f} ms; "
        + cpu_note("distance blocks", got["distance"])
    )

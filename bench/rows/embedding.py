"""E, E', E8, B: embed throughput at many clients, one text per call, against
sentence-transformers `encode` at batch 32 in this process, and against one client."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from embedspace import AsyncClient, Client
from embedspace_server.process import ServeProcess
from harness import cpu_note, interleave, items_per_s, med, rates, say
from load import AsyncLoad, ThreadLoad
from report import versus

from . import Bench

LOADERS = {"threads": "32 threads x sync Client", "async": "32 asyncio tasks, 1 AsyncClient"}


def embed_throughput(b: Bench, server: ServeProcess) -> None:
    p, texts, model, clients = b.p, b.texts, b.model, b.clients
    nt = len(texts)
    say("E, B: embed throughput")
    threads = ThreadLoad(server.target, clients)
    aload = AsyncLoad(server.target, clients)
    try:

        def sync_call(c: Client, i: int) -> Any:
            return c.embed("minilm", [texts[i % nt]])

        async def async_call(c: AsyncClient, i: int) -> Any:
            return await c.embed("minilm", [texts[i % nt]])

        def int8_call(c: Client, i: int) -> Any:
            return c.embed("minilm-int8", [texts[i % nt]])

        def encode_32(done: int) -> int:
            chunk = [texts[(done + j) % nt] for j in range(32)]
            model.encode(chunk, batch_size=32, show_progress_bar=False)
            return 32

        # Same answers: a sanity check that the service embeds what the raw model does.
        got = threads.clients[0].embed("minilm", texts[:4])
        want = model.encode(texts[:4], show_progress_bar=False)
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        warm = min(1.0, p.block_s / 2)
        threads.rate(sync_call, warm, clients)
        threads.rate(int8_call, warm, clients)
        asyncio.run_coroutine_threadsafe(async_call(aload.client, 0), aload.loop).result(60)
        aload.rate(async_call, warm, clients)
        blocks = interleave(
            b.meter,
            p.rounds,
            [
                ("raw", "E raw", lambda: items_per_s(p.block_s, encode_32)),
                ("threads", "E threads", lambda: threads.rate(sync_call, p.block_s, clients)),
                ("async", "E asyncio", lambda: aload.rate(async_call, p.block_s, clients)),
                ("one", "B 1 client", lambda: threads.rate(sync_call, p.block_s, 1)),
                ("int8", "E8 int8", lambda: threads.rate(int8_call, p.block_s, clients)),
            ],
        )
    finally:
        threads.close()
        aload.close()
    better = "threads" if med(rates(blocks["threads"])) >= med(rates(blocks["async"])) else "async"
    other = "async" if better == "threads" else "threads"
    raw = blocks["raw"]
    rows = [
        versus(
            "E",
            f"embed texts/s, {clients} clients, 1 text per call ({LOADERS[better]})",
            blocks[better],
            raw,
            "encode b32",
            goal=0.8,
        ),
        versus(
            "E'",
            f"the same with the other load generator ({LOADERS[other]})",
            blocks[other],
            raw,
            "encode b32",
        ),
        versus(
            "E8",
            f"the same through the openvino-int8 backend ({LOADERS['threads']}) / PyTorch",
            blocks["int8"],
            raw,
            "encode b32",
        ),
        versus(
            "B",
            f"embed texts/s, {clients} clients / 1 client (batching gain)",
            blocks[better],
            blocks["one"],
            "at 1 client",
            goal=3.0,
        ),
    ]
    b.report.add(rows, blocks)
    info = b.report.info
    info.append(f"E: service vectors vs raw encode, cosine >= {cos.min():.6f} (4 texts)")
    for k, label in (
        ("raw", "E raw encode"),
        ("threads", "E 32 threads"),
        ("async", "E 32 asyncio"),
        ("one", "B 1 client"),
        ("int8", "E8 32 threads, int8"),
    ):
        info.append(cpu_note(label, blocks[k]))

"""K3: search QPS through SearchBatch (`Client.search_batch`), the held-out queries in calls
of 100, one client, over the Flat collection of K, against `faiss.IndexFlatIP.search` with
the same calls of 100 in this process."""

from __future__ import annotations

import itertools

import numpy as np
from data import DIM, K, WordSet
from embedspace import Client
from embedspace_server.process import ServeProcess
from harness import cpu_note, interleave, items_per_s, say
from report import versus

from . import Bench

PER_CALL = 100


def batch_search(b: Bench, server: ServeProcess, words: WordSet) -> None:
    """Uses the collection "flat" the K rows left on `server`, or makes it."""
    import faiss

    p, info, q = b.p, b.report.info, words.queries
    nq = len(q)
    calls = [q[i : i + PER_CALL] for i in range(0, nq, PER_CALL)]
    admin = Client(server.target, timeout=600)
    try:
        if "flat" not in {c.name for c in admin.collections()}:
            admin.create_collection("flat", "minilm", index="Flat")
            took = words.upload(admin, "flat")
            info.append(f"K3: upload: {p.n} x {DIM} into Flat in {took:.1f}s")
        say("K3: SearchBatch in calls of 100 against FAISS in calls of 100")
        raw = faiss.IndexFlatIP(DIM)
        raw.add(words.vectors)
        _, exact = raw.search(q, K)
        got = [hits for call in calls for hits in admin.search_batch("flat", call, K)]
        agree = np.mean(
            [
                len({h.id for h in hits} & {words.words[j] for j in row}) / K
                for hits, row in zip(got, exact, strict=True)
            ]
        )
        turn = itertools.cycle(calls)

        def service(done: int) -> int:
            call = next(turn)
            admin.search_batch("flat", call, K)
            return len(call)

        def library(done: int) -> int:
            call = next(turn)
            raw.search(call, K)
            return len(call)

        warm = min(1.0, p.block_s / 2)
        items_per_s(warm, service)
        items_per_s(warm, library)
        blocks = interleave(
            b.meter,
            p.rounds,
            [
                ("raw", "K3 raw", lambda: items_per_s(p.block_s, library)),
                ("batch", "K3 SearchBatch", lambda: items_per_s(p.block_s, service)),
            ],
        )
    finally:
        admin.close()
    b.report.add(
        [
            versus(
                "K3",
                f"search QPS, SearchBatch calls of {PER_CALL} queries ({nq} held-out words), "
                f"1 client, {p.n}x{DIM} Flat",
                blocks["batch"], blocks["raw"], f"FAISS {PER_CALL} per call", goal=0.8,
            )
        ],
        blocks,
    )  # fmt: skip
    info.append(f"K3: SearchBatch answers vs raw FAISS exact: recall@10 {agree:.4f}")
    info.append(cpu_note("K3 raw, calls of 100", blocks["raw"]))
    info.append(cpu_note("K3 SearchBatch, calls of 100", blocks["batch"]))

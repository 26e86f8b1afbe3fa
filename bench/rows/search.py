"""K, K', K2, K2', A: search QPS at many clients, one query per call, on a Flat collection
against `faiss.IndexFlatIP.search` in this process (one query a call, all in one call, and
in calls of as many queries as there are clients), and an approximate index against Flat."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from data import CHUNK, DIM, K, WordSet
from embedspace import AsyncClient, Client
from embedspace_server.process import ServeProcess
from harness import Block, cpu_note, interleave, items_per_s, med, rates, say, spread
from load import AsyncLoad, ThreadLoad
from report import Row, versus

from . import Bench
from .embedding import LOADERS

Params = dict[str, float] | None  # search_params of a call (None: the index's defaults)


def _has_search_params() -> bool:
    from embedspace.v1 import embedspace_pb2 as pb

    in_proto = "search_params" in pb.SearchRequest.DESCRIPTOR.fields_by_name
    return in_proto and "search_params" in inspect.signature(Client.search).parameters


def search_throughput(
    b: Bench, server: ServeProcess, words: WordSet, *, flat_rows: bool, ann: str | None
) -> None:
    """`flat_rows`: the K and K2 rows; `ann`: the index of the A row (None: no A)."""
    import faiss

    p, q, clients, info = b.p, words.queries, b.clients, b.report.info
    nq = len(q)
    admin = Client(server.target, timeout=600)
    admin.create_collection("flat", "minilm", index="Flat")
    took = words.upload(admin, "flat")
    info.append(
        f"upload: {p.n} x {DIM} into Flat in {took:.1f}s "
        f"({p.n / took:.0f} vectors/s, upserts of {CHUNK})"
    )
    if ann:
        admin.create_collection("ann", "minilm", index=ann)
        took = words.upload(admin, "ann")
        info.append(f"upload: {p.n} x {DIM} into {ann} in {took:.1f}s")
    say("K, K2, A: raw FAISS reference")
    raw = faiss.IndexFlatIP(DIM)
    raw.add(words.vectors)
    _, exact = raw.search(q, K)
    exact_ids = [{words.words[j] for j in row} for row in exact]

    def recall(name: str, params: Params = None) -> float:
        def one(i: int) -> float:
            kw = {"search_params": params} if params else {}
            hits = admin.search(name, q[i], K, **kw)
            return len({h.id for h in hits} & exact_ids[i]) / K

        with ThreadPoolExecutor(8) as ex:
            return float(np.mean(list(ex.map(one, range(nq)))))

    flat_recall = recall("flat")
    info.append(f"K: service Flat answers vs raw FAISS exact: recall@10 {flat_recall:.4f}")
    recalls: dict[str, float] = {}
    tuned: Params = None
    if ann:
        recalls, tuned, sweep = _tune(ann, recall)
        info.append(f"A: {ann} recall@10 vs exact over {nq} held-out words: {sweep}")

    def loop_step(done: int) -> int:
        raw.search(q[done % nq : done % nq + 1], K)
        return 1

    def raw_batch() -> float:
        start = time.perf_counter()
        raw.search(q, K)
        return nq / (time.perf_counter() - start)

    def by_clients(done: int) -> int:
        """FAISS in calls of as many queries as clients: the most one coalesced batch of
        that many concurrent callers can reach."""
        i = done % nq
        raw.search(np.take(q, range(i, i + clients), axis=0, mode="wrap"), K)
        return clients

    threads = ThreadLoad(server.target, clients)
    aload = AsyncLoad(server.target, clients)

    def calls(name: str, params: Params) -> tuple[Any, Any]:
        kw = {"search_params": params} if params else {}

        def sync_call(c: Client, i: int) -> Any:
            return c.search(name, q[i % nq], K, **kw)

        async def async_call(c: AsyncClient, i: int) -> Any:
            return await c.search(name, q[i % nq], K, **kw)

        return sync_call, async_call

    plans: list[tuple[str, str, Params]] = [("flat", "flat", None)]
    if ann:
        plans.append(("ann", "ann", None))
        if tuned:
            plans.append(("ann-tuned", "ann", tuned))
    timed: list[tuple[str, str, Callable[[], Any]]] = [
        ("loop", "K raw loop", lambda: items_per_s(p.block_s, loop_step)),
        ("batch", "K2 raw batch", raw_batch),
        ("by", "K2 raw by clients", lambda: items_per_s(p.block_s, by_clients)),
    ]
    try:
        warm = min(1.0, p.block_s / 2)
        items_per_s(p.block_s, loop_step)
        raw_batch()
        for key, name, params in plans:
            s, a = calls(name, params)
            threads.rate(s, warm, clients)
            aload.rate(a, warm, clients)
            timed += [
                (
                    f"{key}/threads",
                    f"{key} threads",
                    lambda s=s: threads.rate(s, p.block_s, clients),
                ),
                (f"{key}/async", f"{key} asyncio", lambda a=a: aload.rate(a, p.block_s, clients)),
            ]
        blocks = interleave(b.meter, p.rounds, timed)
    finally:
        threads.close()
        aload.close()
        admin.close()
    ft, fa = rates(blocks["flat/threads"]), rates(blocks["flat/async"])
    best = "threads" if med(ft) >= med(fa) else "async"
    rows = _flat_rows(b, blocks, best, nq) if flat_rows else []
    if ann:
        rows += _ann_rows(b, blocks, best, ann, recalls, tuned)
    b.report.add(rows, blocks)
    info.append(
        f"search load generator: threads {spread(ft)} QPS vs asyncio "
        f"{spread(fa)} QPS on Flat; rows use {LOADERS[best]}"
    )
    for k, label in (
        ("loop", "K raw loop"),
        ("batch", "K2 raw batch"),
        ("by", f"K2 raw in calls of {clients}"),
        ("flat/threads", "Flat 32 threads"),
        ("flat/async", "Flat 32 asyncio"),
        ("ann/" + best, f"{ann} 32 {best}"),
    ):
        if k in blocks:
            info.append(cpu_note(label, blocks[k]))


def _tune(ann: str, recall: Callable[..., float]) -> tuple[dict[str, float], Params, str]:
    """The recall of `ann` with its defaults ("ann"), the least efSearch (HNSW) that reaches
    0.95 where they do not and the server takes search_params, with its recall
    ("ann-tuned"), and the sweep in words."""
    params_ok = _has_search_params()
    default = recall("ann")
    recalls = {"ann": default}
    sweep = [f"default {default:.3f}"]
    tuned: Params = None
    if params_ok and default < 0.95 and "HNSW" in ann:
        for ef in (32, 48, 64, 96, 128, 192, 256):
            try:
                r = recall("ann", {"efSearch": ef})
            except Exception as e:  # the server may not honour it yet
                sweep.append(f"efSearch={ef}: {type(e).__name__}: {e}"[:160])
                break
            sweep.append(f"efSearch={ef} {r:.3f}")
            if r >= 0.95:
                tuned, recalls["ann-tuned"] = {"efSearch": float(ef)}, r
                break
    missing = (
        "; this server has no search_params (efSearch/nprobe cannot be set), so only the default"
    )
    return recalls, tuned, ", ".join(sweep) + ("" if params_ok else missing)


def _flat_rows(b: Bench, blocks: dict[str, list[Block]], best: str, nq: int) -> list[Row]:
    other = "async" if best == "threads" else "threads"
    flat, loop, clients = blocks[f"flat/{best}"], blocks["loop"], b.clients
    return [
        versus(
            "K",
            f"search QPS, {clients} clients, 1 query per call, {b.p.n}x{DIM} Flat "
            f"({LOADERS[best]})",
            flat, loop, "FAISS 1-query loop", fmt="{:.1f}", goal=5.0,
        ),
        versus(
            "K'",
            f"the same with the other load generator ({LOADERS[other]})",
            blocks[f"flat/{other}"], loop, "FAISS 1-query loop", fmt="{:.1f}",
        ),
        versus(
            "K2",
            "the same / FAISS with all queries in one call",
            flat, blocks["batch"], f"FAISS {nq} in 1 call", goal=0.5,
        ),
        versus(
            "K2'",
            f"the same / FAISS in calls of {clients} queries (the most one coalesced batch of "
            f"{clients} clients holds)",
            flat, blocks["by"], f"FAISS {clients} per call",
        ),
    ]  # fmt: skip


def _ann_rows(
    b: Bench,
    blocks: dict[str, list[Block]],
    best: str,
    ann: str,
    recalls: dict[str, float],
    tuned: Params,
) -> list[Row]:
    flat, goal = blocks[f"flat/{best}"], ">= 5 at recall >= 0.95"
    rows = [
        versus(
            "A",
            f"{ann} search QPS, {b.clients} clients, default params, recall@10 "
            f"{recalls['ann']:.3f} (goal >= 0.95)",
            blocks[f"ann/{best}"], flat, "Flat via service", fmt="{:.1f}", goal=5.0,
            goal_text=goal, met="NO (recall)" if recalls["ann"] < 0.95 else None,
        )
    ]  # fmt: skip
    if tuned:
        rows.append(
            versus(
                "A",
                f"{ann}, efSearch={tuned['efSearch']:.0f} per query, recall@10 "
                f"{recalls['ann-tuned']:.3f}",
                blocks[f"ann-tuned/{best}"], flat, "Flat via service", fmt="{:.1f}", goal=5.0,
                goal_text=goal,
            )
        )  # fmt: skip
    return rows

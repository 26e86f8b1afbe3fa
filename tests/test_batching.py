"""Dynamic batching of embeddings and coalesced search: fewer, larger calls, and never a
different answer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from embedspace import Client, Ref
from embedspace_server.batching import MicroBatcher
from embedspace_server.types import Text

from .words import analogy_words


def test_concurrent_embeds_share_forward_passes_and_equal_lone_ones(
    start_server: Any, minilm: Any
) -> None:
    texts = analogy_words()[:96]
    expected = minilm.encode([Text(t) for t in texts])
    with start_server(embed_batch=32, embed_wait_ms=20) as server:
        (batched,) = server.server._batched
        with ThreadPoolExecutor(24) as pool:
            rows = list(pool.map(lambda t: _embed_one(server.target, t), texts))
        assert batched.batcher.batches < len(texts)  # calls were gathered
        np.testing.assert_allclose(np.stack(rows), expected, atol=2e-6)
        # A bad item fails only its own call, not the batch it would have joined.
        with Client(server.target) as es:
            from embedspace import InvalidArgument

            with pytest.raises(InvalidArgument):
                es.embed("minilm", [""])
            assert es.embed("minilm", ["fine"]).shape == (1, 384)


def _embed_one(target: str, text: str) -> Any:
    with Client(target) as es:
        return es.embed("minilm", [text])[0]


def test_coalesced_searches_answer_as_lone_ones(start_server: Any, tmp_path: Any) -> None:
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(1000, 8)).astype(np.float32)
    queries = rng.normal(size=(60, 8)).astype(np.float32)
    meta = [{"m": i % 3} for i in range(1000)]

    def run(server: Any) -> list[Any]:
        with Client(server.target) as es:
            es.create_collection("c", "vec8")
            es.upsert("c", [f"p{i}" for i in range(1000)], vectors=vectors, metadata=meta)

            def one(i: int) -> Any:
                # Mixed parameters: each group is one FAISS call; answers stay per query.
                kwargs: dict[str, Any] = [{}, {"where": {"m": 1}}, {"exclude": ["p1", "p2"]},
                                          {"k": 3}, {"min_score": 0.5}][i % 5]  # fmt: skip
                query = queries[i] if i % 7 else Ref(f"p{i}")
                with Client(server.target) as c:
                    return c.search("c", query, **kwargs)

            with ThreadPoolExecutor(30) as pool:
                return list(pool.map(one, range(60)))

    with start_server(tmp_path / "a", search_batch=64, search_wait_ms=20) as server:
        coalesced = run(server)
        batcher = server.server.engine._coalescers["c"]
        assert batcher.batches < 60
    with start_server(tmp_path / "b", search_batch=1) as server:
        alone = run(server)
        assert not server.server.engine._coalescers
    # The same neighbours in the same order. Scores agree to float32 rounding: FAISS's
    # kernels sum in a different order for different batch sizes (a batch of 20 or more
    # queries is one matrix product), alone or coalesced.
    assert [[n.id for n in a] for a in coalesced] == [[n.id for n in a] for a in alone]
    for a, b in zip(coalesced, alone, strict=True):
        np.testing.assert_allclose([n.score for n in a], [n.score for n in b], atol=1e-6)


def test_a_full_batch_never_waits_and_errors_reach_every_caller() -> None:
    calls: list[int] = []

    def run(items: list[int]) -> list[int]:
        calls.append(len(items))
        if -1 in items:
            raise ValueError("bad batch")
        return [i * 2 for i in items]

    batcher = MicroBatcher(run, max_items=4, max_wait_s=3600, name="t")
    try:
        # Four items fill a batch: it runs at once instead of waiting an hour for company.
        assert batcher.submit([1, 2, 3, 4]) == [2, 4, 6, 8]
        results: list[Any] = []
        gate = threading.Barrier(2)

        def submit(items: list[int]) -> None:
            gate.wait()
            try:
                results.append(batcher.submit(items))
            except ValueError as e:
                results.append(str(e))

        threads = [threading.Thread(target=submit, args=(x,)) for x in ([-1, 5], [6, 7])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(map(str, results)) == ["bad batch", "bad batch"]
    finally:
        batcher.close()
    assert calls[0] == 4 and calls[1:] == [4]


def test_a_caller_that_gives_up_while_queued_is_left_out_of_the_batch() -> None:
    seen: list[list[int]] = []
    running, release = threading.Event(), threading.Event()

    def run(items: list[int]) -> list[int]:
        seen.append(items)
        running.set()
        assert release.wait(10)
        return items

    batcher = MicroBatcher(run, max_items=8, max_wait_s=0, name="t")
    try:
        first = batcher.submit_nowait([1])
        assert running.wait(10)  # the batch [1] runs; what comes now queues
        gave_up = batcher.submit_nowait([2])
        kept = batcher.submit_nowait([3])
        assert gave_up.cancel()
        release.set()
        assert first.result(10) == [1] and kept.result(10) == [3]
    finally:
        batcher.close()
    assert seen == [[1], [3]]


def test_batched_calls_answer_on_the_event_loop_and_errors_keep_their_status(
    start_server: Any,
) -> None:
    """Searches by a plain vector and embeds for a batching encoder skip the worker pool: a
    pool of one busy worker does not hold them up, and their errors are the same statuses
    as on the pool path."""
    from embedspace import InvalidArgument, NotFound

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    with start_server(workers=1) as server, Client(server.target) as es:
        es.create_collection("c", "vec8")
        es.upsert("c", [f"p{i}" for i in range(50)], vectors=vectors)
        block = threading.Event()
        server.server.pool.submit(block.wait, 30)  # the only worker is busy
        try:
            hits = es.search("c", vectors[7], k=3, timeout=10)
            assert hits[0].id == "p7"
            assert es.embed("minilm", ["a red apple"], timeout=10).shape == (1, 384)
            with pytest.raises(InvalidArgument, match="dimension"):
                es.search("c", np.ones(5, np.float32), timeout=10)
            with pytest.raises(NotFound):
                es.search("nope", vectors[0], timeout=10)
            with pytest.raises(InvalidArgument, match="empty text"):
                es.embed("minilm", ["fine", ""], timeout=10)
        finally:
            block.set()
        assert server.server.servicer.calls.pending == 0

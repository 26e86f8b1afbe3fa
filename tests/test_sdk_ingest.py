"""upsert_many against a real server: bulk loading through UpsertStream, lazily, several
streams at once; refused points reported by position; resuming points acknowledged in
order; retries while a server starts; halving the batch against a small max_batch;
progress lines. Sync (threads) and async (tasks)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Collection, Iterator
from typing import Any

import numpy as np
import pytest
from embedspace import (
    AsyncClient,
    Client,
    IngestSummary,
    InvalidArgument,
    NotFound,
    Point,
    PointsRejected,
    Rejection,
    Unavailable,
)

DIM = 8


def _vectors(n: int, seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


class Source:
    """Points read one at a time, counting how far they have been read."""

    def __init__(
        self, vectors: np.ndarray, bad: dict[int, Point] | None = None, pause: float = 0.0
    ) -> None:
        self.vectors, self.bad, self.pause, self.read = vectors, bad or {}, pause, 0

    def __iter__(self) -> Iterator[Point]:
        for i, v in enumerate(self.vectors):
            self.read = i + 1
            time.sleep(self.pause)  # a slow source: a file being parsed, say
            yield self.bad.get(i) or Point(f"p{i}", vector=v, metadata={"i": i})


def _assert_stored(es: Client, name: str, vectors: np.ndarray, skip: Collection[int] = ()) -> None:
    """The collection holds exactly the points p0... of `vectors` but those in `skip`."""
    keep = [i for i in range(len(vectors)) if i not in skip]
    assert es.count(name) == len(keep)
    stored = {s.id: s for s in es.scan_all(name, page_size=20)}
    assert sorted(stored) == sorted(f"p{i}" for i in keep)
    got = np.stack([stored[f"p{i}"].vector for i in keep])
    expected = vectors[keep] / np.linalg.norm(vectors[keep], axis=1, keepdims=True)  # cosine
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert [stored[f"p{i}"].metadata["i"] for i in keep] == keep


def test_upsert_many_stores_exactly_the_points_given(client: Client, collection_name: str) -> None:
    n = 3000
    vectors = _vectors(n)
    client.create_collection(collection_name, "vec8")
    source, acknowledged, read_then = Source(vectors), [], []

    def on_acknowledged(done: int) -> None:
        acknowledged.append(done)
        read_then.append(source.read)

    summary = client.upsert_many(collection_name, source, batch_size=100, stream_messages=4,
                                 in_flight=3, on_acknowledged=on_acknowledged)  # fmt: skip
    assert isinstance(summary, IngestSummary)
    assert (summary.inserted, summary.replaced, summary.points, summary.rejected) == (n, 0, n, [])
    assert summary.seconds > 0
    _assert_stored(client, collection_name, vectors)
    assert acknowledged == sorted(set(acknowledged)) and acknowledged[-1] == n
    assert all(done % 400 == 0 or done == n for done in acknowledged)  # whole streams
    # Read lazily: never more than the streams in flight (and the one point held back) ahead.
    assert all(
        read - done <= 3 * 400 + 1 for read, done in zip(read_then, acknowledged, strict=True)
    )
    again = client.upsert_many(collection_name, Source(vectors[:500]), in_flight=2)
    assert (again.inserted, again.replaced, again.points) == (0, 500, 500)
    assert client.count(collection_name) == n


def test_upsert_many_reports_refused_points_by_position_and_stores_the_rest(
    client: Client, collection_name: str
) -> None:
    n = 1000
    vectors = _vectors(n, seed=12)
    client.create_collection(collection_name, "vec8")
    bad = {
        123: Point("p123", vector=np.ones(DIM - 1)),  # refused by the server
        456: Point("p456", vector=np.ones(DIM), metadata={"tags": ["a"]}),  # by the SDK
        789: Point("p789", item="a text, in a collection of vectors"),
    }
    summary = client.upsert_many(collection_name, Source(vectors, bad), batch_size=64,
                                 stream_messages=2, in_flight=2)  # fmt: skip
    assert [(r.index, r.id, r.field) for r in summary.rejected] == [
        (123, "p123", "vector"), (456, "p456", "metadata"), (789, "p789", "item")]  # fmt: skip
    assert all(isinstance(r, Rejection) and r.reason for r in summary.rejected)
    assert "dimension 8" in summary.rejected[0].reason
    assert (summary.inserted, summary.points) == (n - 3, n - 1)  # the SDK's one was not sent
    _assert_stored(client, collection_name, vectors, skip=set(bad))
    assert client.get(collection_name, ["p123", "p456", "p789"]).missing_ids == [
        "p123", "p456", "p789"]  # fmt: skip


def test_stop_on_reject_raises_at_the_first_refused_point(
    client: Client, collection_name: str
) -> None:
    vectors = _vectors(600, seed=13)
    client.create_collection(collection_name, "vec8")
    acknowledged: list[int] = []
    with pytest.raises(PointsRejected, match=r"point 250 .*'p250'") as info:
        client.upsert_many(collection_name, Source(vectors, {250: Point("p250", vector=[1.0])}),
                           batch_size=50, stream_messages=1, in_flight=1, stop_on_reject=True,
                           on_acknowledged=acknowledged.append)  # fmt: skip
    summary = info.value.summary
    assert [r.index for r in summary.rejected] == [250]
    assert summary.points == 300 and acknowledged[-1] == 300  # the stream holding it is done
    assert client.count(collection_name) == 299  # nothing after that stream was sent


def test_errors_that_are_not_a_points_end_the_load(client: Client) -> None:
    with pytest.raises(NotFound, match="no-such-collection"):
        client.upsert_many("no-such-collection", Source(_vectors(10)))


def test_upsert_many_waits_for_a_server_that_is_starting(
    start_server: Any, collection_name: str
) -> None:
    """While its encoders load, a server answers UNAVAILABLE; streams are sent again, with
    backoff, until it serves. Without retries the load fails: the retries bridged it."""
    vectors = _vectors(2000, seed=14)
    with start_server() as server:
        with Client(server.target) as es:
            es.create_collection(collection_name, "vec8")
        servicer = server.server.servicer
        calls = servicer.calls

        def starting(seconds: float) -> threading.Timer:
            servicer.calls = None  # what the servicer holds until the encoders are loaded
            timer = threading.Timer(seconds, lambda: setattr(servicer, "calls", calls))
            timer.start()
            return timer

        timer = starting(5.0)
        with Client(server.target, retries=0) as es, pytest.raises(Unavailable, match="starting"):
            es.upsert_many(collection_name, Source(vectors))
        timer.cancel()
        # Longer than gRPC's own retries of one call can wait (about 1.5 s at most).
        timer = starting(3.0)
        with Client(server.target, retries=8) as es:
            summary = es.upsert_many(collection_name, Source(vectors), in_flight=3)
            assert summary.points == 2000 and summary.rejected == []
            _assert_stored(es, collection_name, vectors)
        timer.join()


def test_async_upsert_many_waits_for_a_server_that_is_starting(
    start_server: Any, collection_name: str
) -> None:
    vectors = _vectors(1500, seed=15)
    acknowledged: list[int] = []
    with start_server() as server:
        with Client(server.target) as es:
            es.create_collection(collection_name, "vec8")
        servicer = server.server.servicer
        calls, servicer.calls = servicer.calls, None
        timer = threading.Timer(3.0, lambda: setattr(servicer, "calls", calls))
        timer.start()

        async def main() -> IngestSummary:
            async with AsyncClient(server.target, retries=8) as es:
                return await es.upsert_many(collection_name, Source(vectors), batch_size=100,
                                            stream_messages=3, in_flight=4,
                                            on_acknowledged=acknowledged.append)  # fmt: skip

        summary = asyncio.run(main())
        timer.join()
        assert (summary.inserted, summary.points) == (1500, 1500)
        assert acknowledged == sorted(set(acknowledged)) and acknowledged[-1] == 1500
        with Client(server.target) as es:
            _assert_stored(es, collection_name, vectors)


def test_the_batch_is_halved_while_the_server_says_it_is_too_big(
    start_server: Any, collection_name: str
) -> None:
    vectors = _vectors(700, seed=16)
    with start_server(max_batch=24) as server, Client(server.target) as es:
        es.create_collection(collection_name, "vec8")
        with pytest.raises(InvalidArgument) as info:  # the signal the halving follows
            es.upsert(collection_name, [f"x{i}" for i in range(25)], vectors=vectors[:25])
        assert [v.field for v in info.value.field_violations] == ["points"]
        summary = es.upsert_many(collection_name, Source(vectors), batch_size=100, in_flight=2)
        assert (summary.inserted, summary.points, summary.rejected) == (700, 700, [])
        _assert_stored(es, collection_name, vectors)


def test_async_upsert_many_reports_refused_points_and_halves_the_batch(
    start_server: Any, collection_name: str
) -> None:
    vectors = _vectors(400, seed=17)
    bad = {7: Point("p7", vector=np.ones(3)), 333: Point("p333", vector=np.ones(3))}
    with start_server(max_batch=30) as server:
        with Client(server.target) as es:
            es.create_collection(collection_name, "vec8")

        async def main() -> IngestSummary:
            async with AsyncClient(server.target) as es:
                return await es.upsert_many(collection_name, Source(vectors, bad),
                                            batch_size=128, in_flight=3)  # fmt: skip

        summary = asyncio.run(main())
        assert [(r.index, r.field) for r in summary.rejected] == [(7, "vector"), (333, "vector")]
        with Client(server.target) as es:
            _assert_stored(es, collection_name, vectors, skip=set(bad))


def test_progress_is_a_line_on_stderr_when_it_is_not_a_terminal(
    client: Client, collection_name: str, capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from embedspace import _progress

    monkeypatch.setattr(_progress, "INTERVAL", 0.1)  # not 5 s: this load takes about 1 s
    client.create_collection(collection_name, "vec8")
    bad = {5: Point("p5", vector=np.ones(2))}
    client.upsert_many(collection_name, Source(_vectors(300), bad, pause=0.003), batch_size=50,
                       stream_messages=1, in_flight=2, progress=True)  # fmt: skip
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) >= 2
    for line in lines:
        assert re.fullmatch(r"upserted \d+ points \(\d+/s\), [01] rejected", line), line
    assert re.fullmatch(r"upserted 299 points \(\d+/s\), 1 rejected", lines[-1])
    quiet = client.upsert_many(collection_name, Source(_vectors(10)))
    assert capfd.readouterr().err == "" and quiet.points == 10


def test_progress_is_a_bar_on_a_terminal(
    client: Client, collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    client.create_collection(collection_name, "vec8")
    bad = {9: Point("p9", vector=np.ones(2))}
    client.upsert_many(collection_name, Source(_vectors(300), bad), batch_size=50,
                       progress=True, total=300)  # fmt: skip
    final = terminal.getvalue().split("\r")[-1]
    assert re.search(r"100%.*300/300", final), final
    assert "points/s" in final and "rejected=1" in final

"""Scans page through a collection in id order from the last id seen: an item stored
throughout comes exactly once, whatever is inserted, replaced, deleted or rebuilt between
pages, in a FAISS collection and in one split over shards; pages can leave out vectors and
metadata. Counts (with a metadata filter) and gets that tolerate unknown ids, alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from embedspace_server.errors import IdNotFound, Unavailable
from embedspace_server.index.base import Spec, VectorCollection
from embedspace_server.index.collection import Collection
from embedspace_server.index.store import CollectionStore
from embedspace_server.types import Metric

from .sharded import ShardedBackend, ShardedCollection

DIM = 4


def flat() -> VectorCollection:
    return Collection.create("c", "v", "Flat", Metric.L2, DIM)


def hnsw() -> VectorCollection:
    """Replaced and deleted vectors stay as tombstones until a rebuild."""
    return Collection.create("c", "v", "HNSW8", Metric.L2, DIM)


def two_shards() -> VectorCollection:
    return ShardedBackend().new(Spec("c", "v", "Flat", Metric.L2, DIM))


KINDS: dict[str, Callable[[], VectorCollection]] = {
    "flat": flat,
    "hnsw": hnsw,
    "two-shards": two_shards,
}


def rebuild(c: VectorCollection) -> int:
    """Rebuilds the shards heavy with tombstones; returns how many."""
    shards = c.shards if isinstance(c, ShardedCollection) else [c]
    rebuilt = 0
    for shard in shards:
        assert isinstance(shard, Collection)
        rebuilt += shard.needs_rebuild() and shard.rebuild()
    return rebuilt


def vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(n, DIM)).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_a_scan_under_writes_returns_every_lasting_item_once_in_id_order(kind: str) -> None:
    rng = np.random.default_rng(11)
    c = KINDS[kind]()
    lasting = [f"s{i:04d}" for i in range(600)]
    # Deleted meanwhile: before, between and after the lasting ids.
    doomed = [f"{p}{i:04d}{q}" for i in range(200) for p, q in (("d", ""), ("s", "x"), ("t", ""))]
    c.upsert(lasting, vectors(len(lasting), rng), [{}] * len(lasting))
    c.upsert(doomed, vectors(len(doomed), rng), [{"d": 1}] * len(doomed))
    stop = threading.Event()
    batches = threading.Semaphore(0)
    errors: list[BaseException] = []
    rebuilds = [0]

    def write() -> None:
        """New ids before and after any cursor, replacements, deletes and rebuilds."""
        wrng = np.random.default_rng(12)
        fresh = 0
        try:
            while not stop.is_set():
                new = [f"{p}{fresh:04d}+" for p in ("a", "n", "s", "z")]
                fresh += 1
                c.upsert(new, vectors(len(new), wrng), [{}] * len(new))
                again = [lasting[i] for i in wrng.choice(len(lasting), 5, replace=False)]
                c.upsert(again, vectors(len(again), wrng), [{"again": True}] * len(again))
                gone = [doomed[i] for i in wrng.choice(len(doomed), 4, replace=False)]
                c.delete(gone + new[:2])
                if fresh % 10 == 0:
                    rebuilds[0] += rebuild(c)
                batches.release()
        except BaseException as e:  # reported by the scanning thread
            errors.append(e)
            batches.release()

    writer = threading.Thread(target=write)
    writer.start()
    seen: list[str] = []
    try:
        after, pages = "", 0
        while True:
            assert batches.acquire(timeout=30)  # at least one batch of writes per page
            assert not errors, errors
            page, total = c.scan(after, 7)
            assert total >= len(lasting)
            seen += [item.id for item in page]
            pages += 1
            if len(page) < 7:
                break
            after = page[-1].id
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    assert pages > 100
    assert rebuilds[0] > 0 or kind != "hnsw"
    assert seen == sorted(set(seen))  # in id order, none twice
    assert set(lasting) <= set(seen)
    # Nothing that was never stored, and the collection's own view at the end agrees.
    final, total = c.scan("", 100_000)
    assert [item.id for item in final] == sorted(item.id for item in final)
    assert total == len(final) == len(c)


@pytest.mark.parametrize("kind", KINDS)
def test_pages_are_exact_and_can_leave_out_vectors_and_metadata(kind: str) -> None:
    rng = np.random.default_rng(3)
    c = KINDS[kind]()
    keys = [f"k{i}" for i in rng.permutation(200)] + ["é", "z", "Z", "\U0001f600", "a b"]
    metadata = [{"i": i} if i % 3 else {} for i in range(len(keys))]
    c.upsert(keys, vectors(len(keys), rng), metadata)
    ordered = sorted(keys)  # code point order, which is UTF-8 byte order
    assert ordered == sorted(keys, key=lambda k: k.encode())
    whole = c.get(ordered)
    pages, after = [], ""
    while True:
        page, total = c.scan(after, 9)
        assert total == len(keys)
        if not page:
            break
        assert len(page) == 9 or len(pages) + len(page) == len(keys)
        pages += page
        after = page[-1].id
    assert [item.id for item in pages] == ordered
    for full, paged in zip(whole, pages, strict=True):
        assert np.array_equal(full.vector, paged.vector) and full.metadata == paged.metadata
    bare, total = c.scan(ordered[9], 20, vectors=False, metadata=False)
    assert [item.id for item in bare] == ordered[10:30] and total == len(keys)
    for item in bare:
        assert item.vector.shape == (0,) and item.vector.dtype == np.float32
        assert item.metadata == {}
    no_vectors, _ = c.scan(ordered[9], 20, vectors=False)
    assert [item.metadata for item in no_vectors] == [item.metadata for item in whole[10:30]]
    no_metadata, _ = c.scan(ordered[9], 20, metadata=False)
    assert all(
        np.array_equal(a.vector, b.vector) and a.metadata == {}
        for a, b in zip(no_metadata, whole[10:30], strict=True)
    )
    assert c.scan(ordered[-1], 10) == ([], len(keys))
    assert c.scan("", 0) == ([], len(keys))


@pytest.mark.parametrize("kind", KINDS)
def test_count_with_and_without_a_metadata_filter(kind: str) -> None:
    rng = np.random.default_rng(4)
    c = KINDS[kind]()
    assert c.count() == 0 and c.count({"colour": "red"}) == 0
    keys = [f"p{i}" for i in range(90)]
    metadata = [
        {"colour": ["red", "blue", "green"][i % 3], "n": i % 2, "flag": i % 5 == 0}
        for i in range(60)
    ] + [{}] * 30
    c.upsert(keys, vectors(90, rng), metadata)
    assert c.count() == 90 and c.count({}) == 90 and c.count(None) == 90
    assert c.count({"colour": "red"}) == 20
    assert c.count({"colour": "red", "n": 1}) == 10
    assert c.count({"flag": True}) == 12
    assert c.count({"n": True}) == 0  # a filter on True does not match 1, as in search
    assert c.count({"colour": "purple"}) == 0 and c.count({"missing": 1}) == 0
    c.delete(["p0", "p3"])  # red ones
    c.upsert(["p6"], vectors(1, rng), [{}])  # replaced without metadata: red no more
    c.upsert(["p80"], vectors(1, rng), [{"colour": "red"}])
    assert c.count() == 88 and c.count({"colour": "red"}) == 18


@pytest.mark.parametrize("kind", KINDS)
def test_get_with_missing_ok_leaves_unknown_ids_out(kind: str) -> None:
    rng = np.random.default_rng(5)
    c = KINDS[kind]()
    keys = [f"g{i}" for i in range(20)]
    c.upsert(keys, vectors(20, rng), [{"i": i} for i in range(20)])
    asked = ["nope", "g7", "g3", "absent", "g7", "g15"]
    got = c.get(asked, missing_ok=True)
    assert [item.id for item in got] == ["g7", "g3", "g7", "g15"]
    assert [item.metadata for item in got] == [{"i": 7}, {"i": 3}, {"i": 7}, {"i": 15}]
    assert np.array_equal(got[0].vector, c.get(["g7"])[0].vector)
    assert c.get(["nope", "absent"], missing_ok=True) == []
    with pytest.raises(IdNotFound, match="nope"):
        c.get(asked)


def test_a_sharded_scan_or_count_with_a_shard_down_names_it() -> None:
    """A scan or count that left a shard out would be wrong without saying so."""
    c = two_shards()
    assert isinstance(c, ShardedCollection)
    c.upsert([f"x{i}" for i in range(10)], vectors(10, np.random.default_rng(6)), [{}] * 10)
    c.down = {1}
    with pytest.raises(Unavailable, match="shard 1 of collection 'c'"):
        c.scan("", 5)
    with pytest.raises(Unavailable, match="shard 1 of collection 'c'"):
        c.count()
    c.down = set()
    assert len(c.scan("", 20)[0]) == c.count() == 10


def test_the_id_order_survives_a_restart_with_writes_replayed_from_the_log(
    tmp_path: Path,
) -> None:
    """What the snapshot holds and what the log replays after it both land in id order."""
    rng = np.random.default_rng(7)
    store = CollectionStore(tmp_path)
    c = store.new(Spec("c", "v", "HNSW8", Metric.L2, DIM))
    store.create(c)
    c.upsert([f"m{i}" for i in range(50)], vectors(50, rng), [{}] * 50)
    c.delete([f"m{i}" for i in range(0, 50, 2)])
    assert store.save(c)  # a rebuild, then a snapshot
    c.upsert(["a", "m1", "zz"], vectors(3, rng), [{"late": 1}] * 3)  # only in the log
    c.delete(["m3"])
    want = [item.id for item in c.scan("", 100)[0]]
    store.close()
    store = CollectionStore(tmp_path)
    try:
        loaded = store.load_all()[0]["c"]
        assert [item.id for item in loaded.scan("", 100)[0]] == want == sorted(want)
        assert want[0] == "a" and want[-1] == "zz" and "m3" not in want
        assert [item.id for item in loaded.scan("m1", 2)[0]] == ["m11", "m13"]
        assert loaded.count({"late": 1}) == 3
    finally:
        store.close()

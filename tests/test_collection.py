"""The id map of one collection, checked against a plain dict: label order (insertion order;
a replaced id keeps its label in indexes that remove, and moves to the end in those that
keep tombstones, as it always has), scan pages (id order), vectors, search hits and metadata
stay right through deletes, replacements (in place, in indexes of flat codes), rebuilds and
a reload from a snapshot, and snapshots of the earlier format still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace_server.index import idmap
from embedspace_server.index.collection import Collection
from embedspace_server.index.snapshot import MAGIC_V1, collection_from_state, read_snapshot
from embedspace_server.types import Metric

DIM = 8


class Model:
    """What the collection should hold: a dict keeps insertion order like the labels."""

    def __init__(self, replaced_moves_to_end: bool) -> None:
        self.items: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
        self.replaced_moves_to_end = replaced_moves_to_end

    def upsert(self, c: Collection, keys: list[str], rng: np.random.Generator) -> None:
        vectors = rng.normal(size=(len(keys), DIM)).astype(np.float32)
        metadata = [{"n": int(rng.integers(3))} if rng.random() < 0.3 else {} for _ in keys]
        c.upsert(keys, vectors, metadata)
        for key, v, md in zip(keys, vectors, metadata, strict=True):
            if self.replaced_moves_to_end:
                self.items.pop(key, None)
            self.items[key] = (v, md)

    def delete(self, c: Collection, keys: list[str]) -> None:
        assert c.delete(keys) == len({k for k in keys if k in self.items})
        for key in keys:
            self.items.pop(key, None)

    def check(self, c: Collection) -> None:
        keys = list(self.items)
        assert list(c._ids) == keys
        got, total = c.scan("", len(keys) + 1)
        ordered = sorted(keys)
        assert [item.id for item in got] == ordered and total == len(keys) == len(c)
        # Metadata is kept only for the ids that have some.
        assert len(c._metadata) == sum(1 for _, md in self.items.values() if md)
        if len(keys) > 5:
            assert [item.id for item in c.scan(ordered[4], 7)[0]] == ordered[5:12]
            assert [item.id for item in c.scan(ordered[4] + "\x00", 7)[0]] == ordered[5:12]
        for item in got:
            vector, md = self.items[item.id]
            assert item.metadata == md == c.metadata(item.id)
            if c.spec.index.startswith("SQ"):  # the codes of this very vector
                vector = c._index.sa_decode(c._index.sa_encode(vector[None]))[0]
            assert np.allclose(item.vector, vector)
        if not keys:
            assert c.search(np.ones((1, DIM), np.float32), 3) == [[]]
            return
        # Every stored vector finds itself (HNSW too, at this size and with a wide efSearch).
        params = {"efSearch": 2048} if "HNSW" in c.spec.index else None
        sample = keys[:: max(1, len(keys) // 40)]
        queries = np.stack([self.items[k][0] for k in sample])
        hits = c.search(queries, 1, params=params)
        assert [h[0].id for h in hits] == sample
        assert all(h[0].metadata == self.items[k][1] for h, k in zip(hits, sample, strict=True))
        # A filter finds the ids whose metadata matches, all of them in an exhaustive index;
        # ids without metadata never match.
        want = {k for k, (_, md) in self.items.items() if md.get("n") == 1}
        found = {h.id for h in c.search(queries[:1], len(keys), where={"n": 1}, params=params)[0]}
        assert found == want if params is None else found <= want and len(found) >= len(want) / 2


def reload(c: Collection) -> Collection:
    header, blob, _ = c.state()
    return collection_from_state(json.loads(json.dumps(header)), blob)


@pytest.mark.parametrize("index", ["Flat", "SQ8", "HNSW8"])
def test_the_id_map_follows_a_dict_through_writes_rebuilds_and_reloads(
    index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idmap, "FOLD_MIN", 16)  # fold the recent ids into the arrays often
    rng = np.random.default_rng(3)
    c = Collection.create("c", "v", index, Metric.L2, DIM)
    model = Model(replaced_moves_to_end=index.startswith("HNSW"))
    model.upsert(c, [f"a{i}" for i in range(600)], rng)
    for step in range(8):
        model.delete(c, [f"a{i}" for i in rng.choice(600, 150, replace=False)] + ["nope"])
        model.check(c)
        model.upsert(c, [f"a{i}" for i in rng.choice(600, 150, replace=False)], rng)
        model.check(c)
        model.upsert(c, [f"b{step}-{i}" for i in range(50)], rng)
        model.check(c)
        if step % 2:
            c = reload(c)
            model.check(c)
        if c.needs_rebuild():
            assert c.rebuild()
            assert not c.tombstones
            model.check(c)
        # Labels are positions: an index of flat codes has none to spare.
        assert len(c._ids.by_label) == c._index.ntotal == len(c) + c.tombstones
        assert index.startswith("HNSW") or not c.tombstones
    model.delete(c, list(model.items))
    model.check(c)
    model.upsert(c, ["again", "and"], rng)
    model.check(c)
    model.check(reload(c))


def test_replacing_without_metadata_clears_it() -> None:
    c = Collection.create("c", "v", "Flat", Metric.DOT, DIM)
    ones = np.ones((1, DIM), np.float32)
    c.upsert(["x"], ones, [{"colour": "red"}])
    c.upsert(["x"], ones, [{}])
    assert c.get(["x"])[0].metadata == {} and c.metadata("x") == {}
    assert c.search(ones, 1, where={"colour": "red"}) == [[]]
    assert reload(c).metadata("x") == {}


def test_a_snapshot_with_empty_metadata_per_id_still_loads(tmp_path: Path) -> None:
    """Snapshots written before metadata was kept sparse held {} for every id."""
    c = Collection.create("c", "v", "Flat", Metric.DOT, DIM)
    c.upsert(["x", "y"], np.eye(2, DIM, dtype=np.float32), [{}, {"k": 1}])
    header, blob, _ = c.state()
    header["metadata"] = {"x": {}, "y": {"k": 1}}
    encoded = json.dumps(header).encode()
    path = tmp_path / "snapshot"
    path.write_bytes(MAGIC_V1 + len(encoded).to_bytes(8, "little") + encoded + blob.tobytes())
    loaded = read_snapshot(path)
    assert [(i.id, i.metadata) for i in loaded.scan("", 10)[0]] == [("x", {}), ("y", {"k": 1})]
    assert loaded.search(np.eye(1, DIM, dtype=np.float32), 1)[0][0].id == "x"


@pytest.mark.parametrize("index", ["Flat", "HNSW8"])
def test_a_snapshot_of_an_index_in_an_id_map_still_loads(index: str) -> None:
    """Collections used to wrap their index in FAISS's IndexIDMap2 with labels from a counter:
    Flat moved a replaced vector to the end of the index under its old label (so label order,
    which is scan order, was not index order); HNSW gave it a new label, leaving a tombstone."""
    import faiss

    v = np.random.default_rng(7).normal(size=(4, DIM)).astype(np.float32)
    wrapped = faiss.IndexIDMap2(faiss.index_factory(DIM, index, faiss.METRIC_L2))
    wrapped.add_with_ids(v[:3], np.arange(3))  # a, b, c
    if index == "Flat":
        wrapped.remove_ids(np.array([1]))
        wrapped.add_with_ids(v[3:], np.array([1]))  # b replaced
        ids, want, tombstones = {"a": 0, "b": 1, "c": 2}, ["a", "b", "c"], 0
    else:
        wrapped.add_with_ids(v[3:], np.array([3]))  # b replaced
        ids, want, tombstones = {"a": 0, "c": 2, "b": 3}, ["a", "c", "b"], 1
    spec = {"name": "c", "encoder": "v", "index": index, "metric": "l2", "dim": DIM}
    header = {
        "spec": spec, "next_id": 4 if tombstones else 3, "seq": 5, "ids": ids,
        "metadata": {"b": {"k": 1}}, "tombstones": [1] if tombstones else [],
    }  # fmt: skip
    vectors = {"a": v[0], "b": v[3], "c": v[2]}
    c = collection_from_state(header, faiss.serialize_index(wrapped))
    for loaded in (c, reload(c)):
        items = loaded.scan("", 10)[0]
        assert [item.id for item in items] == ["a", "b", "c"]
        assert list(loaded._ids) == want and loaded.tombstones == tombstones
        assert all(np.array_equal(item.vector, vectors[item.id]) for item in items)
        assert loaded.metadata("b") == {"k": 1} and loaded.seq == 5
        hits = loaded.search(v[[0, 3, 2]], 1)
        assert [h[0].id for h in hits] == ["a", "b", "c"]
    c.upsert(["a", "d"], v[1:3], [{}, {}])
    assert [i.id for i in c.scan("", 10)[0]] == ["a", "b", "c", "d"]
    assert list(c._ids) == (["a", "b", "c", "d"] if index == "Flat" else ["c", "b", "a", "d"])


def test_a_data_directory_of_format_1_loads_and_is_rewritten_in_format_2(tmp_path: Path) -> None:
    """tests/data/format1: written by the release before snapshot checksums (Flat and HNSW
    collections, each a snapshot and writes logged after it)."""
    import shutil

    from embedspace_server.encoders import EncoderRegistry
    from embedspace_server.encoders.vector import VectorEncoder
    from embedspace_server.engine import Engine
    from embedspace_server.index import CollectionStore
    from embedspace_server.index.snapshot import MAGIC

    data = tmp_path / "data"
    shutil.copytree(Path(__file__).parent / "data" / "format1", data)
    want = {f"x{i}": np.arange(4, dtype=np.float32) + i for i in (0, 3, 4, 5)}
    want["late"] = np.full(4, 9, np.float32)

    def check() -> None:
        store = CollectionStore(data)
        try:
            engine = Engine(EncoderRegistry([VectorEncoder("v4", 4, Metric.L2)]), store)
            for name in ("flat", "hnsw"):
                collection = engine.collection(name)
                items, total = collection.scan("", 100)
                assert total == len(want) and {i.id for i in items} == set(want)
                for item in items:
                    assert np.array_equal(item.vector, want[item.id])
                assert collection.get(["x3", "late"])[0].metadata == {"i": 3}
                assert collection.get(["late"])[0].metadata == {"late": True}
            engine.snapshot()
            engine.close()
        finally:
            store.close()

    check()
    for name in ("flat", "hnsw"):
        assert (data / "collections" / name / "snapshot").read_bytes().startswith(MAGIC)
    check()


@pytest.mark.parametrize("index", ["HNSW8", "IVF4,Flat"])
def test_writes_during_a_rebuild_are_kept_and_do_not_stop_it(
    monkeypatch: pytest.MonkeyPatch, index: str
) -> None:
    """Steady writes used to make every rebuild give up (tombstones then grew without
    bound); now what is written while the new index is built is applied to it too."""
    from embedspace_server.index import layout as module

    rng = np.random.default_rng(5)
    exhaustive = {"nprobe": 4} if index.startswith("IVF") else {}  # what Model.check needs
    c = Collection.create("c", "v", index, Metric.L2, DIM, exhaustive)
    model = Model(replaced_moves_to_end=True)
    model.upsert(c, [f"x{i}" for i in range(200)], rng)
    model.delete(c, [f"x{i}" for i in range(0, 200, 3)])
    assert c.needs_rebuild()
    build = module.build_index

    def build_while_writing(spec: Any) -> Any:
        model.upsert(c, ["new", "x1", "x2"], rng)  # an insert and two replacements
        model.delete(c, ["x4", "x5"])
        return build(spec)

    monkeypatch.setattr(module, "build_index", build_while_writing)
    assert c.rebuild()
    assert c.tombstones == 4  # the old vectors of x1 and x2, and x4 and x5: not 67
    model.check(c)
    model.check(reload(c))

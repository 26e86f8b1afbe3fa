"""Collections live in the data directory and survive a clean restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import Client
from embedspace_server.errors import FailedPrecondition
from embedspace_server.index import CollectionStore

from .conftest import wait_until


def test_collections_survive_a_restart(start_server: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    ids = [f"v{i}" for i in range(50)]
    with start_server(data) as server, Client(server.target) as es:
        es.create_collection("kept", "vec8l2")
        es.upsert("kept", ids, vectors=vectors, metadata=[{"i": i} for i in range(50)])
        es.delete("kept", ["v0", "v1"])
        es.upsert("kept", ["v2"], vectors=vectors[3:4], metadata=[{"i": -1}])
        es.create_collection("empty", "vec8", index="HNSW16")
        es.create_collection("gone", "vec8")
        es.drop_collection("gone")
        before = es.search("kept", vectors[10], k=10)
        text_before = None
        es.create_collection("texts", "minilm")
        es.upsert("texts", ["a", "b"], items=["a red apple", "a blue car"])
        text_before = es.search("texts", "fruit", k=2)
    with start_server(data) as server, Client(server.target) as es:
        infos = {c.name: c for c in es.collections()}
        assert sorted(infos) == ["empty", "kept", "texts"]
        assert (infos["kept"].count, infos["kept"].metric, infos["kept"].encoder) == (
            48, "l2", "vec8l2")  # fmt: skip
        assert infos["empty"].index == "HNSW16" and infos["empty"].count == 0
        assert es.search("kept", vectors[10], k=10) == before
        (v2,) = es.get("kept", ["v2"])
        assert np.array_equal(v2.vector, vectors[3]) and v2.metadata == {"i": -1}
        assert es.delete("kept", ["v0"]) == 0
        assert es.search("texts", "fruit", k=2) == text_before
        # New ids after a restart do not collide with the old ones.
        es.upsert("kept", ["new"], vectors=vectors[:1])
        assert es.search("kept", vectors[0], k=1)[0].id == "new"
        assert es.get("kept", ["v5"])[0].metadata == {"i": 5}


def test_periodic_snapshots_write_without_a_shutdown(start_server: Any, tmp_path: Path) -> None:
    import time

    data = tmp_path / "data"
    with start_server(data, snapshot_interval_s=0.2) as server, Client(server.target) as es:
        es.create_collection("c", "vec8")
        snapshot = data / "collections" / "c" / "snapshot"
        size_empty = snapshot.stat().st_size
        es.upsert("c", [f"x{i}" for i in range(30)], vectors=np.ones((30, 8)))
        deadline = time.monotonic() + 20
        while snapshot.stat().st_size == size_empty and time.monotonic() < deadline:
            time.sleep(0.1)
        assert snapshot.stat().st_size > size_empty
        # No temporary file is left, and the log the snapshot covers is compacted away.
        wait_until(lambda: len(list(snapshot.parent.glob("wal-*"))) == 1)
        names = sorted(p.name for p in snapshot.parent.iterdir())
        assert names[0] == "snapshot" and names[1].startswith("wal-") and len(names) == 2


def test_one_server_per_data_directory(start_server: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with (
        start_server(data),
        pytest.raises(FailedPrecondition, match="in use by another embedspace server"),
    ):
        CollectionStore(data)


def test_backup_while_serving_and_restore_gives_the_same_answers(
    start_server: Any, tmp_path: Path
) -> None:
    import threading

    from embedspace import AlreadyExists, InvalidArgument, NotFound

    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    with start_server(tmp_path / "data") as server, Client(server.target) as es:
        es.create_collection("live", "vec8")
        es.upsert("live", [f"a{i}" for i in range(300)], vectors=vectors)
        stop = threading.Event()

        def keep_writing() -> None:  # writes racing the backup
            with Client(server.target) as w:
                i = 0
                while not stop.is_set():
                    w.upsert("live", [f"w{i}"], vectors=rng.normal(size=(1, 8)))
                    i += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        info = es.backup("live", "nightly")
        stop.set()
        writer.join(10)
        assert info.backup == "nightly" and Path(info.path).is_file()
        assert 300 <= info.count <= es.describe("live").count
        restored = es.restore("nightly", "copy")
        assert restored.count == info.count
        for q in vectors[:5]:
            got = es.search("copy", q, k=10, exclude=[f"w{i}" for i in range(10_000)])
            want = es.search("live", q, k=10, exclude=[f"w{i}" for i in range(10_000)])
            assert got == want
        assert es.backup("live").backup.startswith("live-")
        with pytest.raises(AlreadyExists):
            es.restore("nightly", "copy")
        with pytest.raises(NotFound):
            es.restore("no-such-backup", "x")
        with pytest.raises(InvalidArgument, match="backup name"):
            es.backup("live", "../escape")
    with start_server(tmp_path / "data") as server, Client(server.target) as es:
        assert es.describe("copy").count == info.count  # the restored collection persists

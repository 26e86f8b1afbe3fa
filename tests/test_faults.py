"""Faults of the machine and of hostile callers: each answers with the right status, loses
nothing acknowledged, deletes nothing an operator kept, and leaks nothing. (The full disk
for real, on a tmpfs, is in test_full_disk.py.)"""

from __future__ import annotations

import errno
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from embedspace import (
    AlreadyExists,
    Client,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from embedspace_server.encoders import EncoderRegistry
from embedspace_server.encoders.vector import VectorEncoder
from embedspace_server.engine import Engine
from embedspace_server.errors import DamagedData
from embedspace_server.index import CollectionStore, disk, wal
from embedspace_server.server import collection_health_name
from embedspace_server.types import UpsertPoint
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .faults import FaultyOS

rng = np.random.default_rng(10)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_nothing_the_operator_put_in_the_data_directory_is_deleted(
    start_server: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with start_server(data) as server, Client(server.target) as es:
        es.create_collection("a", "vec8")
        es.upsert("a", ["x"], vectors=np.ones((1, 8)))
    collections = data / "collections"
    (collections / "a").rename(collections / ".a-bad")  # "move it aside"
    (collections / "notes.txt").write_text("kept")
    (collections / ".dropped-old-0123").mkdir()
    kept = _files(collections)
    with start_server(data) as server, Client(server.target) as es:
        assert es.collections() == []
        es.create_collection("a", "vec8")  # the name is free again
    after = _files(collections)
    assert {k: v for k, v in after.items() if not k.startswith("a/")} == kept


def test_a_create_or_restore_that_did_not_finish_leaves_the_name_usable(
    start_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    # An older version's unfinished create left an empty folder; this one's, a scratch folder.
    (data / "collections" / "half").mkdir(parents=True)
    scratch = data / "tmp" / f"create-other-{uuid.uuid4().hex}"
    scratch.mkdir(parents=True)
    (scratch / "snapshot").write_bytes(b"EMBEDSPACE-SNAPSHOT-2\n cut short")
    with start_server(data) as server, Client(server.target) as es:
        assert not scratch.exists()
        es.create_collection("half", "vec8")
        es.upsert("half", ["x"], vectors=np.ones((1, 8)))
        es.backup("half", "b")
        monkeypatch.setattr(disk, "os", FaultyOS("fsync", errno.ENOSPC))
        with pytest.raises(ResourceExhausted, match="cannot create collection 'late': the disk"):
            es.create_collection("late", "vec8")
        monkeypatch.setattr(disk, "os", FaultyOS("fsync", errno.ENOSPC))
        with pytest.raises(ResourceExhausted, match="disk is full"):
            es.restore("b", "copy")
        monkeypatch.undo()
        assert sorted(p.name for p in (data / "collections").iterdir()) == ["half"]
        assert not any((data / "tmp").iterdir())
        es.create_collection("late", "vec8")
        assert es.restore("b", "copy").count == 1
    with start_server(data) as server, Client(server.target) as es:
        assert sorted(c.name for c in es.collections()) == ["copy", "half", "late"]


@pytest.mark.parametrize(
    ("fault", "code", "error", "message"),
    [
        ("fsync", errno.ENOSPC, ResourceExhausted, "the disk is full"),
        ("write", errno.EDQUOT, ResourceExhausted, "quota"),
        ("open", errno.EMFILE, ResourceExhausted, "too many open files"),
        ("fsync", errno.EIO, Unavailable, "the disk failed"),
    ],
)
def test_disk_errors_on_writes_answer_a_resource_status_and_store_nothing(
    start_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    code: int,
    error: type[Exception],
    message: str,
) -> None:
    with start_server(tmp_path / "data") as server, Client(server.target, retries=0) as es:
        es.create_collection("c", "vec8")
        es.upsert("c", ["a", "b"], vectors=np.ones((2, 8)))
        segment = next((tmp_path / "data" / "collections" / "c").glob("wal-*"))
        size = segment.stat().st_size
        for write in (
            lambda: es.upsert("c", ["new"], vectors=np.ones((1, 8))),
            lambda: es.delete("c", ["a"]),
        ):
            monkeypatch.setattr(
                wal, "os", FaultyOS(fault, code, times=2 if fault == "write" else 1)
            )
            with pytest.raises(error, match=message):
                write()
            monkeypatch.undo()
            assert segment.stat().st_size == size
            assert es.describe("c").count == 2 and len(es.get("c", ["a"])) == 1
        es.upsert("c", ["new"], vectors=np.ones((1, 8)))  # the log goes on
    with start_server(tmp_path / "data") as server, Client(server.target) as es:
        assert [s.id for s in es.scan("c").items] == ["a", "b", "new"]


def _threads() -> tuple[int, int]:
    """(Python threads other than the worker pool's, which start on demand up to
    `workers`; all threads of the process)."""
    python = [t for t in threading.enumerate() if not t.name.startswith("embedspace")]
    return len(python), len(os.listdir("/proc/self/task"))


def test_dropped_collections_leave_no_threads(start_server: Any, tmp_path: Path) -> None:
    with start_server(tmp_path / "data", workers=2) as server, Client(server.target) as es:

        def cycle(i: int) -> None:
            name = f"c{i}"
            es.create_collection(name, "vec8")
            es.upsert(name, ["a", "b"], vectors=rng.normal(size=(2, 8)))
            assert len(es.search(name, rng.normal(size=8), k=2)) == 2
            es.drop_collection(name)

        for i in range(10):
            cycle(i)
        before = _threads()
        for i in range(300):
            cycle(i)
        after = _threads()
    print(f"\nthreads (Python, all): {before} before 300 cycles, {after} after")
    assert after[0] == before[0]
    # The worker pool and gRPC core's own may start a thread or two; a leak would be one
    # per cycle.
    assert after[1] <= before[1] + 3


def test_one_callers_bad_search_parameters_fail_only_that_caller(
    start_server: Any, tmp_path: Path
) -> None:
    with start_server(tmp_path / "data", search_wait_ms=5) as server:
        with Client(server.target) as es:
            es.create_collection("c", "vec8")
            es.upsert("c", [f"x{i}" for i in range(200)], vectors=rng.normal(size=(200, 8)))
        outcomes: dict[str, list[str]] = {"good": [], "bad": []}

        def run(kind: str) -> None:
            params = {"nprobe": 0.5} if kind == "bad" else None
            with Client(server.target, retries=0) as es:
                for _ in range(40):
                    try:
                        es.search("c", rng.normal(size=8), k=3, search_params=params)
                        outcomes[kind].append("ok")
                    except InvalidArgument as e:
                        outcomes[kind].append(str(e))

        threads = [threading.Thread(target=run, args=(k,)) for k in ["bad"] * 2 + ["good"] * 8]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert outcomes["good"] == ["ok"] * 320
    assert len(outcomes["bad"]) == 80
    assert all("'nprobe' does not apply to index 'Flat'" in o for o in outcomes["bad"])


def test_a_scan_ends_after_the_last_item(client: Client, collection_name: str) -> None:
    client.create_collection(collection_name, "vec8")
    client.upsert(collection_name, ["a"], vectors=np.ones((1, 8)))
    pages = [client.scan(collection_name, limit=1)]
    while pages[-1].next_page_token:
        assert len(pages) < 2, "a one-item collection scanned a page at a time has 1 or 2 pages"
        pages.append(client.scan(collection_name, limit=1, page_token=pages[-1].next_page_token))
    assert [s.id for page in pages for s in page.items] == ["a"]
    assert [page.total for page in pages] == [1] * len(pages)


def test_restore_keeps_the_rule_on_encoder_names(client: Client, collection_name: str) -> None:
    client.create_collection(collection_name, "vec8")
    backup = client.backup(collection_name).backup
    with pytest.raises(InvalidArgument, match="'vec8dot' is the name of an encoder"):
        client.restore(backup, "vec8dot")
    assert client.restore(backup, f"{collection_name}-copy").encoder == "vec8"


def test_cosine_collections_normalise_extreme_vectors_and_refuse_zero_ones(
    client: Client, collection_name: str
) -> None:
    client.create_collection(collection_name, "vec8")  # cosine
    client.upsert(collection_name, ["huge", "tiny"], vectors=np.stack(
        [np.full(8, 3e38, np.float32), np.full(8, 1e-44, np.float32)]))  # fmt: skip
    for item in client.get(collection_name, ["huge", "tiny"]):
        np.testing.assert_allclose(item.vector, np.full(8, 8**-0.5), rtol=1e-6)
    with pytest.raises(InvalidArgument, match="the vector of id 'zero' is all zeros"):
        client.upsert(collection_name, ["ok", "zero"], vectors=np.stack(
            [np.ones(8), np.zeros(8)]))  # fmt: skip
    assert client.describe(collection_name).count == 2


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(4):
        data[at + i] ^= 0x5A
    path.write_bytes(bytes(data))


def _logged_collections(data: Path) -> None:
    """Collections `good` and `bad` with writes in their logs (no snapshot since)."""
    store = CollectionStore(data)
    try:
        engine = Engine(EncoderRegistry([VectorEncoder("vec8", 8)]), store)
        for name in ("good", "bad"):
            engine.create_collection(name, "vec8")
            for i in range(3):
                point = UpsertPoint(f"x{i}", None, rng.normal(size=8).astype(np.float32), {})
                engine.upsert(name, [point])
        engine.close()
    finally:
        store.close()


@pytest.mark.parametrize("damage", ["snapshot", "log", "copied folder"])
def test_damaged_files_stop_the_start_or_are_quarantined_untouched(
    start_server: Any, tmp_path: Path, damage: str
) -> None:
    data = tmp_path / "data"
    _logged_collections(data)
    folder = data / "collections" / "bad"
    if damage == "snapshot":
        _flip(folder / "snapshot", (folder / "snapshot").stat().st_size - 40)  # index bytes
        why = "its index data fails its checksum"
    elif damage == "log":
        segment = next(folder.glob("wal-*"))
        _flip(segment, 20)  # inside the first of three records
        why = "damaged at byte 0 of"
    else:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
        import shutil

        shutil.copytree(data / "collections" / "good", folder)
        why = "named 'bad' but holds the snapshot of collection 'good'"
    kept = _files(folder)
    store = CollectionStore(data)
    try:
        with pytest.raises(DamagedData, match=why):
            store.load_all()
    finally:
        store.close()
    with start_server(data, quarantine_damaged=True) as server, Client(server.target) as es:
        info = es.describe("bad")
        assert why in info.quarantined and info.count == 0
        assert {c.name: bool(c.quarantined) for c in es.collections()} == {
            "good": False, "bad": True}  # fmt: skip
        assert es.describe("good").count == 3
        with pytest.raises(FailedPrecondition, match="collection 'bad' is quarantined"):
            es.search("bad", np.ones(8))
        with pytest.raises(FailedPrecondition, match="quarantined"):
            es.upsert("bad", ["y"], vectors=np.ones((1, 8)))
        with pytest.raises(FailedPrecondition, match="quarantined"):
            es.distance([np.ones(8)], [np.ones(8)], collection="bad")
        with pytest.raises(FailedPrecondition, match="quarantined"):
            es.drop_collection("bad")
        with pytest.raises(AlreadyExists, match="quarantined"):
            es.create_collection("bad", "vec8")
        with grpc.insecure_channel(server.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(service="")).status
            name = collection_health_name("bad")
            bad = health.Check(health_pb2.HealthCheckRequest(service=name)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
            assert bad == health_pb2.HealthCheckResponse.NOT_SERVING
    assert _files(folder) == kept


def test_temporary_files_of_interrupted_snapshots_are_removed(
    start_server: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with start_server(data) as server, Client(server.target) as es:
        es.create_collection("c", "vec8")
        es.backup("c", "b")
    leftovers = [
        data / "collections" / "c" / f".snapshot.{uuid.uuid4().hex}.tmp",
        data / "backups" / f".b.{uuid.uuid4().hex}.tmp",
    ]
    kept = [data / "collections" / "c" / ".snapshot.mine.tmp", data / "backups" / "notes.tmp"]
    for path in leftovers + kept:
        path.write_bytes(b"x" * 1000)
    with start_server(data):
        assert [p.exists() for p in leftovers + kept] == [False, False, True, True]

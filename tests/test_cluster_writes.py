"""Writes, backups and restores of collections on a Ray cluster, through the in-process
server of the congruence suites (`ray_server`: this test process is its Ray driver)."""

from __future__ import annotations

import numpy as np
import pytest
import ray
from embedspace import Client, FailedPrecondition, Unavailable
from embedspace_server.cluster.collection import RayCollection, shard_of
from embedspace_server.cluster.replica import NotLeader, OutOfSync, Write
from embedspace_server.index.wal import OP_DELETE, OP_UPSERT
from embedspace_server.types import UpsertResult

from .conftest import wait_until

pytestmark = pytest.mark.slow


def _seq(es: Client, name: str, shard: int) -> set[int]:
    return {r.seq for r in es.describe(name).placement if r.shard == shard}


def test_a_retried_write_is_applied_once_and_only_in_order(ray_server, collection_name) -> None:
    with Client(ray_server.target, timeout=60) as es:
        es.create_collection(collection_name, "vec8", shards=2, replicas=2)
        collection = ray_server.server.engine.catalogue.get(collection_name)
        assert isinstance(collection, RayCollection)
        shard = shard_of("a", 2)
        w = Write("the-same-id", OP_UPSERT, ["a"], np.ones((1, 8), np.float32), [{}])
        assert collection._write({shard: w}) == {shard: UpsertResult(1, 0)}
        seq = _seq(es, collection_name, shard)
        assert len(seq) == 1  # leader and follower agree
        # Sent again (a front end retrying after a lost answer): applied once.
        assert collection._write({shard: w}) == {shard: UpsertResult(1, 0)}
        assert _seq(es, collection_name, shard) == seq
        assert es.describe(collection_name).count == 1

        epoch, _, live = collection.view(refresh=True)[shard]
        follower = live[1]
        (at,) = seq
        gap = Write("gap", OP_DELETE, ["a"], seq=at + 2, epoch=epoch)
        with pytest.raises(OutOfSync):
            _raised(follower.follow.remote(gap))
        deposed = Write("old-leader", OP_DELETE, ["a"], seq=at + 1, epoch=epoch - 1)
        with pytest.raises(NotLeader):
            _raised(follower.follow.remote(deposed))
        assert es.get(collection_name, ["a"])[0].id == "a"
        es.drop_collection(collection_name)


def _raised(ref) -> None:
    """Raises the domain error a replica raised."""
    try:
        ray.get(ref, timeout=30)
    except ray.exceptions.RayTaskError as e:
        raise e.cause from None


def test_a_sharded_collection_backs_up_and_restores_whole(
    ray_server, shared_server, collection_name
) -> None:
    rng = np.random.default_rng(3)
    ids = [f"b{i}" for i in range(200)]
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    meta = [{"i": i} for i in range(200)]
    with Client(ray_server.target, timeout=60) as es:
        es.create_collection(collection_name, "vec8l2", shards=3, replicas=2)
        es.upsert(collection_name, ids, vectors=vectors, metadata=meta)
        es.delete(collection_name, ids[:10])
        backup = es.backup(collection_name, f"{collection_name}-bk")
        assert backup.count == 190
        es.drop_collection(collection_name)
        restored = es.restore(backup.backup, collection_name)
        assert (restored.shards, restored.replicas, restored.count) == (3, 2, 190)
        got = es.get(collection_name, ids[10:])
        np.testing.assert_array_equal(np.stack([g.vector for g in got]), vectors[10:])
        assert [g.metadata for g in got] == meta[10:]
        assert es.search(collection_name, vectors[42], k=1)[0].id == "b42"
        es.drop_collection(collection_name)
        folder = ray_server.server.settings.data_dir / "backups"
        files = sorted(p.name for p in folder.glob(f"{backup.backup}*"))
        assert files == [backup.backup, f"{backup.backup}.shard1", f"{backup.backup}.shard2"]

    # A server that keeps collections in its data directory refuses it, naming why.
    target = shared_server.server.settings.data_dir / "backups"
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
        (target / name).write_bytes((folder / name).read_bytes())
    with Client(shared_server.target, timeout=60) as es, pytest.raises(FailedPrecondition) as e:
        es.restore(backup.backup, collection_name)
    assert "3 shard(s)" in str(e.value) and "--ray" in str(e.value)


def test_a_leader_fenced_by_a_newer_one_acknowledges_nothing(ray_server, collection_name) -> None:
    with Client(ray_server.target, timeout=60) as es:
        es.create_collection(collection_name, "vec8", shards=1, replicas=2)
        collection = ray_server.server.engine.catalogue.get(collection_name)
        epoch, leader, live = collection.view(refresh=True)[0]
        ray.get(live[1].fence.remote(epoch + 1))  # what electing a newer leader does first
        w = Write("fenced", OP_UPSERT, ["a"], np.ones((1, 8), np.float32), [{}])
        with pytest.raises(NotLeader):
            _raised(leader.write.remote(w))
        # The front end retries the same write on the leader the catalog names now.
        assert collection._write({0: w}) == {0: UpsertResult(1, 0)}
        wait_until(lambda: [r.live for r in es.describe(collection_name).placement] == [1, 1])
        assert len(_seq(es, collection_name, 0)) == 1  # the replicas agree again
        assert es.describe(collection_name).count == 1
        es.drop_collection(collection_name)


def test_a_restarted_catalog_finds_its_collections_again(ray_server, collection_name) -> None:
    from embedspace_server.cluster.backend import CATALOG

    with Client(ray_server.target, timeout=60) as es:
        es.create_collection(collection_name, "vec8", shards=2, replicas=2)
        ids = [f"c{i}" for i in range(50)]
        vectors = np.random.default_rng(5).normal(size=(50, 8)).astype(np.float32)
        es.upsert(collection_name, ids, vectors=vectors)
        before = es.describe(collection_name)
        ray.kill(ray.get_actor(CATALOG), no_restart=False)  # Ray restarts it

        def described():
            try:
                return es.describe(collection_name)
            except Unavailable:  # while the catalog restarts
                return None

        wait_until(lambda: described() is not None)
        after = described()
        assert after is not None and after.count == 50
        assert [(r.shard, r.replica, r.node, r.live) for r in after.placement] == [
            (r.shard, r.replica, r.node, r.live) for r in before.placement
        ]
        es.upsert(collection_name, ["new"], vectors=vectors[:1])
        assert es.search(collection_name, vectors[0], k=2)[0].id in ("c0", "new")
        assert es.describe(collection_name).count == 51
        es.drop_collection(collection_name)


def test_ray_address_without_ray_installed_says_what_to_install(monkeypatch, tmp_path) -> None:
    import sys

    from embedspace_server.config import Settings
    from embedspace_server.errors import FailedPrecondition as NotReady
    from embedspace_server.server import make_backend

    for name in [m for m in sys.modules if m.startswith("embedspace_server.cluster")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    with pytest.raises(NotReady, match=r"embedspace\[server,ray\]"):
        make_backend(Settings(data_dir=tmp_path, ray_address="auto"))

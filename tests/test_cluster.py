"""Sharded, replicated collections on a real Ray cluster (several Ray nodes on this machine,
on 127.0.0.1), served by `embedspace serve --ray` front ends: what two front ends see, a
shard with no live replica, and a node lost under a stream of writes."""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import Client, EmbedspaceError, NotFound, Unavailable

from .ray_cluster import front_end, ray_cluster, wait_for

pytestmark = pytest.mark.slow

DIM = 16


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and three worker nodes: every test here leaves three workers behind."""
    with ray_cluster(workers=3) as c:
        yield c


@pytest.fixture(scope="module")
def front_ends(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    folder = tmp_path_factory.mktemp("cluster")
    started = [front_end(cluster, folder, f"fe{i}", DIM) for i in range(2)]
    try:
        yield started
    finally:
        for proc in started:
            proc.terminate(30)


def vector(tag: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(tag.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).normal(size=DIM).astype(np.float32)


def vectors(ids: list[str]) -> np.ndarray:
    return np.stack([vector(i) for i in ids])


def live_replicas(es: Client, name: str) -> dict[int, int]:
    """How many live replicas each shard has."""
    counts: dict[int, int] = {}
    for r in es.describe(name).placement:
        counts[r.shard] = counts.get(r.shard, 0) + r.live
    return counts


def worker_of(cluster: Any, node_id: str) -> Any:
    return next(n for n in cluster.worker_nodes if n.node_id == node_id)


def test_two_front_ends_serve_one_clusters_collections(front_ends: list[Any]) -> None:
    one, two = (Client(p.target, timeout=60) for p in front_ends)
    with one, two:
        one.create_collection("shared", "v", shards=3, replicas=2)
        ids = [f"a{i}" for i in range(300)]
        one.upsert("shared", ids, vectors=vectors(ids), metadata=[{"i": i} for i in range(300)])

        info = two.describe("shared")
        assert (info.shards, info.replicas, info.count) == (3, 2, 300)
        assert len(info.placement) == 6 and all(r.live for r in info.placement)
        for shard in range(3):
            nodes = {r.node for r in info.placement if r.shard == shard}
            assert len(nodes) == 2, f"the replicas of shard {shard} share a node"
        assert "shared" in [c.name for c in two.collections()]

        got = two.get("shared", ids[:50])
        assert [g.id for g in got] == ids[:50]
        np.testing.assert_array_equal(np.stack([g.vector for g in got]), vectors(ids[:50]))
        hits = two.search("shared", vector("a7"), k=3)
        assert hits[0].id == "a7" and hits.missing_shards == ()

        assert two.delete("shared", ["a7", "a8", "nope"]) == 2
        gone = one.get("shared", ["a7"])
        assert list(gone) == [] and gone.missing_ids == ["a7"]
        assert one.describe("shared").count == 298

        one.drop_collection("shared")
        with pytest.raises(NotFound):
            two.describe("shared")


def test_a_shard_with_no_live_replica_answers_unavailable_and_marks_searches(
    cluster: Any, front_ends: list[Any]
) -> None:
    with Client(front_ends[0].target, timeout=60, retries=0) as es:
        es.create_collection("single", "v", shards=3, replicas=1)
        ids = [f"s{i}" for i in range(120)]
        es.upsert("single", ids, vectors=vectors(ids))
        placement = es.describe("single").placement
        lost = placement[0]
        on_lost = {r.shard for r in placement if r.node == lost.node}
        cluster.remove_node(worker_of(cluster, lost.node))
        try:
            wait_for(lambda: not live_replicas(es, "single")[lost.shard], 30, "the shard to go")
            from embedspace_server.cluster.collection import shard_of

            gone = [i for i in ids if shard_of(i, 3) == lost.shard]
            kept = [i for i in ids if shard_of(i, 3) not in on_lost]
            with pytest.raises(Unavailable) as e:
                es.get("single", gone[:1])
            assert f"shard {lost.shard} of collection 'single'" in str(e.value)
            assert [g.id for g in es.get("single", kept)] == kept

            hits = es.search("single", vector(kept[0]), k=5)
            assert hits[0].id == kept[0]
            assert set(hits.missing_shards) == on_lost and hits.partial
            assert all(h.id in kept for h in hits)
            with pytest.raises(Unavailable):
                es.upsert("single", gone[:1], vectors=vectors(gone[:1]))
            es.upsert("single", kept[:5], vectors=vectors(kept[:5]))  # the rest takes writes
            es.create_collection("beside", "v")  # other collections are untouched by it
            assert {c.name for c in es.collections()} == {"beside", "single"}
            es.drop_collection("beside")
        finally:
            cluster.add_node(num_cpus=1)
        es.drop_collection("single")


def test_a_replica_restarted_empty_serves_no_reads_until_synced(
    cluster: Any, front_ends: list[Any]
) -> None:
    """No writes after the loss, so nothing but the catalog can tell the restarted (empty)
    replica from the one that was in sync."""
    with Client(front_ends[1].target, timeout=60) as es:
        es.create_collection("quiet", "v", shards=1, replicas=2)
        ids = [f"q{i}" for i in range(200)]
        es.upsert("quiet", ids, vectors=vectors(ids))
        placement = es.describe("quiet").placement
        follower = next(r for r in placement if r.replica == 1)
        cluster.remove_node(worker_of(cluster, follower.node))
        cluster.add_node(num_cpus=1)
        counts = []

        def recovered() -> bool:
            counts.append(len(es.search("quiet", vector("q3"), k=5)))
            now = es.describe("quiet").placement
            return all(r.live and r.count == 200 for r in now) and follower.node not in {
                r.node for r in now
            }

        wait_for(recovered, 60, "the lost replica to be rebuilt elsewhere")
        assert set(counts) == {5}, f"searches answered from an empty replica: {counts}"
        for _ in range(10):  # both replicas serve reads in turn: each holds everything
            assert [h.id for h in es.search("quiet", vector("q3"), k=1)] == ["q3"]
        es.drop_collection("quiet")


def test_a_node_lost_under_writes_loses_no_acknowledged_write(
    cluster: Any, front_ends: list[Any], tmp_path: Path
) -> None:
    first, second = front_ends
    with Client(first.target, timeout=60) as es:
        es.create_collection("stream", "v", shards=4, replicas=2)
        leader_node = es.describe("stream").placement[0].node

    acked: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def write(target: str, prefix: str) -> None:
        with Client(target, timeout=30) as es:
            n = 0
            while not stop.is_set() and n < 400:
                ids = [f"{prefix}{n}-{j}" for j in range(25)]
                try:
                    es.upsert("stream", ids, vectors=vectors(ids))
                    acked.extend(ids)
                except EmbedspaceError as e:
                    failed.append(f"{type(e).__name__}: {e}")
                n += 1

    writer = threading.Thread(target=write, args=(first.target, "w"), daemon=True)
    writer.start()
    time.sleep(1.0)
    before = len(acked)
    cluster.remove_node(worker_of(cluster, leader_node))
    time.sleep(3.0)
    stop.set()
    writer.join(60)
    assert not writer.is_alive()
    assert before and len(acked) > before, f"writes stopped with the node: {failed[-3:]}"

    # And again, the front end the writes go through killed mid-stream: the other serves.
    stop.clear()
    writer = threading.Thread(target=write, args=(second.target, "x"), daemon=True)
    writer.start()
    cluster.add_node(num_cpus=1)
    time.sleep(1.0)
    third = front_end(cluster, tmp_path, "fe-extra", DIM)
    try:
        killed = threading.Thread(target=write, args=(third.target, "y"), daemon=True)
        killed.start()
        time.sleep(1.0)
        third.proc.send_signal(signal.SIGKILL)
        third.proc.wait(10)
        killed.join(60)
    finally:
        third.kill()
    time.sleep(1.0)
    stop.set()
    writer.join(60)

    with Client(second.target, timeout=60) as es:
        wait_for(lambda: set(live_replicas(es, "stream").values()) == {2}, 60,
                 "every shard to have 2 live replicas again")  # fmt: skip
        stored = {item.id: item.vector for item in es.scan_all("stream", page_size=1000)}
        missing = [i for i in acked if i not in stored]
        assert not missing, f"{len(missing)} acknowledged ids lost, e.g. {missing[:3]}"
        for i in acked:
            np.testing.assert_array_equal(stored[i], vector(i))

        keys = list(stored)
        matrix = np.stack([stored[k] for k in keys])
        for q in np.random.default_rng(1).normal(size=(10, DIM)).astype(np.float32):
            want = np.argsort(np.linalg.norm(matrix - q, axis=1), kind="stable")[:5]
            assert [h.id for h in es.search("stream", q, k=5)] == [keys[j] for j in want]
        es.drop_collection("stream")


def test_encoder_actors_run_the_forward_passes(cluster: Any, tmp_path: Path) -> None:
    """A trained encoder on a pool of one Ray actor embeds as the encoder does here."""
    from embedspace_models import artifact
    from embedspace_server.config import EncoderConfig
    from embedspace_server.encoders import build_encoder

    from .ray_cluster import BIN, ServeProcess

    path = artifact("houses-by-price")
    config = tmp_path / "es.toml"
    config.write_text(
        f'encoder_actors = 1\n[[encoders]]\nname = "houses"\nkind = "trained"\npath = "{path}"\n'
    )
    proc = ServeProcess(
        [str(BIN / "embedspace"), "serve", "--config", str(config), "--port", "0",
         "--data-dir", str(tmp_path / "data"), "--ray", cluster.address],
    )  # fmt: skip
    try:
        proc.wait_serving(120)
        houses = [
            {
                "area_code": "212",
                "tax_bracket": 3,
                "school_district": "Brookline",
                "colour": "red",
                "size": 100.0,
            },
            {
                "area_code": "512",
                "tax_bracket": 5,
                "school_district": "Dunmore",
                "colour": "blue",
                "size": 70.0,
            },
        ]
        with Client(proc.target, timeout=60) as es:
            (info,) = es.encoders()
            assert info.provenance.details["ray_actors"] == "1"
            got = es.embed("houses", houses)
        local = build_encoder(EncoderConfig(name="houses", kind="trained", path=str(path)))
        from embedspace_server.types import Record

        want = local.encode([Record(h) for h in houses])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    finally:
        proc.terminate(30)

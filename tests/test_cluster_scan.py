"""Scans, counts and gets of a collection split over shards on a real Ray cluster (a head and
one worker on this machine), through the collection interface alone: pages are exact across
shards, and a shard with no live replica fails a scan, a count or a get of its ids naming
it, never leaving its items out silently."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace_server.config import Settings
from embedspace_server.errors import Unavailable
from embedspace_server.index.base import Spec
from embedspace_server.types import Metric

from .ray_cluster import ray_cluster, wait_for

pytestmark = pytest.mark.slow

SHARDS = 3


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """A Ray backend in this process on a cluster of one worker, and the cluster."""
    from embedspace_server.cluster.backend import RayBackend

    with ray_cluster(workers=1) as cluster:
        settings = Settings(data_dir=tmp_path / "data", ray_address=cluster.address,
                            ray_data_dir=str(tmp_path / "shards"))  # fmt: skip
        ray_backend = RayBackend(settings)
        try:
            yield ray_backend, cluster
        finally:
            ray_backend.close()


def test_sharded_pages_counts_and_gets_and_lost_shards(backend: tuple[Any, Any]) -> None:
    ray_backend, cluster = backend
    c = ray_backend.new(Spec("r", "v", "Flat", Metric.L2, 4, (), SHARDS, 1))
    ray_backend.create(c)
    keys = [f"k{i}" for i in np.random.default_rng(1).permutation(200)]
    vectors = np.random.default_rng(2).normal(size=(200, 4)).astype(np.float32)
    c.upsert(keys, vectors, [{"odd": i % 2 == 1} for i in range(200)])
    ordered = sorted(keys)
    seen, after = [], ""
    while page := c.scan(after, 13)[0]:
        seen += [item.id for item in page]
        after = page[-1].id
    assert seen == ordered
    page, total = c.scan(ordered[49], 5, vectors=False)
    assert [item.id for item in page] == ordered[50:55] and total == 200
    assert all(item.vector.shape == (0,) for item in page)
    assert page[0].metadata == {"odd": keys.index(ordered[50]) % 2 == 1}
    assert c.count() == 200 and c.count({"odd": True}) == 100
    assert [item.id for item in c.get(["nope", "k7", "k3"], missing_ok=True)] == ["k7", "k3"]

    assert all(r.seq > 0 for r in c.info().placement)  # the catalog has seen the writes
    cluster.remove_node(next(iter(cluster.worker_nodes)))  # every shard's one replica

    def failing() -> bool:
        try:
            c.count()
        except Unavailable:
            return True
        return False

    wait_for(failing, 30, "the lost shard to be declared")
    calls = [
        lambda: c.scan("", 10),
        lambda: c.scan(ordered[-2], 10, vectors=False, metadata=False),
        lambda: c.count(),
        lambda: c.count({"odd": True}),
        lambda: c.get(["k1"], missing_ok=True),  # not "missing": unknown
    ]
    for call in calls:
        with pytest.raises(Unavailable, match=r"shard \d of collection 'r' has no live"):
            call()

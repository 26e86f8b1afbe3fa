"""Ray clusters for the tests: several Ray nodes on this one machine, every one bound to
127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is Ray's switch for one-host clusters; without
it Ray advertises the machine's external address), and embedspace front ends on them.

The head node has no CPUs, so shard replicas (which reserve a sliver of a CPU each) are
placed on the workers only, and a test that removes a worker knows what it takes away. The
GCS checks nodes twice a second, so a lost node is noticed in about 1.5 s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

from .serve_process import BIN, ServeProcess

SYSTEM_CONFIG = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
}


@contextmanager
def ray_cluster(workers: int) -> Iterator[Any]:
    """A `ray.cluster_utils.Cluster` with a head and `workers` worker nodes; shut down, with
    every process it started, at the end."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "_system_config": SYSTEM_CONFIG},
    )
    try:
        for _ in range(workers):
            cluster.add_node(num_cpus=1)
        yield cluster
    finally:
        cluster.shutdown()


def front_end(cluster: Any, tmp_path: Path, name: str, dim: int = 16) -> ServeProcess:
    """`embedspace serve --ray ADDRESS` with one vector encoder "v" (l2, `dim`), its own
    data directory, and the shard replicas' data under tmp_path/shards."""
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "es.toml"
    config.write_text(
        f'snapshot_interval_s = 0.5\n[[encoders]]\nname = "v"\nkind = "vector"\n'
        f'dim = {dim}\nmetric = "l2"\n'
    )
    proc = ServeProcess(
        [
            str(BIN / "embedspace"),
            "serve",
            "--config",
            str(config),
            "--port",
            "0",
            "--data-dir",
            str(folder / "data"),
            "--ray",
            cluster.address,
        ],
        env={"EMBEDSPACE_RAY_DATA_DIR": str(tmp_path / "shards")},
    )
    proc.wait_serving(120)
    return proc


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls `condition` until it returns something true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.2)


__all__ = ["BIN", "front_end", "ray_cluster", "wait_for"]

"""A Ray cluster of several nodes on this one machine (`ray.cluster_utils.Cluster`), for the
tests and the benchmark: every node binds 127.0.0.1, the head has no CPUs (so shard
replicas, which reserve a sliver of a CPU each, land on the workers only), and the GCS checks
nodes twice a second, so a lost node is declared in about 1.5 s.

RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is Ray's switch for one-host clusters: without it Ray
advertises the machine's external address. Importing this module sets it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

SYSTEM_CONFIG = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
}


@contextlib.contextmanager
def one_host_cluster(workers: int) -> Iterator[Any]:
    """A head with no CPUs and `workers` one-CPU workers; shut down, with every process it
    started, at the end."""
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    # Ray reads the switch when it is imported; this process may have imported it before
    # this module set it (the node processes read it from the environment).
    ray_constants.ENABLE_RAY_CLUSTER = False
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": SYSTEM_CONFIG}
    )
    try:
        for _ in range(workers):
            cluster.add_node(num_cpus=1)
        yield cluster
    finally:
        cluster.shutdown()  # type: ignore[no-untyped-call]


__all__ = ["SYSTEM_CONFIG", "one_host_cluster"]

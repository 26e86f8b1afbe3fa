"""Ray clusters for the tests (embedspace_server.cluster.local: several Ray nodes on this
one machine, on 127.0.0.1; replicas only on the workers, so a test that removes a worker
knows what it takes away), and embedspace front ends on them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedspace_server.cluster.local import one_host_cluster as ray_cluster

from .serve_process import BIN, ServeProcess


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

"""Collections kept on a Ray cluster: the Backend a front end uses with `ray_address`.

The front end joins the cluster and finds (or starts, once, on the head node) the catalog
actor that every front end shares. Collections live in the shard replicas and their disks,
so a front end that dies loses nothing, and several front ends serve the same collections.
A backup is one snapshot file per shard, written by the front end: `NAME` holds shard 0 and
`NAME.shardI` shard I, each header saying how many shards and replicas there were.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray

from ..config import Settings
from ..errors import FailedPrecondition
from ..index.backups import shard_path
from ..index.base import Backend, Spec, VectorCollection
from ..index.disk import storage_error
from ..index.snapshot import read_snapshot, write_snapshot
from .catalog import ClusterCatalog
from .collection import RayCollection, _unwrapped
from .replica import ReplicaSettings

log = logging.getLogger(__name__)

CATALOG = "embedspace-catalog"
# How often the catalog checks every replica and repairs shards.
CHECK_INTERVAL_S = 0.5


class PendingCollection(RayCollection):
    """A collection `create` has not placed yet, with the shards' states a backup gave."""

    def __init__(self, spec: Spec, catalog: Any, initial: list[Any] | None) -> None:
        super().__init__(spec, catalog)
        self.initial = initial


class RayBackend(Backend):
    def __init__(self, settings: Settings) -> None:
        try:
            if not ray.is_initialized():
                ray.init(
                    address=settings.ray_address,
                    namespace=settings.ray_namespace,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise FailedPrecondition(
                f"cannot join the Ray cluster at {settings.ray_address!r}: {e}"
            ) from None
        root = settings.ray_data_dir or str(Path(settings.data_dir).resolve() / "shards")
        self.catalog: Any = (
            ray.remote(ClusterCatalog)
            .options(
                name=CATALOG,
                lifetime="detached",
                get_if_exists=True,
                max_restarts=-1,
                max_concurrency=32,
                num_cpus=0,
                resources={"node:__internal_head__": 0.001},
            )
            .remote(
                ReplicaSettings(
                    root,
                    settings.snapshot_interval_s,
                    settings.faiss_threads,
                    settings.faiss_blas_threshold,
                ),
                CHECK_INTERVAL_S,
            )
        )
        log.info("on the Ray cluster at %s (namespace %r); shard replicas keep their data "
                 "under %s on each node", settings.ray_address, settings.ray_namespace,
                 root)  # fmt: skip

    def load_all(
        self, *, quarantine: bool = False
    ) -> tuple[dict[str, VectorCollection], dict[str, str]]:
        return self.refresh({}), {}

    def refresh(self, known: Mapping[str, VectorCollection]) -> dict[str, VectorCollection]:
        specs = _unwrapped(self.catalog.specs.remote())
        # `in`, not `or`: a collection's truth is its length, which asks every shard.
        return {
            s.name: known[s.name] if s.name in known else RayCollection(s, self.catalog)
            for s in specs
        }

    def new(self, spec: Spec) -> VectorCollection:
        return PendingCollection(spec, self.catalog, None)

    def read_backup(self, path: Path, name: str) -> VectorCollection:
        first = read_snapshot(path, name)
        shards = [first] + [
            read_snapshot(shard_path(path, i), name) for i in range(1, first.spec.shards)
        ]
        states = [shard.state()[:2] for shard in shards]
        return PendingCollection(first.spec, self.catalog, states)

    def create(self, collection: VectorCollection) -> None:
        if not isinstance(collection, PendingCollection):
            raise TypeError(f"not a collection this backend made: {collection!r}")
        _unwrapped(self.catalog.create.remote(collection.spec, collection.initial))
        collection.initial = None

    def save(self, collection: VectorCollection) -> bool:
        return False  # each replica snapshots itself

    def drop(self, collection: VectorCollection) -> None:
        _unwrapped(self.catalog.drop.remote(collection.spec.name))

    def backup(self, collection: VectorCollection, path: Path) -> int:
        if not isinstance(collection, RayCollection):
            raise TypeError(f"not a collection this backend made: {collection!r}")
        s = collection.spec
        count = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for i, (header, blob) in enumerate(collection.states()):
                spec = {**header["spec"], "shards": s.shards, "replicas": s.replicas}
                write_snapshot(shard_path(path, i), {**header, "spec": spec, "shard": i}, blob)
                count += sum(key is not None for key in header["keys"])
        except OSError as e:
            raise storage_error(e, f"write the backup {str(path)!r}") from None
        return count

    def close(self) -> None:
        try:
            ray.shutdown()
        except Exception as e:  # shutting down: say so, go on
            log.warning("leaving the Ray cluster: %s", e)


__all__ = ["RayBackend"]

"""The cluster's catalog: a detached Ray actor on the head node that every front end shares.
It knows each sharded collection's spec and replicas, says which replica leads each shard
(with an epoch that fences earlier leaders), and repairs: every `check_interval_s` it asks
each replica how it is, makes a follower lead a shard whose leader is gone, and has the
leader sync every replica that is reachable but out of the shard (new, or restarted by Ray
on another node after its node was lost).

Replicas of one shard are placed on different nodes by a placement group with the
STRICT_SPREAD strategy; when a node is lost, Ray reschedules its bundles and restarts the
replicas there, once a node with room exists.

What the catalog knows is written to `catalog.json` on the head node's disk at every change
(create, drop, a new leader), and the replicas and placement groups are named, so a catalog
that Ray restarts finds its collections again, with their epochs.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import (
    get_placement_group,
    placement_group,
    remove_placement_group,
)
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from ..errors import AlreadyExists, CollectionNotFound, FailedPrecondition
from ..index.base import Spec
from ..index.disk import write_atomic
from ..types import Metric
from .replica import ReplicaSettings, ShardReplica, _gather

log = logging.getLogger(__name__)

# What one replica reserves on its node: little, so that placement is about spreading.
BUNDLE = {"CPU": 0.01}
PLACEMENT_TIMEOUT_S = 60.0
STATUS_TIMEOUT_S = 2.0
# How many calls one replica serves at once (reads run concurrently; writes queue).
REPLICA_CONCURRENCY = 8


@dataclass
class Shard:
    replicas: list[Any]  # actor handle per replica number
    leader: int | None = 0  # None: no live replica
    epoch: int = 1
    followers: list[int] = field(default_factory=list)
    status: list[dict[str, Any] | None] = field(default_factory=list)
    seq: int = 0  # the highest seq a leader reported
    syncing: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def live(self) -> list[int]:
        return [] if self.leader is None else [self.leader, *self.followers]


@dataclass
class Entry:
    spec: Spec
    tag: str  # in the names of its actors and placement groups
    groups: list[Any]
    shards: list[Shard]
    ready: bool = False  # placed, and every shard has its leader

    def group_name(self, shard: int) -> str:
        return f"{self.spec.name}.{self.tag}.shard{shard}"

    def replica_name(self, shard: int, replica: int) -> str:
        return f"{self.group_name(shard)}.replica{replica}"


class ClusterCatalog:
    """The actor; see the module's docstring."""

    def __init__(self, settings: ReplicaSettings, check_interval_s: float) -> None:
        self.settings = settings
        self.entries: dict[str, Entry] = {}
        self.lock = threading.Lock()  # guards `entries`
        self._saving = threading.Lock()
        self.path = Path(settings.root) / "catalog.json"
        self._load()
        self._stop = threading.Event()
        threading.Thread(target=self._repair_every, args=(check_interval_s,), daemon=True).start()

    # ------------------------------------------------------------ life cycle

    def create(self, spec: Spec, states: list[tuple[dict[str, Any], Any]] | None = None) -> None:
        """Places and starts every replica (loading `states`, one per shard, if given)."""
        with self.lock:
            if spec.name in self.entries:
                raise AlreadyExists(f"collection {spec.name!r} already exists")
            self.entries[spec.name] = entry = Entry(spec, uuid.uuid4().hex[:8], [], [])
        try:
            self._place(entry, states)
            self._save()
        except BaseException:
            with self.lock:
                del self.entries[spec.name]
            self._remove(entry)
            raise

    def _place(self, entry: Entry, states: list[tuple[dict[str, Any], Any]] | None) -> None:
        spec = entry.spec
        nodes = ray.nodes()  # type: ignore[no-untyped-call]
        hosts = sum(
            1 for n in nodes if n["Alive"] and n["Resources"].get("CPU", 0) >= BUNDLE["CPU"]
        )
        if spec.replicas > hosts:
            raise FailedPrecondition(
                f"collection {spec.name!r} asks for {spec.replicas} replicas of each shard, "
                f"on different nodes, but the cluster has {hosts} live node(s) that can hold "
                "a replica (with CPUs)"
            )
        for i in range(spec.shards):
            strategy = "STRICT_SPREAD" if spec.replicas > 1 else "PACK"
            group = placement_group(
                [BUNDLE] * spec.replicas, strategy, name=entry.group_name(i), lifetime="detached"
            )
            entry.groups.append(group)
            replicas = [
                ray.remote(ShardReplica)
                .options(
                    name=entry.replica_name(i, j),
                    lifetime="detached",
                    max_restarts=-1,
                    max_concurrency=REPLICA_CONCURRENCY,
                    num_cpus=BUNDLE["CPU"],
                    scheduling_strategy=PlacementGroupSchedulingStrategy(group, j),
                )
                .remote(spec, i, j, self.settings)
                for j in range(spec.replicas)
            ]
            entry.shards.append(Shard(replicas, followers=list(range(1, spec.replicas))))
        try:
            ray.get([g.ready() for g in entry.groups], timeout=PLACEMENT_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise FailedPrecondition(
                f"collection {spec.name!r}: the cluster has no room for {spec.shards} shard(s) "
                f"of {spec.replicas} replica(s) after {PLACEMENT_TIMEOUT_S:g} s"
            ) from None
        for i, shard in enumerate(entry.shards):
            if states is not None:
                header, blob = states[i]
                ray.get([r.load.remote(header, blob, {}, shard.epoch) for r in shard.replicas])
            peers = {j: r for j, r in enumerate(shard.replicas) if j}
            shard.followers = ray.get(shard.replicas[0].lead.remote(shard.epoch, peers))
            shard.status = [None] * len(shard.replicas)
        entry.ready = True

    def drop(self, name: str) -> None:
        with self.lock:
            entry = self.entries.pop(name, None)
        if entry is None:
            raise CollectionNotFound(f"no collection named {name!r}")
        self._save()
        self._remove(entry)

    def _remove(self, entry: Entry) -> None:
        replicas = [r for shard in entry.shards for r in shard.replicas]
        _gather(dict(enumerate(r.drop.remote() for r in replicas)), STATUS_TIMEOUT_S)
        for r in replicas:
            ray.kill(r, no_restart=True)
        for group in entry.groups:
            remove_placement_group(group)

    def close(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------ what front ends ask

    def specs(self) -> list[Spec]:
        with self.lock:
            return [e.spec for e in self.entries.values() if e.ready]

    def view(self, name: str) -> list[tuple[int, Any, list[Any]]]:
        """Per shard: (epoch, the leader or None, the replicas in sync, leader first)."""
        shards = self._entry(name).shards
        return [(s.epoch, _at(s.replicas, s.leader), [s.replicas[j] for j in s.live()])
                for s in shards]  # fmt: skip

    def failover(self, name: str, shard: int, epoch: int) -> list[tuple[int, Any, list[Any]]]:
        """Checks a shard now (a front end found its leader gone); returns the view."""
        s = self._entry(name).shards[shard]
        if s.epoch == epoch:
            self._check(name, shard, s)
        return self.view(name)

    def placement(self, name: str) -> list[dict[str, Any]]:
        """Where each replica is and how it is, asked now."""
        out = []
        for i, s in enumerate(self._entry(name).shards):
            self._check(name, i, s)
            live = set(s.live())
            for j, status in enumerate(s.status):
                out.append({"shard": i, "replica": j, "live": j in live,
                            **({"node": "", "seq": 0, "count": 0} if status is None else
                               {k: status[k] for k in ("node", "seq", "count")})})  # fmt: skip
        return out

    def _entry(self, name: str) -> Entry:
        entry = self.entries.get(name)
        if entry is None or not entry.ready:
            raise CollectionNotFound(f"no collection named {name!r}")
        return entry

    # ------------------------------------------------------------ persistence

    def _save(self) -> None:
        def spec(e: Entry) -> dict[str, Any]:
            out = asdict(e.spec)
            out.update(metric=e.spec.metric.value, search_params=dict(e.spec.search_params))
            return out

        with self.lock:
            state = {
                name: {
                    "spec": spec(e),
                    "tag": e.tag,
                    "shards": [{"leader": s.leader, "epoch": s.epoch, "followers": s.followers,
                                "seq": s.seq} for s in e.shards],
                }
                for name, e in self.entries.items()
                if e.ready
            }  # fmt: skip
        with self._saving:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, [json.dumps(state, indent=1).encode()])

    def _load(self) -> None:
        """The collections a previous run of the catalog knew (after Ray restarted it)."""
        if not self.path.exists():
            return
        for name, saved in json.loads(self.path.read_text()).items():
            s = saved["spec"]
            spec = Spec(**{**s, "metric": Metric(s["metric"]),
                           "search_params": tuple(sorted(s["search_params"].items()))})  # fmt: skip
            entry = Entry(spec, saved["tag"], [], [], ready=True)
            try:
                for i, shard in enumerate(saved["shards"]):
                    entry.groups.append(get_placement_group(entry.group_name(i)))
                    replicas = [
                        ray.get_actor(entry.replica_name(i, j)) for j in range(spec.replicas)
                    ]
                    entry.shards.append(Shard(replicas, shard["leader"], shard["epoch"],
                                              shard["followers"], [None] * spec.replicas,
                                              shard["seq"]))  # fmt: skip
            except ValueError as e:  # an actor or group that is gone
                log.error("collection %r cannot be found again on the cluster: %s", name, e)
                continue
            self.entries[name] = entry
        log.info("catalog restarted: %d collection(s) found again", len(self.entries))

    # ------------------------------------------------------------ repair

    def _repair_every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self.lock:
                work = [
                    (n, i, s)
                    for n, e in self.entries.items()
                    if e.ready
                    for i, s in enumerate(e.shards)
                ]
            for name, i, shard in work:
                try:
                    self._check(name, i, shard)
                except Exception:
                    log.exception("checking shard %d of %r", i, name)

    def _check(self, name: str, i: int, shard: Shard) -> None:
        with shard.lock:
            answers = _gather(
                {j: r.status.remote() for j, r in enumerate(shard.replicas)}, STATUS_TIMEOUT_S
            )
            shard.status = [a if isinstance(a, dict) else None for a in answers.values()]
            lead = None if shard.leader is None else shard.status[shard.leader]
            if lead is not None and lead["leading"] and lead["epoch"] == shard.epoch:
                # A follower counts while it is the incarnation the leader synced: one that
                # Ray restarted (empty, on another node) is not in sync, whatever it answers.
                shard.followers = [
                    j for j, incarnation in lead["followers"].items()
                    if (st := shard.status[j]) is not None and st["incarnation"] == incarnation
                ]  # fmt: skip
                shard.seq = max(shard.seq, lead["seq"])
            else:
                self._elect(name, i, shard)
            if shard.leader is None:
                return
            leader = shard.replicas[shard.leader]
            for j, status in enumerate(shard.status):
                if status is None or j in shard.live() or j in shard.syncing:
                    continue
                shard.syncing.add(j)
                threading.Thread(
                    target=self._sync, args=(name, i, shard, leader, j), daemon=True
                ).start()

    def _elect(self, name: str, i: int, shard: Shard) -> None:
        """Makes the reachable replica that was in sync, with the highest seq, lead."""
        was = set(shard.followers)
        candidates = [
            j for j, st in enumerate(shard.status)
            if st is not None and (j in was or (not was and st["seq"] >= shard.seq))
        ]  # fmt: skip
        if not candidates:
            if shard.leader is not None:
                log.error("shard %d of %r has no live replica", i, name)
            shard.leader, shard.followers = None, []
            return
        best = max(candidates, key=lambda j: shard.status[j]["seq"])  # type: ignore[index]
        peers = {j: shard.replicas[j] for j in candidates if j != best}
        shard.epoch += 1
        shard.followers = ray.get(
            shard.replicas[best].lead.remote(shard.epoch, peers), timeout=30.0
        )
        shard.leader = best
        self._save()
        log.warning("shard %d of %r: replica %d leads (epoch %d), followers %s",
                    i, name, best, shard.epoch, shard.followers)  # fmt: skip

    def _sync(self, name: str, i: int, shard: Shard, leader: Any, j: int) -> None:
        try:
            seq = ray.get(leader.sync.remote(j, shard.replicas[j]))
            log.info("shard %d of %r: replica %d synced at seq %d", i, name, j, seq)
        except Exception as e:
            log.warning("shard %d of %r: replica %d not synced: %s", i, name, j, e)
        finally:
            shard.syncing.discard(j)


def _at(items: list[Any], i: int | None) -> Any:
    return None if i is None else items[i]


__all__ = ["ClusterCatalog"]

"""One copy of one shard: a Ray actor keeping a FAISS collection, with its own write-ahead
log and snapshots, in a folder on its node's disk.

One replica of each shard leads (the catalog says which, with an epoch). The leader takes
the shard's writes one at a time: it applies a write durably, which gives it the shard's
next sequence number, then forwards it to every follower in sync and acknowledges once they
have all made it durable too. A follower applies a forwarded write only when its number is
the next one it expects (a retried or repeated write is applied once); a gap means it
missed one, and it refuses until it is synced again.

A replica that is new, or restarted by Ray after its node was lost, is not in sync: the
leader streams it a consistent copy of its collection (what a snapshot holds at one
sequence number) and then the writes made meanwhile, in order, before it counts it in.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import random
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray

from ..arithmetic import Ranking
from ..errors import EmbedspaceServerError, FailedPrecondition, Unavailable
from ..index.base import Spec
from ..index.collection import Collection
from ..index.factory import configure_faiss
from ..index.snapshot import collection_from_state
from ..index.store import CollectionStore
from ..index.wal import OP_DELETE, OP_UPSERT
from ..types import FloatArray, Metadata, Neighbor, Scalar, StoredItem, UpsertResult

log = logging.getLogger(__name__)

# How long a leader waits for a follower to make one write durable before it drops it.
FOLLOW_TIMEOUT_S = 30.0
# How many replicas of one node may snapshot at once.
SNAPSHOTS_PER_NODE = 2
# How many recent write ids a replica remembers, to apply a retried write once.
REMEMBERED_WRITES = 4096


class NotLeader(Unavailable):
    """This replica does not lead its shard (any more): ask the catalog who does."""


class OutOfSync(FailedPrecondition):
    """A forwarded write is not the next one this follower expects."""


@dataclass(frozen=True, eq=False)
class Write:
    """One write to one shard. `id` is chosen by the front end and kept across retries;
    `seq` and `epoch` are set by the leader that applies it."""

    id: str
    op: int
    keys: list[str]
    vectors: FloatArray | None = None
    metadata: list[Metadata] | None = None
    seq: int = 0
    epoch: int = 0


@dataclass(frozen=True)
class ReplicaSettings:
    """What every replica takes from the front end that made the catalog."""

    root: str  # ray_data_dir
    snapshot_interval_s: float
    faiss_threads: int
    faiss_blas_threshold: int


def replica_folder(root: str, node: str, name: str, shard: int, replica: int) -> Path:
    return Path(root) / node / name / f"shard-{shard}" / f"replica-{replica}"


class ShardReplica:
    """The actor (see the module's docstring); thread-safe: reads run concurrently, writes
    and syncs one at a time."""

    def __init__(self, spec: Spec, shard: int, replica: int, settings: ReplicaSettings) -> None:
        self.shard, self.replica = shard, replica
        self.node = ray.get_runtime_context().get_node_id()
        # Each start of this actor (Ray restarts it elsewhere after its node is lost) is a
        # new incarnation, in sync with nobody until a leader syncs it.
        self.incarnation = uuid.uuid4().hex
        configure_faiss(settings.faiss_threads, settings.faiss_blas_threshold)
        self.folder = replica_folder(settings.root, self.node, spec.name, shard, replica)
        self.local_spec = replace(spec, shards=1, replicas=1)
        self.store = CollectionStore(self.folder)
        loaded, _ = self.store.load_all(quarantine=True)
        found = loaded.get(spec.name)
        if isinstance(found, Collection):
            self.collection = found
        else:
            self.collection = self.store.new(self.local_spec)
            self.store.create(self.collection)
        # A replica counts in its shard only once a leader has synced it (or it was made
        # with the shard, empty like its peers).
        self.epoch = 0
        self.leading = False
        self.followers: dict[int, Any] = {}  # replica number -> handle, in sync (leader only)
        self.incarnations: dict[int, str] = {}  # of the followers, as they were synced
        self.catching_up: dict[int, list[Write]] = {}  # writes to send once a sync is loaded
        self.recent: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._writes = threading.Lock()
        self._stop = threading.Event()
        self._saver = threading.Thread(
            target=self._save_every, args=(settings.snapshot_interval_s,), daemon=True
        )
        self._saver.start()

    # ------------------------------------------------------------ state

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "seq": self.collection.seq,
            "count": len(self.collection),
            "epoch": self.epoch,
            "leading": self.leading,
            "incarnation": self.incarnation,
            "followers": {i: self.incarnations[i] for i in self.followers},
        }

    def _save_every(self, interval: float) -> None:
        # A random first wait, so that replicas made together do not all snapshot at once;
        # and at most SNAPSHOTS_PER_NODE replicas of one node snapshot at the same time (a
        # snapshot holds a second copy of the index in memory while it is written).
        slot = (
            self.folder.parents[2]
            / f".snapshot-slot-{(self.shard + self.replica) % SNAPSHOTS_PER_NODE}"
        )
        wait = interval * random.uniform(0.5, 1.5)
        while not self._stop.wait(wait):
            wait = interval
            try:
                with open(slot, "a") as held:
                    fcntl.flock(held, fcntl.LOCK_EX)  # released when the file closes
                    self.store.save(self.collection)
            except (EmbedspaceServerError, OSError) as e:  # the log still holds every write
                log.warning("shard %d replica %d not snapshotted: %s",
                            self.shard, self.replica, e)  # fmt: skip

    # ------------------------------------------------------------ leading

    def lead(self, epoch: int, peers: Mapping[int, Any]) -> list[int]:
        """Leads the shard from `epoch` on; keeps as followers the peers at its own seq
        (the others are synced later); returns the followers."""
        with self._writes:
            self.epoch, self.leading = epoch, True
            fenced = _gather({i: peer.fence.remote(epoch) for i, peer in peers.items()}, 10.0)
            same = {i: f for i, f in fenced.items() if isinstance(f, tuple)}
            same = {i: f for i, f in same.items() if f[0] == self.collection.seq}
            self.followers = {i: peers[i] for i in same}
            self.incarnations = {i: f[1] for i, f in same.items()}
            return sorted(self.followers)

    def fence(self, epoch: int) -> tuple[int, str]:
        """Follows the leader of `epoch` from now on, refusing earlier leaders' writes;
        returns this replica's seq and incarnation."""
        with self._writes:
            self.epoch = max(self.epoch, epoch)
            self.leading = False
            return self.collection.seq, self.incarnation

    def write(self, w: Write) -> UpsertResult | int:
        """Applies a write as the shard's leader and forwards it to the followers."""
        with self._writes:
            if not self.leading:
                raise NotLeader(f"replica {self.replica} of shard {self.shard} does not lead it")
            if w.id in self.recent:
                return self.recent[w.id]  # type: ignore[no-any-return]
            before = self.collection.seq
            result = self._apply(w)
            if self.collection.seq != before:  # a delete of absent ids changes nothing
                w = replace(w, seq=self.collection.seq, epoch=self.epoch)
                for pending in self.catching_up.values():
                    pending.append(w)
                self._forward(w)
                if not self.leading:  # fenced: the write is not acknowledged; the front end
                    raise NotLeader(  # retries it, same id, on the new leader
                        f"replica {self.replica} of shard {self.shard} was replaced as leader"
                    )
            self._remember(w.id, result)
            return result

    def _forward(self, w: Write) -> None:
        """Call holding the write lock."""
        refs = {i: peer.follow.remote(w) for i, peer in self.followers.items()}
        for i, answer in _gather(refs, FOLLOW_TIMEOUT_S).items():
            if isinstance(answer, BaseException):
                log.warning("shard %d: replica %d dropped from the followers: %s",
                            self.shard, i, answer)  # fmt: skip
                del self.followers[i]
                self.incarnations.pop(i, None)
                if isinstance(answer, NotLeader):  # a later leader fenced this one
                    self.leading = False

    def sync(self, i: int, peer: Any) -> int:
        """Brings replica `i` into the shard: a consistent copy of this collection, then
        the writes made while it loaded; returns the seq it was synced at."""
        with self._writes:
            if not self.leading:
                raise NotLeader(f"replica {self.replica} of shard {self.shard} does not lead it")
            self.followers.pop(i, None)
            self.incarnations.pop(i, None)
            header, blob, _ = self.collection.state()
            self.catching_up[i] = []
            recent = dict(self.recent)
            epoch = self.epoch
        try:
            incarnation = ray.get(peer.load.remote(header, blob, recent, epoch))
            with self._writes:
                for w in self.catching_up[i]:
                    ray.get(peer.follow.remote(w), timeout=FOLLOW_TIMEOUT_S)
                if self.leading and self.epoch == epoch:
                    self.followers[i] = peer
                    self.incarnations[i] = incarnation
                return self.collection.seq
        finally:
            with self._writes:
                self.catching_up.pop(i, None)

    # ------------------------------------------------------------ following

    def follow(self, w: Write) -> None:
        with self._writes:
            if w.epoch < self.epoch:
                raise NotLeader(f"epoch {w.epoch} is over: shard {self.shard} is at {self.epoch}")
            self.epoch = w.epoch
            self.leading = False
            seq = self.collection.seq
            if w.seq <= seq:
                return  # applied already
            if w.seq != seq + 1:
                raise OutOfSync(f"shard {self.shard} replica {self.replica} is at seq {seq}, "
                                f"was sent {w.seq}")  # fmt: skip
            self._remember(w.id, self._apply(w))

    def load(self, header: dict[str, Any], blob: Any, recent: dict[str, Any], epoch: int) -> str:
        """Replaces this replica's collection with a leader's copy; returns the incarnation
        that holds it."""
        fresh = collection_from_state(header, blob)
        with self._writes:
            self.store.drop(self.collection)
            self.store.create(fresh, (header, blob))
            self.collection = fresh
            self.recent = collections.OrderedDict(recent)
            self.epoch, self.leading = epoch, False
            self.followers.clear()
            return self.incarnation

    def _apply(self, w: Write) -> UpsertResult | int:
        if w.op == OP_UPSERT:
            assert w.vectors is not None and w.metadata is not None
            return self.collection.upsert(w.keys, w.vectors, w.metadata)
        assert w.op == OP_DELETE
        return self.collection.delete(w.keys)

    def _remember(self, key: str, result: Any) -> None:
        self.recent[key] = result
        while len(self.recent) > REMEMBERED_WRITES:
            self.recent.popitem(last=False)

    # ------------------------------------------------------------ reading

    def count(self, where: Mapping[str, Scalar] | None = None) -> int:
        return self.collection.count(where)

    def get(self, keys: Sequence[str], missing_ok: bool = False) -> list[StoredItem]:
        return self.collection.get(keys, missing_ok=missing_ok)

    def scan(
        self, after: str, limit: int, vectors: bool, metadata: bool
    ) -> tuple[list[StoredItem], int]:
        return self.collection.scan(after, limit, vectors=vectors, metadata=metadata)

    def search(
        self,
        queries: FloatArray,
        k: int,
        exclude: Iterable[str],
        where: Mapping[str, Scalar] | None,
        min_score: float | None,
        params: Mapping[str, float] | None,
    ) -> list[list[Neighbor]]:
        return self.collection.search(
            queries, k, exclude=exclude, where=where, min_score=min_score, params=params
        )

    def rank(self, ranking: Ranking, k: int, exclude: Iterable[str]) -> list[Neighbor]:
        return self.collection.rank(ranking, k, exclude)

    def state(self) -> tuple[dict[str, Any], Any]:
        header, blob, _ = self.collection.state()
        return header, blob

    def drop(self) -> None:
        """Removes this replica's files; the actor is killed next."""
        self._stop.set()
        with self._writes:
            self.store.drop(self.collection)
            self.store.close()
            shutil.rmtree(self.folder, ignore_errors=True)


def _gather(refs: Mapping[int, Any], timeout: float) -> dict[int, Any]:
    """Each ref's answer, or the exception it raised, or a timeout: never raises."""
    out: dict[int, Any] = {}
    if not refs:
        return out
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
    done = set(ready)
    for i, ref in refs.items():
        if ref not in done:
            out[i] = TimeoutError(f"no answer in {timeout:g} s")
            continue
        try:
            out[i] = ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            out[i] = e.cause if isinstance(e.cause, BaseException) else e
        except ray.exceptions.RayError as e:
            out[i] = e
    return out


__all__ = ["FOLLOW_TIMEOUT_S", "NotLeader", "OutOfSync", "ShardReplica", "Write"]

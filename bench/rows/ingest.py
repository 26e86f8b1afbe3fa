"""I, I2, IM: `embedspace ingest` run the way a user runs it (a process of the CLI, timed
from its start to its exit) against the raw libraries it stands on, in the same run:

- I: real sentences from a JSON-lines file into a MiniLM collection, against
  `SentenceTransformer.encode` of the same sentences at batch 64 in this process;
- I2: precomputed vectors from a Parquet file into a Flat collection, against
  `faiss.IndexFlatIP.add` of the same vectors plus an fsynced append of the same bytes to a
  file on the same disk as the server's data (the least a durable write does);
- IM: the ingest process's peak memory for JSON-lines files of vectors of two sizes, which
  should not grow with the file (it is read a row at a time).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from data import DIM, WordSet, bulk_vectors, corpus_sentences
from embedspace import Client
from embedspace_server.process import ServeProcess
from harness import Block, cpu_note, interleave, say
from report import Row, versus

from . import Bench
from .cli import Cli, CliFailed, Ran

ROWS = ("I", "I2", "IM")
# Rows that run only when --only names them, as each takes minutes on 2 cores: I embeds 20k
# sentences twice a round (about 4-5 minutes a block), I2 ingests 200k vectors a round (the
# CLI takes about 0.2 s of CPU per 1000), IM writes and ingests a 1 GB file.
OPT_IN = ("I", "I2", "IM")
MB = 10**6


@dataclass(frozen=True)
class Sizes:
    sentences: int  # I
    sentence_rounds: int  # I's rounds, unless --rounds is given: its blocks take minutes
    vectors: int  # I2
    files_mb: tuple[int, int]  # IM: the large file and the small one


SIZES = {
    "full": Sizes(sentences=20_000, sentence_rounds=3, vectors=200_000, files_mb=(1000, 100)),
    "quick": Sizes(sentences=600, sentence_rounds=3, vectors=40_000, files_mb=(100, 10)),
}


class _Fresh:
    """A fresh collection for each ingest (a retried block gets another); the one before
    is dropped when the next is made, so the server holds one at a time."""

    def __init__(self, admin: Client, encoder: str, prefix: str) -> None:
        self.admin, self.encoder, self.prefix = admin, encoder, prefix
        self.names: list[str] = []

    def new(self) -> str:
        self.drop()
        name = f"{self.prefix}-{len(self.names)}"
        self.admin.create_collection(name, self.encoder, index="Flat")
        self.names.append(name)
        return name

    def ingest(self, cli: Cli, path: Path, n: int) -> float:
        """Rows per second of `embedspace ingest` of `path` (n rows) into a fresh collection,
        checked to hold them all."""
        name = self.new()
        wall = cli.run("ingest", name, str(path))
        self.check(name, n)
        return n / wall

    def check(self, name: str, n: int) -> None:
        count = self.admin.describe(name).count
        if count != n:
            raise RuntimeError(f"collection {name!r} holds {count} items; the file has {n} rows")

    def drop(self) -> None:
        if self.names and self.names[-1] in {c.name for c in self.admin.collections()}:
            self.admin.drop_collection(self.names[-1])


def _cpu_per_k(label: str, blocks: Sequence[Block], runs: Sequence[Ran], n: int) -> str:
    """CPU seconds per 1000 rows: the CLI process's (its own rusage) and the server's (the
    meter's servers' CPU less the CLI's), medians over the blocks."""
    cli = statistics.median(r.cpu for r in runs) * 1000 / n
    both = statistics.median(b.server * b.wall for b in blocks) * 1000 / n
    return f"{label}: CPU per 1000 rows: CLI process {cli:.2f} s, server {both - cli:.2f} s"


def ingest_throughput(
    b: Bench, server: ServeProcess, words: WordSet | None, sizes: Sizes, rows: set[str],
    rounds: int,
) -> None:  # fmt: skip
    """I (with `rows` naming it) and I2 (with `words`) on the main server; `rounds` 0: the
    profile's (I: `sizes.sentence_rounds`)."""
    folder = Path(tempfile.mkdtemp(prefix="ingest-", dir=b.servers.tmp))
    admin = Client(server.target, timeout=600)
    cli = Cli(b.meter, server.target, folder)
    try:
        floor = cli.floor()
        b.report.info.append(
            f"I, I2: `embedspace ingest` is timed from its start to its exit; starting it "
            f"(`embedspace ingest --help`) takes {floor.wall:.2f}s, {floor.cpu:.2f}s CPU, "
            f"peak RSS {floor.peak / MB:.0f} MB; run with the CLI's defaults, output to a "
            "file, not a terminal"
        )
        if "I" in rows:
            try:
                _sentences(b, admin, cli, sizes.sentences, rounds or sizes.sentence_rounds)
            except CliFailed as e:
                _failed(b, admin, "I", ">= 0.85", e)
        if "I2" in rows and words is not None:
            try:
                _vectors(b, admin, cli, words, sizes.vectors, rounds or b.p.rounds)
            except CliFailed as e:
                _failed(b, admin, "I2", ">= 0.5", e)
    finally:
        admin.close()
        cli.settle()
        shutil.rmtree(folder, ignore_errors=True)


def _failed(b: Bench, admin: Client, row: str, goal: str, error: CliFailed) -> None:
    """The row says the command failed, its collections go, and the run goes on."""
    for c in admin.collections():
        if c.name.startswith(f"{row.lower()}-"):
            admin.drop_collection(c.name)
    what = f"`embedspace ingest` exited {error.status}: {error.last}"
    b.report.add([Row(row, what, "failed", "", "", goal, "NO (failed)")])
    b.report.info.append(f"{row}: {error}".replace("\n", " | ")[:1500])


def _sentences(b: Bench, admin: Client, cli: Cli, count: int, rounds: int) -> None:
    sentences, about = corpus_sentences(count)
    n, info = len(sentences), b.report.info
    info.append(f"I: sentences: {about}")
    path = cli.folder / "sentences.jsonl"
    _write_jsonl(path, ({"id": f"s{i}", "text": s} for i, s in enumerate(sentences)))
    warm = cli.folder / "warm.jsonl"
    _write_jsonl(warm, ({"id": f"w{i}", "text": s} for i, s in enumerate(sentences[:64])))
    fresh = _Fresh(admin, "minilm", "i")
    say(f"I: ingest of {n} sentences against encode at batch 64")
    b.model.encode(sentences[:64], batch_size=64, show_progress_bar=False)
    cli.run("ingest", fresh.new(), str(warm))  # the server's text path and the CLI's imports
    cli.settle()

    def ingest() -> float:
        return fresh.ingest(cli, path, n)

    def encode() -> float:
        start = time.perf_counter()
        b.model.encode(sentences, batch_size=64, show_progress_bar=False)
        return n / (time.perf_counter() - start)

    # The CLI first in each round: a failing ingest is known in seconds, not after an encode.
    blocks = interleave(
        b.meter, rounds, [("cli", "I embedspace ingest", ingest), ("raw", "I encode b64", encode)]
    )
    runs = cli.settle()
    ids = [f"s{i}" for i in range(4)]
    got = np.stack([np.asarray(x.vector) for x in admin.get(fresh.names[-1], ids)])
    want = b.model.encode(sentences[:4], show_progress_bar=False)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    fresh.drop()
    b.report.add(
        [
            versus(
                "I",
                f"ingest sentences/s: `embedspace ingest` of {n} real sentences (JSON lines, "
                f"mean {np.mean([len(s.split()) for s in sentences]):.0f} words) into a MiniLM "
                "Flat collection, process start included",
                blocks["cli"], blocks["raw"], "encode b64", goal=0.85,
            )
        ],
        blocks,
    )  # fmt: skip
    info.append(
        f"I: stored vectors vs raw encode, cosine >= {cos.min():.6f} (4 sentences); encode "
        "gets all sentences in one call (it sorts them by length, so batches pad little)"
    )
    info.append(cpu_note("I raw encode", blocks["raw"]))
    info.append(cpu_note("I ingest (server = server + CLI process)", blocks["cli"]))
    info.append(_cpu_per_k("I ingest", blocks["cli"], runs, n))
    info.append(f"I: CLI peak RSS {max(r.peak for r in runs) / MB:.0f} MB")


def _vectors(b: Bench, admin: Client, cli: Cli, words: WordSet, n: int, rounds: int) -> None:
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    info = b.report.info
    vectors = bulk_vectors(words.vectors, n)
    copies = -(-n // len(words.vectors))
    info.append(
        f"I2: vectors: the {len(words.vectors)} stored MiniLM word vectors of K"
        + (f", then {copies - 1} cop(ies) of them with Gaussian noise (0.01 per component) "
           "added and renormalised, to reach " if copies > 1 else ", first ")
        + f"{n}; Parquet (id string, vector list<float32>, pyarrow's default row groups)"
    )  # fmt: skip
    path = cli.folder / "vectors.parquet"
    ids = [f"v{i}" for i in range(n)]
    column = pa.ListArray.from_arrays(
        pa.array(np.arange(0, (n + 1) * DIM, DIM, dtype=np.int32)), pa.array(vectors.reshape(-1))
    )
    pq.write_table(pa.table({"id": ids, "vector": column}), path)
    size = path.stat().st_size
    warm = cli.folder / "warm.parquet"
    pq.write_table(pa.table({"id": ids[:512], "vector": column[:512]}), warm)
    sink = b.servers.tmp / "raw-append.f32"  # the disk of the servers' data directories
    fresh = _Fresh(admin, "minilm", "i2")
    say(f"I2: ingest of {n} vectors from Parquet against IndexFlatIP.add + fsynced append")
    cli.run("ingest", fresh.new(), str(warm))
    cli.settle()

    def ingest() -> float:
        return fresh.ingest(cli, path, n)

    def add_and_append() -> float:
        start = time.perf_counter()
        index = faiss.IndexFlatIP(DIM)
        index.add(vectors)
        with open(sink, "ab") as f:
            f.write(vectors.data)
            f.flush()
            os.fsync(f.fileno())
        rate = n / (time.perf_counter() - start)
        sink.unlink()
        return rate

    add_and_append()
    blocks = interleave(
        b.meter,
        rounds,
        [("raw", "I2 add + fsync", add_and_append), ("cli", "I2 embedspace ingest", ingest)],
    )
    runs = cli.settle()
    got = admin.get(fresh.names[-1], ids[:3] + ids[-3:])
    want = np.concatenate([vectors[:3], vectors[-3:]])
    diff = float(np.abs(np.stack([np.asarray(x.vector) for x in got]) - want).max())
    fresh.drop()
    b.report.add(
        [
            versus(
                "I2",
                f"ingest vectors/s: `embedspace ingest` of {n}x{DIM} vectors (Parquet, "
                f"{size / MB:.0f} MB) into a Flat collection, process start included",
                blocks["cli"], blocks["raw"], "IndexFlatIP.add + fsynced append",
                fmt="{:.3f}", goal=0.5,
            )
        ],
        blocks,
    )  # fmt: skip
    info.append(f"I2: stored vectors vs the file's, largest difference {diff:.2e} (6 rows)")
    info.append(cpu_note("I2 add + fsynced append", blocks["raw"]))
    info.append(cpu_note("I2 ingest (server = server + CLI process)", blocks["cli"]))
    info.append(_cpu_per_k("I2 ingest", blocks["cli"], runs, n))
    info.append(f"I2: CLI peak RSS {max(r.peak for r in runs) / MB:.0f} MB")


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def _vector_lines(vectors: np.ndarray, start: int) -> list[str]:
    """JSON lines of id and vector (7 decimals: about 4.4 kB a 384-d row)."""
    rounded = vectors.astype(np.float64).round(7).tolist()
    return [json.dumps({"id": f"v{start + i}", "vector": v}) + "\n" for i, v in enumerate(rounded)]


def _write_vector_file(path: Path, base: np.ndarray, target: int) -> int:
    """A JSON-lines file of vectors of about `target` bytes; how many rows it holds."""
    sample = _vector_lines(base[:500], 0)
    per_row = sum(len(x) for x in sample) / len(sample)
    n = int(target / per_row)
    vectors = bulk_vectors(base, n)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, n, 10_000):
            f.writelines(_vector_lines(vectors[start : start + 10_000], start))
    return n


def ingest_memory(b: Bench, words: WordSet, sizes: Sizes) -> None:
    """IM: one vector-only server (no torch); each file ingested into its own collection;
    the CLI process's peak RSS (VmHWM, see `Cli`), against the start-up floor."""
    servers, info = b.servers, b.report.info
    settings = servers.settings(encoder_threads=0)
    server = servers.start("im", settings, [{"name": "v384", "kind": "vector", "dim": DIM}])
    folder = Path(tempfile.mkdtemp(prefix="ingest-memory-", dir=servers.tmp))
    admin = Client(server.target, timeout=600)
    cli = Cli(b.meter, server.target, folder)
    results: list[tuple[int, int, Ran]] = []
    try:
        floor = cli.floor()
        for mb in sizes.files_mb:
            path = folder / f"vectors-{mb}MB.jsonl"
            say(f"IM: writing a {mb} MB JSON-lines file of vectors")
            n = _write_vector_file(path, words.vectors, mb * MB)
            size = path.stat().st_size
            name = f"im-{mb}"
            admin.create_collection(name, "v384", index="Flat")
            say(f"IM: ingesting it ({n} rows)")
            try:
                cli.run("ingest", name, str(path))
            except CliFailed as e:
                _failed(b, admin, "IM", "<= 300 MB each", e)
                return
            ran = cli.settle()[0]
            count = admin.describe(name).count
            if count != n:
                raise RuntimeError(f"IM: {count} items stored of the file's {n}")
            admin.drop_collection(name)
            path.unlink()
            results.append((size, n, ran))
            info.append(
                f"IM: {size / MB:.0f} MB file, {n} rows of {DIM}-d vectors: ingested in "
                f"{ran.wall:.1f}s ({n / ran.wall:.0f} rows/s), CLI CPU {ran.cpu:.1f}s, "
                f"peak RSS {ran.peak / MB:.0f} MB"
            )
    finally:
        admin.close()
        cli.settle()
        shutil.rmtree(folder, ignore_errors=True)
        servers.stop(server)
    (big, nb, rb), (small, ns, rs) = results
    worst = max(rb.peak, rs.peak)
    b.report.add(
        [
            Row(
                "IM",
                f"peak RSS of `embedspace ingest` (VmHWM), JSON lines of {DIM}-d "
                f"vectors: {big / MB:.0f} MB file ({nb} rows) / {small / MB:.0f} MB file "
                f"({ns} rows)",
                f"{rb.peak / MB:.0f} MB / {rs.peak / MB:.0f} MB",
                f"{floor.peak / MB:.0f} MB `ingest --help`",
                f"{rb.peak / rs.peak:.2f}",
                "<= 300 MB each",
                "yes" if worst <= 300 * MB else "NO",
            )
        ]
    )
    info.append("IM: MB are 10^6 bytes; ratio: peak RSS for the large file / the small one")

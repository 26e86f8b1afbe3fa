"""A full disk, for real: the data directory on a 30 MB tmpfs, filled by upserts and a
filler file. Writes that cannot be made durable are refused with RESOURCE_EXHAUSTED and
never acknowledged; every acknowledged write survives SIGTERM and SIGKILL, before and
after space comes back. Needs root to mount the tmpfs (CI and developers run as root); a
refused mount fails the test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from embedspace import Client, ResourceExhausted

from .serve_process import BIN, ServeProcess

pytestmark = pytest.mark.slow

DIM = 512
BATCH = 64


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _batch(n: int) -> tuple[list[str], np.ndarray]:
    vectors = np.random.default_rng(n).normal(size=(BATCH, DIM)).astype(np.float32)
    return [f"b{n}-{i}" for i in range(BATCH)], vectors


def _check(es: Client, acknowledged: list[int]) -> None:
    """Every acknowledged batch is stored with its exact vectors, and nothing else."""
    assert es.describe("c").count == BATCH * len(acknowledged)
    for n in acknowledged:
        ids, vectors = _batch(n)
        got = es.get("c", ids)
        assert np.array_equal(np.stack([item.vector for item in got]), vectors), n


def test_a_full_disk_loses_no_acknowledged_write(small_disk: Path, tmp_path: Path) -> None:
    config = tmp_path / "disk.toml"
    config.write_text(
        "builtin_collections = false\n"
        "snapshot_interval_s = 1.0\n"  # snapshots fail on the full disk too
        f'[[encoders]]\nname = "v"\nkind = "vector"\ndim = {DIM}\nmetric = "l2"\n'
    )
    data = small_disk / "data"
    argv = [str(BIN / "embedspace"), "serve", "--config", str(config), "--port", "0",
            "--data-dir", str(data)]  # fmt: skip
    filler = small_disk / "filler"
    filler.write_bytes(bytes(6 * 2**20))
    acknowledged: list[int] = []
    refused = 0

    proc = ServeProcess(argv)
    try:
        proc.wait_serving(60)
        with Client(proc.target, timeout=30, retries=0) as es:
            es.create_collection("c", "v")
            for n in range(1000):
                ids, vectors = _batch(n)
                try:
                    es.upsert("c", ids, vectors=vectors)
                except ResourceExhausted as e:
                    assert "the disk is full" in str(e) and str(data) in str(e), str(e)
                    refused += 1
                    if refused == 5:  # a snapshot that compacts the log may free some space
                        break
                    continue
                acknowledged.append(n)
            assert refused == 5
            _check(es, acknowledged)
        assert proc.terminate() == 0  # the shutdown snapshot fails; the log holds it all
        assert "not snapshotted" in proc.log
    finally:
        proc.kill()

    filled = len(acknowledged)
    restarts = [("full", "kill"), ("freed", "term"), ("freed", "kill")]
    for disk, stop in restarts:
        if disk == "freed" and filler.exists():
            filler.unlink()
        proc = ServeProcess(argv)
        try:
            proc.wait_serving(60)
            with Client(proc.target, timeout=30, retries=0) as es:
                _check(es, acknowledged)
                if disk == "freed":
                    for _ in range(10):
                        n = len(acknowledged) + refused + 1000
                        ids, vectors = _batch(n)
                        es.upsert("c", ids, vectors=vectors)
                        acknowledged.append(n)
            if stop == "term":
                assert proc.terminate() == 0
            else:
                proc.kill()
        finally:
            proc.kill()
    proc = ServeProcess(argv)
    try:
        proc.wait_serving(60)
        with Client(proc.target, timeout=30) as es:
            _check(es, acknowledged)
        assert proc.terminate() == 0
    finally:
        proc.kill()
    print(f"\n{filled} batches of {BATCH} acknowledged before the disk filled, {refused} "
          f"refused; {len(acknowledged) * BATCH} vectors after 3 restarts, all intact")  # fmt: skip


def test_many_collections_need_no_descriptor_each(tmp_path: Path) -> None:
    """A server limited to 128 open files serves 200 collections with writes in their logs,
    and still takes new connections."""
    config = tmp_path / "small.toml"
    config.write_text(
        'builtin_collections = false\n[[encoders]]\nname = "v"\nkind = "vector"\ndim = 8\n'
    )
    argv = ["prlimit", "--nofile=128:128", str(BIN / "embedspace"), "serve", "--config",
            str(config), "--port", "0", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    proc = ServeProcess(argv)
    try:
        proc.wait_serving(60)
        with Client(proc.target, timeout=30, retries=0) as es:
            for i in range(200):
                es.create_collection(f"c{i}", "v")
                es.upsert(f"c{i}", ["x"], vectors=np.ones((1, 8)))
        for i in (0, 199):
            with Client(proc.target, timeout=10, retries=0) as es:  # a new connection
                assert es.describe(f"c{i}").count == 1
        assert proc.terminate() == 0
    finally:
        proc.kill()

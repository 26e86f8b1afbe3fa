"""Acknowledged writes survive SIGKILL: a real server process is killed at random moments
while a client streams upserts and deletes, then restarted on the same data directory."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import Client, EmbedspaceError

from .serve_process import BIN, ServeProcess

pytestmark = pytest.mark.slow

RUNS = 20
DIM = 16


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "crash.toml"
    config.write_text(
        "snapshot_interval_s = 0.3\n"  # snapshots and log compaction race the kills too
        f'[[encoders]]\nname = "v"\nkind = "vector"\ndim = {DIM}\n'
    )
    return config


def _vector(key: str) -> np.ndarray:
    rng = np.random.default_rng(abs(hash(key)) % 2**32)
    return rng.normal(size=DIM).astype(np.float32)


class Writer(threading.Thread):
    """Streams batches of upserts and deletes; records what was acknowledged."""

    def __init__(self, target: str, run: int, present: set[str]) -> None:
        super().__init__(daemon=True)
        self.target, self.number, self.rng = target, run, random.Random(run)
        self.present = set(present)  # acknowledged state, starting from the last run's
        self.in_flight: tuple[str, list[str]] | None = None

    def run(self) -> None:
        batch = 0
        with Client(self.target, timeout=5, retries=0) as es:
            while True:
                batch += 1
                if self.present and self.rng.random() < 0.25:
                    ids = self.rng.sample(sorted(self.present), min(len(self.present), 3))
                    self.in_flight = ("delete", ids)
                    try:
                        es.delete("c", ids)
                    except EmbedspaceError:
                        return
                    self.present -= set(ids)
                else:
                    ids = [f"r{self.number}-b{batch}-{i}" for i in range(self.rng.randint(1, 20))]
                    self.in_flight = ("upsert", ids)
                    try:
                        es.upsert("c", ids, vectors=np.stack([_vector(k) for k in ids]))
                    except EmbedspaceError:
                        return
                    self.present |= set(ids)
                self.in_flight = None


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data, config = tmp_path / "data", _config(tmp_path)
    argv = [str(BIN / "embedspace"), "serve", "--config", str(config), "--port", "0",
            "--data-dir", str(data)]  # fmt: skip
    present: set[str] = set()
    killed_mid_write = 0
    acknowledged = 0
    for run in range(RUNS):
        proc = ServeProcess(argv)
        try:
            proc.wait_serving(60)
            with Client(proc.target, timeout=10) as es:
                if run == 0:
                    es.create_collection("c", "v")
                _check(es, present, None)
            writer = Writer(proc.target, run, present)
            writer.start()
            time.sleep(random.Random(1000 + run).uniform(0.2, 1.5))
            proc.proc.send_signal(signal.SIGKILL)
            proc.proc.wait(10)
            writer.join(10)
            assert not writer.is_alive()
            acknowledged += len(writer.present ^ present)
            present = writer.present
            killed_mid_write += writer.in_flight is not None
            in_flight = writer.in_flight
        finally:
            proc.kill()
        proc = ServeProcess(argv)
        try:
            proc.wait_serving(60)
            with Client(proc.target, timeout=10) as es:
                present = _check(es, present, in_flight)
        finally:
            proc.kill()
    print(f"\n{RUNS} SIGKILLs, {killed_mid_write} during a write; {acknowledged} acknowledged "
          f"changes checked; {len(present)} items at the end")  # fmt: skip
    assert killed_mid_write > 0  # the kills did land on writes in flight


def _check(es: Client, present: set[str], in_flight: Any) -> set[str]:
    """Every acknowledged item is stored with its exact vector; an unacknowledged batch is
    all there or not at all. Returns the state as found (the in-flight batch resolved)."""
    count = es.describe("c").count
    unsure = set(in_flight[1]) if in_flight else set()  # a delete that may have landed
    keys = sorted(present - unsure)
    found = {
        s.id: s.vector for i in range(0, len(keys), 1000) for s in es.get("c", keys[i : i + 1000])
    }
    for key, vector in found.items():
        expected = _vector(key)
        np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=1e-6)
    if in_flight is None:
        assert count == len(present)
        return present
    op, ids = in_flight
    if op == "upsert":
        landed = [k for k in ids if _exists(es, k)]
        assert len(landed) in (0, len(ids)), f"half an upsert landed: {landed} of {ids}"
        state = present | set(landed)
    else:
        gone = [k for k in ids if not _exists(es, k)]
        assert len(gone) in (0, len(ids)), f"half a delete landed: {gone} of {ids}"
        state = present - set(gone)
    assert count == len(state)
    return state


def _exists(es: Client, key: str) -> bool:
    from embedspace import NotFound

    try:
        es.get("c", [key])
    except NotFound:
        return False
    return True

"""Measuring on a small, shared machine (shared/MEASURING.md): the run's profile, the
quiet-machine check, interleaved rounds, medians and paired ratios, thread counts."""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
T0 = time.monotonic()


@dataclass(frozen=True)
class Profile:
    n: int  # vectors in the K, A and M collections
    queries: int  # held-out words used as queries
    rounds: int  # interleaved rounds of timed blocks
    block_s: float  # length of one throughput block
    latency_calls: int  # calls per kind for L, over all rounds
    budget_s: float  # past this, noisy blocks are no longer retried


FULL = Profile(n=100_000, queries=1000, rounds=5, block_s=3.0, latency_calls=2000, budget_s=480)
QUICK = Profile(n=20_000, queries=300, rounds=3, block_s=1.5, latency_calls=600, budget_s=150)


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ CPU and memory accounting


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(rest[11]) + int(rest[12])) / HZ


def _machine_busy_s() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / HZ  # all but idle and iowait


def _self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def proc_status(pid: int, key: str) -> int:
    """A field of /proc/PID/status (kB fields in bytes): VmRSS, VmHWM, Threads."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                parts = line.split()
                return int(parts[1]) * (1024 if parts[-1] == "kB" else 1)
    raise KeyError(key)


@dataclass
class Block:
    """One timed block: its value and where the CPU went meanwhile (in cores)."""

    value: Any
    wall: float
    foreign: float  # cores used by other processes
    client: float  # cores used by this process (load generator or raw library)
    server: float  # cores used by the servers
    tries: int


class Meter:
    """Runs timed blocks and retries those that overlapped foreign load."""

    def __init__(self, max_foreign: float, retries: int, budget_s: float) -> None:
        self.max_foreign = max_foreign
        self.retries = retries
        self.budget_s = budget_s
        self.pids: list[int] = []
        self.retried = 0
        self.accepted_noisy = 0

    def run(self, label: str, fn: Callable[[], Any]) -> Block:
        tries = 0
        while True:
            tries += 1
            s0 = (time.monotonic(), _machine_busy_s(), _self_cpu_s(), self._servers())
            value = fn()
            s1 = (time.monotonic(), _machine_busy_s(), _self_cpu_s(), self._servers())
            wall = s1[0] - s0[0]
            own, srv = s1[2] - s0[2], s1[3] - s0[3]
            foreign = max(0.0, (s1[1] - s0[1]) - own - srv) / wall
            block = Block(value, wall, foreign, own / wall, srv / wall, tries)
            if foreign <= self.max_foreign:
                return block
            over_budget = time.monotonic() - T0 > self.budget_s
            if tries > self.retries or over_budget:
                self.accepted_noisy += 1
                say(f"  {label}: kept a noisy block (foreign load {foreign:.2f} cores)")
                return block
            self.retried += 1
            say(f"  {label}: foreign load {foreign:.2f} cores; retrying")
            time.sleep(2.0)

    def _servers(self) -> float:
        return sum(_proc_cpu_s(p) for p in self.pids)


# ------------------------------------------------------------------ timed blocks


def interleave(
    meter: Meter, rounds: int, blocks: Sequence[tuple[str, str, Callable[[], Any]]]
) -> dict[str, list[Block]]:
    """`rounds` rounds of one block of each (key, label, fn), in the order given (A B A B),
    so that blocks of one round can be paired into ratios; key -> its blocks."""
    out: dict[str, list[Block]] = {key: [] for key, _, _ in blocks}
    for r in range(rounds):
        say(f"  round {r + 1}/{rounds}")
        for key, label, fn in blocks:
            out[key].append(meter.run(label, fn))
    return out


def items_per_s(seconds: float, step: Callable[[int], int]) -> float:
    """Calls `step(done)` until `seconds` have passed; `step` does some items and says how
    many. Items per second."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step(done)
    return done / (time.perf_counter() - start)


def call_times(fn: Callable[[], Any], calls: int) -> list[float]:
    """Seconds each of `calls` sequential calls of `fn` took."""
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


# ------------------------------------------------------------------ statistics


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(med(values))} [{fmt.format(min(values))}..{fmt.format(max(values))}]"


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def verdict(values: Sequence[float], goal: float, *, at_most: bool = False) -> str:
    if not values:
        return "n/a"
    m = med(values)
    return ("yes" if (m <= goal if at_most else m >= goal) else "NO") + (
        ""
        if len(values) == 1
        else f" ({sum((v <= goal) if at_most else (v >= goal) for v in values)}/{len(values)})"
    )


def rates(blocks: Sequence[Block]) -> list[float]:
    return [float(b.value) for b in blocks]


def ratios(a: Sequence[Block], b: Sequence[Block]) -> list[float]:
    return [float(x.value) / float(y.value) for x, y in zip(a, b, strict=True)]


def cpu_note(label: str, blocks: Sequence[Block]) -> str:
    return (
        f"{label}: server {med([b.server for b in blocks]):.2f} cores, this process "
        f"{med([b.client for b in blocks]):.2f}, foreign {med([b.foreign for b in blocks]):.2f}"
    )


# ------------------------------------------------------------------ threads


def set_threads() -> None:
    """The raw references in this process use every core, as the servers are told to."""
    import faiss
    import torch

    torch.set_num_threads(NCPU)
    faiss.omp_set_num_threads(NCPU)


def threads_here() -> str:
    import faiss
    import torch

    return (
        f"threads, this process (raw references, load generator): torch "
        f"{torch.get_num_threads()}, faiss omp {faiss.omp_get_max_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )

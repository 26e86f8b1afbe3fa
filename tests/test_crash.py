"""Acknowledged writes survive SIGKILL: a real server process is killed at random moments
while clients stream writes, then restarted on the same data directory, and everything it
acknowledged is checked: every acknowledged item is stored with its exact vector and no other
item is, counts are exact, and the one call in flight at the kill landed whole or not at all.

The suites: a Flat collection (inserts and deletes); an HNSW collection (replacements and
deletes, whose tombstones trigger background rebuilds between kills, and backups that must
restore after the restart); collections created, restored from backups and dropped. Some runs
end with SIGTERM instead, which must exit 0 and lose nothing either.

The calls and the kill delays are seeded (SEED; set EMBEDSPACE_CRASH_SEED to explore others).
Where a kill lands in the server's work is up to the scheduler, so a failure names its run and
seed and shows the logs of the stopped and the restarted server.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from embedspace import Cancelled, Client, EmbedspaceError, NotFound, Ref, Unavailable

from .serve_process import BIN, ServeProcess

pytestmark = pytest.mark.slow

RUNS = 20
DIM = 16
SEED = int(os.environ.get("EMBEDSPACE_CRASH_SEED", "1"))
PAGE = 1000  # ids per get (the server's max_batch is 1024)

Items = dict[str, str]  # id -> the tag its vector is made from (_raw)
T = TypeVar("T")


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "crash.toml"
    config.write_text(
        "snapshot_interval_s = 0.3\n"  # snapshots, log compaction and rebuilds race the kills
        f'[[encoders]]\nname = "v"\nkind = "vector"\ndim = {DIM}\n'
    )
    return config


@functools.cache
def _raw(tag: str) -> np.ndarray:
    """The vector written for `tag` (the same in every process: no str hash)."""
    seed = int.from_bytes(hashlib.blake2b(tag.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).normal(size=DIM).astype(np.float32)


@functools.cache
def _unit(tag: str) -> np.ndarray:
    """The vector the server stores for `tag`: "v" compares by cosine, so normalised."""
    v = _raw(tag)
    return v / np.linalg.norm(v)


@dataclass
class Call:
    """A call sent and not acknowledged. `items`: what an upsert writes, what a delete
    removes, what a created or restored collection or a backup holds."""

    kind: str  # upsert, delete, create, restore, drop, backup
    collection: str
    items: Items = field(default_factory=dict)
    index: str = ""  # of a created or restored collection, or a backed-up one
    backup: str = ""
    sent: float = field(default_factory=time.monotonic)
    before_stop: bool = False  # sent before the server was signalled (set after the stop)


class Workload:
    """One client streaming calls at a server that will be stopped, and the state the server
    acknowledged. `write` runs in a thread until a call is refused; `check` runs against the
    restarted server: it fails on anything lost or resurrected, resolves the call that was in
    flight and takes the state it found as the acknowledged one."""

    name = ""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.in_flight: Call | None = None
        self.refused: tuple[Exception, float] | None = None
        self.serial = 0
        self.tally: Counter[str] = Counter()

    def setup(self, es: Client) -> None:
        """At the first start, on an empty data directory."""

    def step(self, es: Client, rng: random.Random, run: int) -> None:
        raise NotImplementedError

    def check(self, es: Client) -> None:
        raise NotImplementedError

    def stopped(self, data: Path) -> None:
        """After the server stopped, before it restarts."""

    def write(self, target: str, run: int) -> None:
        rng = random.Random(f"{self.seed}-{self.name}-{run}")
        self.refused = None
        with Client(target, timeout=5, retries=0) as es:
            try:
                while True:
                    self.serial += 1
                    self.step(es, rng, run)
            except Exception as e:  # an EmbedspaceError, or a bug _check_refusal reports
                self.refused = (e, time.monotonic())

    def send(self, call: Call, do: Callable[[], T]) -> T:
        """Makes the call; it is in flight until it returns."""
        self.in_flight = call
        out = do()
        self.in_flight = None
        self.tally[f"{call.kind} acknowledged"] += 1
        return out


def _write_to(call: Call | None, collection: str) -> Call | None:
    """`call` if it is an upsert or delete of `collection`, else None."""
    if call is not None and call.collection == collection and call.kind in ("upsert", "delete"):
        return call
    return None


def _upsert(es: Client, collection: str, items: Items) -> None:
    es.upsert(collection, list(items), vectors=np.stack([_raw(t) for t in items.values()]))


# ------------------------------------------------------------ the crash loop


@dataclass
class Stops:
    kills: int = 0
    terms: int = 0
    mid_call: int = 0  # calls sent before a stop and not answered


def _crash_loop(
    tmp_path: Path, workloads: Sequence[Workload], runs: int, seed: int, term_every: int = 0
) -> Stops:
    """`runs` times: start the server on the same data directory, check every workload, let
    them write, and after a random delay SIGKILL it (SIGTERM every `term_every`-th run, which
    must exit 0). A last start checks the last run, and SIGTERM ends it."""
    data, config = tmp_path / "data", _config(tmp_path)
    argv = [str(BIN / "embedspace"), "serve", "--config", str(config), "--port", "0",
            "--data-dir", str(data)]  # fmt: skip
    delays = random.Random(f"{seed}-delays")
    stops = Stops()
    last_log = ""
    for run in range(runs + 1):
        proc = ServeProcess(argv)
        try:
            with _failure_context(run, seed, last_log, proc):
                proc.wait_serving(60)
                with Client(proc.target, timeout=30) as es:
                    for w in workloads:
                        if run == 0:
                            w.setup(es)
                        else:
                            w.check(es)
            if run == runs:
                code = proc.terminate(60)
                assert code == 0, f"SIGTERM after the checks: exit code {code}\n{proc.log}"
                break
            threads = [
                threading.Thread(target=w.write, args=(proc.target, run), daemon=True)
                for w in workloads
            ]
            for t in threads:
                t.start()
            time.sleep(delays.uniform(0.2, 1.5))
            signalled = time.monotonic()
            if term_every and run % term_every == term_every - 1:
                code = proc.terminate(60)
                assert code == 0, f"run {run}: SIGTERM, exit code {code}\n{proc.log}"
                stops.terms += 1
            else:
                proc.proc.send_signal(signal.SIGKILL)
                proc.proc.wait(10)
                stops.kills += 1
            for t in threads:
                t.join(10)
                assert not t.is_alive(), f"run {run}: a writer still runs after the stop"
            for w in workloads:
                _check_refusal(run, w, signalled)
                if w.in_flight is not None and w.in_flight.sent < signalled:
                    w.in_flight.before_stop = True
                    stops.mid_call += 1
                w.stopped(data)
            last_log = proc.log
        finally:
            proc.kill()
    return stops


@contextlib.contextmanager
def _failure_context(run: int, seed: int, last_log: str, proc: ServeProcess) -> Iterator[None]:
    """Names the run and seed of a failed check, with the logs of both servers."""
    try:
        yield
    except (AssertionError, EmbedspaceError, RuntimeError) as e:
        raise AssertionError(
            f"run {run} (seed {seed}), at its start: {type(e).__name__}: {e}\n"
            f"--- the stopped server's log (tail) ---\n{last_log[-3000:]}\n"
            f"--- the restarted server's log (tail) ---\n{proc.log[-3000:]}"
        ) from e


def _check_refusal(run: int, w: Workload, signalled: float) -> None:
    """A writer stops only when a call is refused, and only because the server went away."""
    assert w.refused is not None, f"run {run}: writer {w.name!r} ended without a refusal"
    error, when = w.refused
    assert isinstance(error, Unavailable | Cancelled) and when >= signalled, (
        f"run {run}: writer {w.name!r} had a {w.in_flight and w.in_flight.kind} refused "
        f"{'before' if when < signalled else 'after'} the stop: {type(error).__name__}: {error}"
    )


# ------------------------------------------------------------ checking a collection


def _scan(es: Client, collection: str) -> tuple[dict[str, np.ndarray], int]:
    """Every stored item of a collection, and the total scan reports."""
    found: dict[str, np.ndarray] = {}
    token = ""
    while True:
        page = es.scan(collection, page_token=token)
        found.update((s.id, s.vector) for s in page.items)
        token = page.next_page_token
        if not token:
            return found, page.total


def _wrong_vectors(vectors: dict[str, np.ndarray], expected: Items) -> list[str]:
    """The ids of `expected` whose vector in `vectors` is not the one of their tag."""
    keys = sorted(expected)
    if not keys:
        return []
    got = np.stack([vectors[k] for k in keys])
    want = np.stack([_unit(expected[k]) for k in keys])
    bad = ~np.isclose(got, want, rtol=1e-7, atol=1e-6).all(axis=1)
    return [keys[i] for i in np.flatnonzero(bad)]


def _holds(found: dict[str, np.ndarray], ids: Sequence[str], state: Items) -> bool:
    """Whether the items `ids` of `found` are as in `state` (absent where it lacks them)."""
    for k in ids:
        if k not in state:
            if k in found:
                return False
        elif k not in found or _wrong_vectors(found, {k: state[k]}):
            return False
    return True


def _check_collection(
    es: Client, collection: str, expected: Items, call: Call | None, tally: Counter[str]
) -> Items:
    """Every acknowledged item is stored with its exact vector (by scan and by get) and no
    other item is; the unacknowledged upsert or delete `call` is all there or not at all.
    Returns the state found (the call resolved)."""
    found, total = _scan(es, collection)
    count = es.describe(collection).count
    unsure = set(call.items) if call else set()
    sure = {k: t for k, t in expected.items() if k not in unsure}
    lost = sorted(sure.keys() - found.keys())
    assert not lost, f"{collection}: {len(lost)} acknowledged ids lost, e.g. {lost[:5]}"
    wrong = _wrong_vectors(found, sure)
    assert not wrong, f"{collection}: {len(wrong)} ids with a wrong vector, e.g. {wrong[:5]}"
    keys = sorted(sure)
    by_get: dict[str, np.ndarray] = {}
    for i in range(0, len(keys), PAGE):
        by_get.update((s.id, s.vector) for s in es.get(collection, keys[i : i + PAGE]))
    wrong = _wrong_vectors(by_get, sure)
    assert not wrong, f"{collection}: get gives {len(wrong)} wrong vectors, e.g. {wrong[:5]}"
    state = sure
    if call is not None:
        ids = list(call.items)
        before = {k: expected[k] for k in ids if k in expected}
        after = dict(call.items) if call.kind == "upsert" else {}
        if _holds(found, ids, after):
            state |= after
            tally["in flight, landed"] += 1
        else:
            assert _holds(found, ids, before), (
                f"{collection}: part of an unacknowledged {call.kind} landed: of {ids}, present "
                f"now {[k for k in ids if k in found]}, with the new vector "
                f"{[k for k in ids if k in after and _holds(found, [k], after)]}"
            )
            state |= before
            tally["in flight, not landed"] += 1
    extra = sorted(found.keys() - state.keys())
    assert not extra, f"{collection}: {len(extra)} ids never acknowledged, e.g. {extra[:5]}"
    assert count == total == len(state), (
        f"{collection}: describe counts {count}, scan {total}; {len(state)} items are stored"
    )
    return state


def _check_backup(
    es: Client, backup: str, items: Items, index: str, *, may_be_missing: bool
) -> bool:
    """Restores `backup` into a new collection, which must hold exactly `items`, then drops
    it. Returns whether the backup exists (an acknowledged one must)."""
    target = f"restored-{backup}"[:64]
    try:
        info = es.restore(backup, target)
    except NotFound:
        assert may_be_missing, f"the acknowledged backup {backup!r} is gone"
        return False
    assert (info.count, info.index) == (len(items), index), (
        f"backup {backup!r} restored as {info.count} items of {info.index}; it held "
        f"{len(items)} of {index}"
    )
    _check_collection(es, target, items, None, Counter())
    es.drop_collection(target)
    return True


# ------------------------------------------------------------ Flat: inserts and deletes


class FlatWrites(Workload):
    """Batches of new ids and deletes of acknowledged ones into the Flat collection "c"."""

    name = "c"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.items: Items = {}

    def setup(self, es: Client) -> None:
        es.create_collection("c", "v")

    def step(self, es: Client, rng: random.Random, run: int) -> None:
        if self.items and rng.random() < 0.25:
            ids = rng.sample(sorted(self.items), min(len(self.items), 3))
            self.send(Call("delete", "c", {k: self.items[k] for k in ids}),
                      lambda: es.delete("c", ids))  # fmt: skip
            for k in ids:
                del self.items[k]
        else:
            ids = [f"r{run}-b{self.serial}-{i}" for i in range(rng.randint(1, 20))]
            items = {k: k for k in ids}
            self.send(Call("upsert", "c", items), lambda: _upsert(es, "c", items))
            self.items |= items
        self.tally["changes"] += len(ids)

    def check(self, es: Client) -> None:
        call, self.in_flight = self.in_flight, None
        self.items = _check_collection(es, "c", self.items, _write_to(call, "c"), self.tally)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    flat = FlatWrites(SEED)
    stops = _crash_loop(tmp_path, [flat], RUNS, SEED)
    t = flat.tally
    print(f"\n{RUNS} SIGKILLs, {stops.mid_call} during a write; {t['changes']} acknowledged "
          f"changes checked; {len(flat.items)} items at the end ({t['in flight, landed']} "
          f"unacknowledged batches landed, {t['in flight, not landed']} did not; "
          f"seed {SEED})")  # fmt: skip
    assert stops.mid_call > 0  # the kills did land on writes in flight


# ------------------------------------------------------------ HNSW: tombstones and backups


class HnswWrites(Workload):
    """Inserts, replacements of existing ids and deletes into the HNSW collection "h", kept
    near SIZE ids: a replaced or deleted vector stays in the graph as a tombstone, so the
    tombstones pass the rebuild threshold (20%) within a few dozen calls. A rebuild is thrown
    away if a write lands while it runs, so under steady writes none finishes: the writer
    pauses for a snapshot interval every so often, and kills land in rebuilds too. Backups
    are taken between writes, so each holds exactly the state acknowledged at that moment."""

    name = "h"
    SIZE = 500

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.items: Items = {}
        self.backups: list[tuple[str, Items, int]] = []  # acknowledged, not yet checked
        self.snapshot: tuple[int, int] | None = None  # (tombstones, vectors) at the last stop
        self.rebuilds_seen = 0
        self.backups_restored = 0
        self.pauses = random.Random()
        self.next_pause = 0.0

    def setup(self, es: Client) -> None:
        es.create_collection("h", "v", index="HNSW16")

    def write(self, target: str, run: int) -> None:
        # The pauses come by the clock, from their own generator: the calls stay seeded.
        self.pauses = random.Random(f"{self.seed}-pauses-{run}")
        self.next_pause = time.monotonic() + self.pauses.uniform(0.3, 0.9)
        super().write(target, run)

    def step(self, es: Client, rng: random.Random, run: int) -> None:
        if time.monotonic() >= self.next_pause:  # a snapshot interval: a rebuild can finish
            time.sleep(self.pauses.uniform(0.3, 0.45))
            self.next_pause = time.monotonic() + self.pauses.uniform(0.3, 0.9)
            return
        r = rng.random()
        if r < 0.015:
            name = f"h-{run}-{self.serial}"
            call = Call("backup", "h", dict(self.items), "HNSW16", name)
            info = self.send(call, lambda: es.backup("h", name))
            self.backups.append((name, call.items, info.count))
        elif self.items and r < (0.5 if len(self.items) > self.SIZE else 0.3):
            ids = rng.sample(sorted(self.items), min(len(self.items), rng.randint(1, 15)))
            self.send(Call("delete", "h", {k: self.items[k] for k in ids}),
                      lambda: es.delete("h", ids))  # fmt: skip
            for k in ids:
                del self.items[k]
            self.tally["changes"] += len(ids)
        else:
            old = rng.sample(sorted(self.items), min(len(self.items), rng.randint(0, 10)))
            new = [f"r{run}-b{self.serial}-{i}" for i in range(rng.randint(not old, 10))]
            items = {k: f"{k}@{self.serial}" for k in old + new}
            self.send(Call("upsert", "h", items), lambda: _upsert(es, "h", items))
            self.items |= items
            self.tally["changes"] += len(items)
            self.tally["replacements"] += len(old)

    def check(self, es: Client) -> None:
        call, self.in_flight = self.in_flight, None
        self.items = _check_collection(es, "h", self.items, _write_to(call, "h"), self.tally)
        for key in random.Random(f"{self.seed}-search-{self.serial}").sample(
            sorted(self.items), min(5, len(self.items))
        ):
            hits = [n.id for n in es.search("h", Ref(key), 10)]
            stray = [k for k in hits if k not in self.items]
            assert not stray, f"h: a search by {key!r} finds ids not stored: {stray}"
        for name, items, count in self.backups:
            assert count == len(items), (
                f"backup {name!r} reported {count} items; {len(items)} were acknowledged"
            )
            _check_backup(es, name, items, "HNSW16", may_be_missing=False)
            self.backups_restored += 1
        self.backups.clear()
        if call is not None and call.kind == "backup":
            self.tally["backups in flight"] += call.before_stop
            if _check_backup(es, call.backup, call.items, "HNSW16", may_be_missing=True):
                self.backups_restored += 1

    def stopped(self, data: Path) -> None:
        """Without a rebuild, the graph's tombstones and vectors only grow: if the snapshot
        holds fewer than at the last stop, the index was rebuilt in between."""
        from embedspace_server.index.snapshot import read_snapshot

        snapshot = read_snapshot(data / "collections" / "h" / "snapshot")
        now = (snapshot.tombstones, len(snapshot) + snapshot.tombstones)
        if self.snapshot is not None and (now[0] < self.snapshot[0] or now[1] < self.snapshot[1]):
            self.rebuilds_seen += 1
        self.snapshot = now


def test_hnsw_tombstones_rebuilds_and_backups_survive_kills(tmp_path: Path) -> None:
    hnsw = HnswWrites(SEED)
    runs = 16
    stops = _crash_loop(tmp_path, [hnsw], runs, SEED, term_every=4)
    t = hnsw.tally
    print(f"\n{stops.kills} SIGKILLs and {stops.terms} SIGTERMs, {stops.mid_call} during a "
          f"call; {t['changes']} acknowledged changes checked ({t['replacements']} "
          f"replacements); rebuilds seen between {hnsw.rebuilds_seen} stops; "
          f"{hnsw.backups_restored} backups restored ({t['backups in flight']} in flight); "
          f"{len(hnsw.items)} items at the end (seed {SEED})")  # fmt: skip
    assert stops.mid_call > 0
    assert hnsw.rebuilds_seen > 0  # the kills landed between rebuilds
    assert hnsw.backups_restored > 0


# ------------------------------------------------------------ creates, restores and drops


POOL = ("k0", "k1", "k2", "k3")
LIFECYCLE = ("create", "restore", "drop")


class CatalogueChurn(Workload):
    """Collections of a few reused names created (Flat or HNSW16, or restored from one of
    this workload's backups), written to, backed up and dropped. A collection acknowledged as
    dropped must not come back, nor its items in one created later under its name."""

    name = "catalogue"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.live: dict[str, tuple[str, Items]] = {}  # name -> (index, items)
        self.backups: dict[str, tuple[str, Items, int]] = {}  # acknowledged, and the count
        self.unchecked: list[str] = []  # backups acknowledged since the last check
        self.backups_restored = 0

    def step(self, es: Client, rng: random.Random, run: int) -> None:
        free = [n for n in POOL if n not in self.live]
        live = sorted(self.live)
        r = rng.random()
        if free and (not live or r < 0.3):
            name = rng.choice(free)
            if self.backups and rng.random() < 0.4:
                backup = rng.choice(sorted(self.backups))
                index, items, _ = self.backups[backup]
                self.send(Call("restore", name, items, index, backup),
                          lambda: es.restore(backup, name))  # fmt: skip
            else:
                index, items = rng.choice(("Flat", "HNSW16")), {}
                self.send(Call("create", name, {}, index),
                          lambda: es.create_collection(name, "v", index=index))  # fmt: skip
            self.live[name] = (index, dict(items))
            return
        name = rng.choice(live)
        index, items = self.live[name]
        if r < 0.55:
            self.send(Call("drop", name, items, index), lambda: es.drop_collection(name))
            del self.live[name]
        elif r < 0.65:
            backup = f"{name}-{run}-{self.serial}"
            call = Call("backup", name, dict(items), index, backup)
            info = self.send(call, lambda: es.backup(name, backup))
            self.backups[backup] = (index, call.items, info.count)
            self.unchecked.append(backup)
        elif items and r < 0.75:
            ids = rng.sample(sorted(items), min(len(items), rng.randint(1, 3)))
            self.send(Call("delete", name, {k: items[k] for k in ids}),
                      lambda: es.delete(name, ids))  # fmt: skip
            for k in ids:
                del items[k]
        else:
            old = rng.sample(sorted(items), min(len(items), rng.randint(0, 2)))
            new = [f"{name}-{run}-{self.serial}-{i}" for i in range(rng.randint(not old, 4))]
            batch = {k: f"{k}@{self.serial}" for k in old + new}
            self.send(Call("upsert", name, batch), lambda: _upsert(es, name, batch))
            items |= batch

    def check(self, es: Client) -> None:
        call, self.in_flight = self.in_flight, None
        infos = {i.name: i for i in es.collections()}
        damaged = {n: i.quarantined for n, i in infos.items() if i.quarantined}
        assert not damaged, f"collections quarantined after the stop: {damaged}"
        if call is not None and call.kind in LIFECYCLE:
            landed = (call.collection in infos) != (call.kind == "drop")
            if landed and call.kind == "drop":
                del self.live[call.collection]
            elif landed:
                self.live[call.collection] = (call.index, dict(call.items))
            self.tally[f"{call.kind} in flight"] += call.before_stop
            self.tally[f"{call.kind} in flight, landed"] += call.before_stop and landed
        for name in POOL:
            assert (name in infos) == (name in self.live), (
                f"collection {name!r} {'exists' if name in infos else 'is missing'}; it was "
                f"acknowledged as {'created' if name in self.live else 'dropped'} "
                f"(in flight: {call and (call.kind, call.collection)})"
            )
        for name, (index, items) in self.live.items():
            assert infos[name].index == index, f"{name}: index {infos[name].index}, not {index}"
            found = _check_collection(es, name, items, _write_to(call, name), self.tally)
            self.live[name] = (index, found)
        for backup in self.unchecked:
            index, items, count = self.backups[backup]
            assert count == len(items), f"backup {backup!r} reported {count}, not {len(items)}"
            self.backups_restored += _check_backup(es, backup, items, index, may_be_missing=False)
        self.unchecked.clear()
        if call is not None and call.kind == "backup":
            self.tally["backup in flight"] += call.before_stop
            if _check_backup(es, call.backup, call.items, call.index, may_be_missing=True):
                self.backups[call.backup] = (call.index, call.items, len(call.items))
                self.backups_restored += 1


def test_created_and_dropped_collections_survive_kills(tmp_path: Path) -> None:
    churn = CatalogueChurn(SEED)
    runs = 16
    stops = _crash_loop(tmp_path, [churn], runs, SEED, term_every=5)
    t = churn.tally
    in_flight = sum(t[f"{k} in flight"] for k in LIFECYCLE)
    landed = sum(t[f"{k} in flight, landed"] for k in LIFECYCLE)
    print(f"\n{stops.kills} SIGKILLs and {stops.terms} SIGTERMs, {stops.mid_call} during a "
          f"call; acknowledged: {t['create acknowledged']} creates, {t['restore acknowledged']} "
          f"restores, {t['drop acknowledged']} drops, {t['backup acknowledged']} backups; "
          f"{in_flight} stops with a create, restore or drop in flight ({landed} landed); "
          f"{churn.backups_restored} backups restored after a stop; {len(churn.live)} "
          f"collections at the end (seed {SEED})")  # fmt: skip
    assert stops.mid_call > 0
    assert in_flight > 0  # the kills did land on creates, restores or drops


# ------------------------------------------------------------ all at once


def test_all_workloads_at_once_survive_kills(tmp_path: Path) -> None:
    """The three workloads in one server: a kill lands on a drop while another collection is
    being rebuilt or snapshotted."""
    flat, hnsw, churn = FlatWrites(SEED), HnswWrites(SEED), CatalogueChurn(SEED)
    runs = 10
    stops = _crash_loop(tmp_path, [flat, hnsw, churn], runs, SEED, term_every=3)
    changes = flat.tally["changes"] + hnsw.tally["changes"]
    lifecycle = sum(churn.tally[f"{k} acknowledged"] for k in LIFECYCLE)
    print(f"\n{stops.kills} SIGKILLs and {stops.terms} SIGTERMs, {stops.mid_call} calls in "
          f"flight; {changes} acknowledged changes, {lifecycle} creates, restores and drops "
          f"and {hnsw.backups_restored + churn.backups_restored} backups checked; rebuilds "
          f"seen between {hnsw.rebuilds_seen} stops (seed {SEED})")  # fmt: skip
    assert stops.mid_call > 0

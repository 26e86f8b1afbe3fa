"""The write-ahead log: records replay in order; a torn tail is cut, never applied; any
other damage is reported and changes no byte; a failed append leaves nothing behind;
snapshots compact the log."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from embedspace_server.encoders import EncoderRegistry
from embedspace_server.encoders.vector import VectorEncoder
from embedspace_server.engine import Engine
from embedspace_server.errors import DamagedData, ResourceExhausted, Unavailable
from embedspace_server.index import CollectionStore, wal
from embedspace_server.index.wal import OP_DELETE, OP_UPSERT, Journal, replay
from embedspace_server.types import UpsertPoint, VectorQuery

from .faults import FaultyOS


def _journal(tmp_path: Path, n: int) -> Path:
    journal = Journal(tmp_path, 1)
    for i in range(n):
        journal.append(OP_UPSERT if i % 2 == 0 else OP_DELETE, f"record {i}".encode())
    (segment,) = tmp_path.glob("wal-*")
    return segment


def test_records_replay_in_order_after_a_seq(tmp_path: Path) -> None:
    _journal(tmp_path, 5)
    got = list(replay(tmp_path, 2))
    assert [(seq, op, body) for seq, op, body in got] == [
        (3, OP_UPSERT, b"record 2"), (4, OP_DELETE, b"record 3"), (5, OP_UPSERT, b"record 4"),
    ]  # fmt: skip


@pytest.mark.parametrize("damage", ["torn", "flipped", "garbage"])
def test_a_damaged_tail_is_cut_and_never_applied(tmp_path: Path, damage: str) -> None:
    segment = _journal(tmp_path, 4)
    data = bytearray(segment.read_bytes())
    record = len(data) // 4  # the four records have the same size
    if damage == "torn":
        data = data[: 3 * record + 7]
    elif damage == "flipped":
        data[3 * record + 20] ^= 0x01  # a bit of the last record's body
    else:
        data += b"\x00\x01garbage"
    segment.write_bytes(bytes(data))
    got = [body for _, _, body in replay(tmp_path, 0)]
    assert got == [f"record {i}".encode() for i in range(4 if damage == "garbage" else 3)]
    assert segment.stat().st_size == (4 if damage == "garbage" else 3) * record
    # Appending after the cut continues a clean log.
    journal = Journal(tmp_path, 99)
    journal.append(OP_UPSERT, b"after")
    assert [body for _, _, body in replay(tmp_path, 0)][-1] == b"after"


def test_writes_are_logged_replayed_and_compacted(tmp_path: Path) -> None:
    def engine() -> tuple[Engine, CollectionStore]:
        store = CollectionStore(tmp_path)
        return Engine(EncoderRegistry([VectorEncoder("v", 4)]), store), store

    e, store = engine()
    e.create_collection("c", "v")
    folder = tmp_path / "collections" / "c"
    for i in range(10):
        e.upsert("c", [UpsertPoint(f"x{i}", None, np.full(4, i + 1, np.float32), {"i": i})])
    e.delete("c", ["x3"])
    store.close()  # no snapshot: a crash, as far as the files know
    e, store = engine()
    assert e.describe("c").count == 9
    hits = e.start_search("c", VectorQuery(np.ones(4, np.float32)), 1).result()
    assert hits[0].metadata["i"] >= 0
    assert e.snapshot() == 1  # the replayed writes go into a snapshot, compacting the log
    e.upsert("c", [UpsertPoint("y", None, np.ones(4, np.float32), {})])
    assert e.snapshot() == 1
    # The snapshot covers every record: only the newest (empty) segment is left.
    segments = sorted(folder.glob("wal-*"))
    assert len(segments) == 1 and segments[0].stat().st_size == 0
    store.close()
    e, store = engine()
    assert e.describe("c").count == 10
    assert sorted(s.id for s in e.get("c", ["y", "x0"])) == ["x0", "y"]
    store.close()


@pytest.mark.parametrize("damage", ["middle", "size", "older segment"])
def test_damage_before_the_end_is_reported_and_nothing_is_cut(tmp_path: Path, damage: str) -> None:
    segment = _journal(tmp_path, 4)
    record = segment.stat().st_size // 4
    if damage == "older segment":
        newer = Journal(tmp_path, 5)
        newer.rotate()
        newer.append(OP_UPSERT, b"record 4")
        target, at = segment, 3 * record + 20  # the last record of the older segment
    else:
        # A bit of the second record's body, or of its length field (which makes it look
        # as if it ran to the end of the file, like a torn tail).
        target, at = segment, record + (20 if damage == "middle" else 1)
    data = bytearray(target.read_bytes())
    data[at] ^= 0x10
    target.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(
        DamagedData, match=f"damaged at byte {record if at < 3 * record else 3 * record}"
    ):
        list(replay(tmp_path, 0))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_zero_filled_tail_is_a_torn_tail(tmp_path: Path) -> None:
    """A crash can leave a file longer than what was written into it, filled with zeros."""
    segment = _journal(tmp_path, 3)
    size = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(bytes(4096))
    assert [body for _, _, body in replay(tmp_path, 0)] == [b"record 0", b"record 1", b"record 2"]
    assert segment.stat().st_size == size


@pytest.mark.parametrize("fault", ["write", "fsync", "open"])
def test_a_failed_append_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    segment = _journal(tmp_path, 2)
    size = segment.stat().st_size
    journal = Journal(tmp_path, 3)
    faulty = FaultyOS(fault, errno.ENOSPC, times=2 if fault == "write" else 1)
    monkeypatch.setattr(wal, "os", faulty)
    with pytest.raises(ResourceExhausted, match="disk is full"):
        journal.append(OP_UPSERT, b"lost" * 1000)
    assert segment.stat().st_size == size and journal.next_seq == 3
    faulty.failing = False  # space comes back
    assert journal.append(OP_UPSERT, b"kept") == 3
    assert [body for _, _, body in replay(tmp_path, 0)] == [b"record 0", b"record 1", b"kept"]


def test_an_append_that_cannot_be_undone_stops_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    segment = _journal(tmp_path, 2)
    journal = Journal(tmp_path, 3)
    monkeypatch.setattr(wal, "os", FaultyOS("fsync", errno.EIO, times=10))
    with pytest.raises(Unavailable, match="the disk failed"):
        journal.append(OP_UPSERT, b"torn")
    with pytest.raises(Unavailable, match="refused until the server restarts"):
        journal.append(OP_UPSERT, b"never")
    with pytest.raises(Unavailable):
        journal.rotate()  # the torn record must stay the log's last
    monkeypatch.undo()
    assert segment.stat().st_size > 0
    # A restart's recovery cuts the torn record and the log goes on.
    assert [body for _, _, body in replay(tmp_path, 0)] == [b"record 0", b"record 1"]
    assert Journal(tmp_path, 3).append(OP_UPSERT, b"after") == 3

"""The write-ahead log: records replay in order; a torn or corrupt tail is cut, never
applied; snapshots compact the log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from embedspace_server.encoders import EncoderRegistry
from embedspace_server.encoders.vector import VectorEncoder
from embedspace_server.engine import Engine
from embedspace_server.index import CollectionStore
from embedspace_server.index.wal import OP_DELETE, OP_UPSERT, Journal, replay
from embedspace_server.types import UpsertPoint, VectorQuery


def _journal(tmp_path: Path, n: int) -> Path:
    journal = Journal(tmp_path, 1)
    for i in range(n):
        journal.append(OP_UPSERT if i % 2 == 0 else OP_DELETE, f"record {i}".encode())
    journal.close()
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
    journal.close()
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

"""The write-ahead log of one collection: every upsert and delete is appended and fsynced
before it is applied, so an acknowledged write survives a crash.

A log is a series of segment files `wal-<first seq>` in the collection's folder. A record
is `<u32 body length><u32 crc32><u64 seq><u8 op>` followed by the body; the checksum covers
seq, op and body. A snapshot records the last seq it includes; taking one starts a new
segment, and once the snapshot is durable the older segments are deleted. Recovery reads
the snapshot, then replays every record after its seq.

A crash can leave only one kind of damage: the last record of the newest segment, cut
short or never filled in (a torn tail). Recovery cuts it off; it was never acknowledged.
Any other damage (a bad record with more log after it, in any segment) is corruption: the
collection is refused with the place named, and no byte is changed.

An append that fails (a full disk) is undone: the segment is cut back to where it was, so
the log never holds a torn record followed by acknowledged ones.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DamagedData, Unavailable
from ..observe import metrics, tracing
from ..types import FloatArray, Metadata
from .disk import fsync_dir, storage_error

log = logging.getLogger(__name__)

OP_UPSERT = 1
OP_DELETE = 2
_HEADER = struct.Struct("<IIQB")
_PREFIX = "wal-"


def _segments(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(_PREFIX))


class Journal:
    """Appends records to the newest segment; thread-compatible (callers hold a lock).

    No file stays open between appends: a server with thousands of collections must not
    hold a descriptor for each."""

    def __init__(self, folder: Path, next_seq: int, name: str = "") -> None:
        self.folder = folder
        self.next_seq = next_seq
        self.name = name or folder.name
        self._path: Path | None = None
        # Why the log refuses appends: a failed append could not be undone.
        self._broken: str | None = None

    def _segment(self) -> Path:
        if self._path is None:
            segments = _segments(self.folder)
            if segments:
                self._path = segments[-1]
            else:
                self._path = self._new_segment()
        return self._path

    def _new_segment(self) -> Path:
        path = self.folder / f"{_PREFIX}{self.next_seq:020d}"
        path.touch()
        fsync_dir(self.folder)
        return path

    def append(self, op: int, body: bytes) -> int:
        """Writes one record durably and returns its seq; raises ResourceExhausted or
        Unavailable, with nothing of the record left in the log, if it cannot."""
        if self._broken is not None:
            raise Unavailable(self._broken)
        start = time.perf_counter()
        with tracing.child("embedspace.wal", {"embedspace.wal.bytes": len(body)}):
            seq = self._append(op, body)
        metrics.WAL_APPEND.observe(time.perf_counter() - start)
        return seq

    def _append(self, op: int, body: bytes) -> int:
        seq = self.next_seq
        head = struct.pack("<QB", seq, op)
        crc = zlib.crc32(body, zlib.crc32(head))
        record = _HEADER.pack(len(body), crc, seq, op) + body
        doing = f"write to the log of collection {self.name!r}"
        try:
            segment = self._segment()
            fd = os.open(segment, os.O_WRONLY | os.O_APPEND)
        except OSError as e:
            raise storage_error(e, doing, self.folder) from None
        try:
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, record)
                synced = time.perf_counter()
                os.fsync(fd)
                metrics.WAL_FSYNC.observe(time.perf_counter() - synced)
            except OSError as e:
                self._undo(fd, size, e)
                raise storage_error(e, doing, segment) from None
        finally:
            os.close(fd)
        self.next_seq += 1
        return seq

    def _undo(self, fd: int, size: int, cause: OSError) -> None:
        """Cuts the segment back to `size` after a failed append; if even that fails, the
        log refuses appends until a restart, whose recovery cuts the torn tail."""
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as e:
            self._broken = (
                f"the log of collection {self.name!r} could not be repaired after a failed "
                f"write ({cause.strerror}; then {e.strerror}); writes to it are refused until "
                "the server restarts"
            )
            log.error("%s", self._broken)

    def rotate(self) -> None:
        """Starts a new segment at the next seq (called as a snapshot is captured)."""
        if self._broken is not None:
            raise Unavailable(self._broken)  # the torn record must stay the log's last
        self._path = self._new_segment()

    def drop_through(self, seq: int) -> None:
        """Deletes the segments whose records are all at or before `seq`."""
        segments = _segments(self.folder)
        for older, newer in itertools.pairwise(segments):
            if int(newer.name[len(_PREFIX) :]) - 1 <= seq:
                older.unlink()
        fsync_dir(self.folder)


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a write may take fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def replay(folder: Path, after: int) -> Iterator[tuple[int, int, bytes]]:
    """(seq, op, body) of every record after `after`, in order. A torn tail is cut off;
    any other damage raises DamagedData before anything of that segment is returned."""
    segments = _segments(folder)
    for i, path in enumerate(segments):
        data = path.read_bytes()
        records, torn = _parse(path, data, last=i == len(segments) - 1)
        if torn is not None:
            log.warning(
                "%s: the last record (bytes %d to %d) was cut short by a crash and never "
                "acknowledged; cutting it off", path, torn, len(data),
            )  # fmt: skip
            with open(path, "r+b") as f:
                f.truncate(torn)
                os.fsync(f.fileno())
        for seq, op, body in records:
            if seq > after:
                yield seq, op, body


Record = tuple[int, int, bytes]  # seq, op, body


def _parse(path: Path, data: bytes, *, last: bool) -> tuple[list[Record], int | None]:
    """The records of one segment and, if it ends in a torn tail, the offset it starts at."""
    out: list[Record] = []
    expected = int(path.name[len(_PREFIX) :])  # a segment's first record has its name's seq
    offset = 0
    while offset < len(data):
        record = _record_at(data, offset)
        if record is None:
            if last and not _intact_record_after(data, offset, expected):
                return out, offset
            raise DamagedData(
                f"the log segment {str(path)!r} is damaged at byte {offset} of {len(data)}, "
                f"with {'more log after it' if last else 'newer segments after it'} (a crash "
                "cannot do that, so nothing was cut)"
            )
        out.append(record)
        offset += _HEADER.size + len(record[2])
        expected = record[0] + 1
    return out, None


def _record_at(data: bytes, offset: int) -> Record | None:
    """The intact record at `offset`, or None."""
    if offset + _HEADER.size > len(data):
        return None
    size, crc, seq, op = _HEADER.unpack_from(data, offset)
    body = data[offset + _HEADER.size : offset + _HEADER.size + size]
    head = struct.pack("<QB", seq, op)
    if len(body) != size or zlib.crc32(body, zlib.crc32(head)) != crc:
        return None
    return seq, op, body


def _intact_record_after(data: bytes, offset: int, expected: int) -> bool:
    """Whether an intact record follows a damaged one at `offset` (whose seq should be
    `expected`): then the damage is not a torn tail. Records are found by their seq."""
    for seq in range(expected + 1, expected + 4):
        pattern = struct.pack("<Q", seq)
        at = data.find(pattern, offset + 1)
        while at >= 0:
            start = at - 8  # the seq follows the body length and the checksum
            if start > offset and _record_at(data, start) is not None:
                return True
            at = data.find(pattern, at + 1)
    return False


def encode_upsert(keys: Sequence[str], vectors: FloatArray, metadata: Sequence[Metadata]) -> bytes:
    meta = json.dumps({"ids": list(keys), "metadata": [dict(m) for m in metadata]}).encode()
    return struct.pack("<I", len(meta)) + meta + np.ascontiguousarray(vectors, "<f4").tobytes()


def decode_upsert(body: bytes, dim: int) -> tuple[list[str], FloatArray, list[dict[str, Any]]]:
    (size,) = struct.unpack_from("<I", body)
    meta = json.loads(body[4 : 4 + size])
    vectors = np.frombuffer(body, "<f4", offset=4 + size).reshape(-1, dim).astype(np.float32)
    return meta["ids"], vectors, meta["metadata"]


def encode_delete(keys: Sequence[str]) -> bytes:
    return json.dumps(list(keys)).encode()


def decode_delete(body: bytes) -> list[str]:
    out: list[str] = json.loads(body)
    return out

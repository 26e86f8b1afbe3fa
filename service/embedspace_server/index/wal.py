"""The write-ahead log of one collection: every upsert and delete is appended and fsynced
before it is applied, so an acknowledged write survives a crash.

A log is a series of segment files `wal-<first seq>` in the collection's folder. A record
is `<u32 body length><u32 crc32><u64 seq><u8 op>` followed by the body; the checksum covers
seq, op and body. A snapshot records the last seq it includes; taking one starts a new
segment, and once the snapshot is durable the older segments are deleted. Recovery reads
the snapshot, then replays every record after its seq; a torn or corrupt record ends the
log there and is cut off, never applied.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..types import FloatArray, Metadata

log = logging.getLogger(__name__)

OP_UPSERT = 1
OP_DELETE = 2
_HEADER = struct.Struct("<IIQB")
_PREFIX = "wal-"


def _segments(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(_PREFIX))


class Journal:
    """Appends records to the newest segment; thread-compatible (callers hold a lock)."""

    def __init__(self, folder: Path, next_seq: int) -> None:
        self.folder = folder
        self.next_seq = next_seq
        self._file: BinaryIO | None = None

    def _open(self) -> BinaryIO:
        if self._file is None:
            segments = _segments(self.folder)
            path = segments[-1] if segments else self.folder / f"{_PREFIX}{self.next_seq:020d}"
            self._file = open(path, "ab")  # noqa: SIM115 (kept open between appends)
            if not segments:
                fsync_dir(self.folder)
        return self._file

    def append(self, op: int, body: bytes) -> int:
        """Writes one record durably; returns its seq."""
        seq = self.next_seq
        head = struct.pack("<QB", seq, op)
        crc = zlib.crc32(body, zlib.crc32(head))
        f = self._open()
        f.write(_HEADER.pack(len(body), crc, seq, op) + body)
        f.flush()
        os.fsync(f.fileno())
        self.next_seq += 1
        return seq

    def rotate(self) -> None:
        """Starts a new segment at the next seq (called as a snapshot is captured)."""
        self.close()
        path = self.folder / f"{_PREFIX}{self.next_seq:020d}"
        path.touch()
        fsync_dir(self.folder)

    def drop_through(self, seq: int) -> None:
        """Deletes the segments whose records are all at or before `seq`."""
        segments = _segments(self.folder)
        for older, newer in itertools.pairwise(segments):
            if int(newer.name[len(_PREFIX) :]) - 1 <= seq:
                older.unlink()
        fsync_dir(self.folder)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def replay(folder: Path, after: int) -> Iterator[tuple[int, int, bytes]]:
    """(seq, op, body) of every intact record after `after`, in order. A damaged record
    ends the log: its segment is cut there and later segments are set aside."""
    segments = _segments(folder)
    for i, path in enumerate(segments):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            good = offset + _HEADER.size <= len(data)
            if good:
                size, crc, seq, op = _HEADER.unpack_from(data, offset)
                body = data[offset + _HEADER.size : offset + _HEADER.size + size]
                head = struct.pack("<QB", seq, op)
                good = len(body) == size and zlib.crc32(body, zlib.crc32(head)) == crc
            if not good:
                log.warning(
                    "%s: damaged record at byte %d of %d; cutting the log there",
                    path, offset, len(data),
                )  # fmt: skip
                with open(path, "r+b") as f:
                    f.truncate(offset)
                    os.fsync(f.fileno())
                for later in segments[i + 1 :]:
                    later.rename(later.with_name(f".damaged-{later.name}"))
                return
            offset += _HEADER.size + size
            if seq > after:
                yield seq, op, body


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


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

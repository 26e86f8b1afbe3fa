"""The snapshot file of a collection (also the format of a backup).

Format 2: `EMBEDSPACE-SNAPSHOT-2\\n`, then `<u64 header length><u32 crc32 of the header>`,
the header (JSON: the collection's spec, seq, keys and metadata, and the length and crc32
of the index bytes), then the index bytes (a serialized FAISS index). Any flipped byte is
found by a checksum and reported; nothing damaged is served.

Format 1 (written before checksums) had no header checksum and no index checksum; it is
still read.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DamagedData
from .collection import Collection
from .disk import write_atomic

MAGIC_V1 = b"EMBEDSPACE-SNAPSHOT-1\n"
MAGIC = b"EMBEDSPACE-SNAPSHOT-2\n"
FORMAT = 2
_PREFIX = struct.Struct("<QI")


def write_snapshot(path: Path, header: dict[str, Any], blob: Any) -> None:
    """Writes a snapshot atomically (the old file or the new one survives a crash)."""
    index = np.ascontiguousarray(blob, np.uint8)
    header = {**header, "format": FORMAT, "index_bytes": index.nbytes,
              "index_crc32": zlib.crc32(index.data)}  # fmt: skip
    encoded = json.dumps(header, separators=(",", ":")).encode()
    prefix = _PREFIX.pack(len(encoded), zlib.crc32(encoded))
    write_atomic(path, [MAGIC, prefix, encoded, index.tobytes()])


def read_snapshot(path: Path, name: str | None = None) -> Collection:
    """Loads a snapshot (under another name, if given). Raises DamagedData, saying what is
    wrong, for a file that is not a snapshot, fails a checksum, or cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _damaged(path, f"it cannot be read ({e.strerror})") from None
    try:
        if data.startswith(MAGIC):
            header, blob = _parse(path, data)
        elif data.startswith(MAGIC_V1):
            header, blob = _parse_v1(data)
        else:
            raise _damaged(path, "it does not start like an embedspace snapshot")
        if name is not None:
            header["spec"]["name"] = name
        return Collection.from_state(header, blob)
    except DamagedData:
        raise
    except (ValueError, KeyError, TypeError, struct.error, RuntimeError) as e:
        raise _damaged(path, str(e) or type(e).__name__) from None


def _parse(path: Path, data: bytes) -> tuple[dict[str, Any], Any]:
    offset = len(MAGIC)
    size, crc = _PREFIX.unpack_from(data, offset)
    offset += _PREFIX.size
    encoded = data[offset : offset + size]
    if len(encoded) != size or zlib.crc32(encoded) != crc:
        raise _damaged(path, "its header fails its checksum")
    header = json.loads(encoded)
    index = memoryview(data)[offset + size :]
    if len(index) != header["index_bytes"]:
        raise _damaged(path, f"it holds {len(index)} index bytes; its header says "
                             f"{header['index_bytes']}")  # fmt: skip
    if zlib.crc32(index) != header["index_crc32"]:
        raise _damaged(path, "its index data fails its checksum")
    return header, np.frombuffer(index, np.uint8).copy()


def _parse_v1(data: bytes) -> tuple[dict[str, Any], Any]:
    offset = len(MAGIC_V1)
    (size,) = struct.unpack_from("<Q", data, offset)
    offset += 8
    header = json.loads(data[offset : offset + size])
    return header, np.frombuffer(data, np.uint8, offset=offset + size).copy()


def _damaged(path: Path, why: str) -> DamagedData:
    return DamagedData(f"the snapshot {str(path)!r} is damaged: {why}")

"""The snapshot file of a collection (also the format of a backup).

Format 2: `EMBEDSPACE-SNAPSHOT-2\\n`, then `<u64 header length><u32 crc32 of the header>`,
the header (JSON: the collection's spec, seq, keys and metadata, when it was written, and
the length and crc32 of the index bytes), then the index bytes (a serialized FAISS index).
Any flipped byte is found by a checksum and reported; nothing damaged is served.

Format 1 (written before checksums) had no header checksum and no index checksum; it is
still read, and so are its two older headers: ids as a map to labels, and the index wrapped
in FAISS's IndexIDMap2.
"""

from __future__ import annotations

import datetime
import json
import struct
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DamagedData
from ..observe import metrics
from ..types import Metric
from .base import Spec
from .collection import Collection
from .disk import write_atomic
from .factory import faiss_module, removable

MAGIC_V1 = b"EMBEDSPACE-SNAPSHOT-1\n"
MAGIC = b"EMBEDSPACE-SNAPSHOT-2\n"
FORMAT = 2
_PREFIX = struct.Struct("<QI")


def write_snapshot(path: Path, header: dict[str, Any], blob: Any) -> None:
    """Writes a snapshot atomically (the old file or the new one survives a crash)."""
    start = time.perf_counter()
    index = np.ascontiguousarray(blob, np.uint8)
    created = datetime.datetime.now(datetime.UTC).isoformat()
    header = {**header, "format": FORMAT, "created": created, "index_bytes": index.nbytes,
              "index_crc32": zlib.crc32(index.data)}  # fmt: skip
    encoded = json.dumps(header, separators=(",", ":")).encode()
    prefix = _PREFIX.pack(len(encoded), zlib.crc32(encoded))
    parts = [MAGIC, prefix, encoded, index.tobytes()]
    write_atomic(path, parts)
    metrics.SNAPSHOT_BYTES.inc(sum(len(part) for part in parts))
    metrics.SNAPSHOT_SECONDS.observe(time.perf_counter() - start)


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
        return collection_from_state(header, blob)
    except DamagedData:
        raise
    except (ValueError, KeyError, TypeError, struct.error, RuntimeError) as e:
        raise _damaged(path, str(e) or type(e).__name__) from None


def read_header(path: Path) -> dict[str, Any]:
    """A snapshot's header alone (its spec, keys, metadata...), without reading the index
    bytes; DamagedData, saying what is wrong, for a file that is not a snapshot, whose header
    fails its checksum, or whose length is not what its header says."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(MAGIC))
            if magic == MAGIC:
                size, crc = _PREFIX.unpack(f.read(_PREFIX.size))
                encoded = f.read(size)
                if len(encoded) != size or zlib.crc32(encoded) != crc:
                    raise _damaged(path, "its header fails its checksum")
                header = json.loads(encoded)
                end = len(MAGIC) + _PREFIX.size + size + int(header["index_bytes"])
                if f.seek(0, 2) != end:
                    raise _damaged(path, f"it holds {f.tell()} bytes; its header says {end}")
            elif magic == MAGIC_V1:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(size))
            else:
                raise _damaged(path, "it does not start like an embedspace snapshot")
    except OSError as e:
        raise _damaged(path, f"it cannot be read ({e.strerror})") from None
    except (ValueError, KeyError, TypeError, struct.error) as e:
        raise _damaged(path, str(e) or type(e).__name__) from None
    if not isinstance(header, dict) or not isinstance(header.get("spec"), dict):
        raise _damaged(path, "its header holds no collection spec")
    return header


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


def collection_from_state(header: Mapping[str, Any], blob: Any) -> Collection:
    """The collection a snapshot's header and index bytes describe, in any format."""
    faiss = faiss_module()
    s = header["spec"]
    params = tuple(sorted(s.get("search_params", {}).items()))
    # A backup of a sharded collection says how many shards and replicas it had.
    layout = int(s.get("shards", 1)), int(s.get("replicas", 1))
    spec = Spec(s["name"], s["encoder"], s["index"], Metric(s["metric"]), int(s["dim"]), params,
                *layout)  # fmt: skip
    index = faiss.deserialize_index(blob)
    keys = header["keys"] if "keys" in header else _keys_by_label(header)
    if not isinstance(keys, list) or not all(k is None or type(k) is str for k in keys):
        raise ValueError("its keys are not a list of ids (or null)")
    if len(set(keys) - {None}) != len(keys) - keys.count(None):
        raise ValueError("its keys hold an id twice")
    if isinstance(index, faiss.IndexIDMap2):
        index, keys = _unwrap(index, keys)
    elif index.ntotal != len(keys):
        raise ValueError(f"its index holds {index.ntotal} vectors for {len(keys)} keys")
    # Snapshots written before metadata was kept sparse hold {} for every id.
    metadata = {key: md for key, md in header["metadata"].items() if md}
    return Collection(spec, index, keys, metadata, int(header.get("seq", 0)))


def _keys_by_label(header: Mapping[str, Any]) -> list[str | None]:
    """The id at each label of a snapshot written before headers held a list of keys: ids
    mapped each id to its label, below next_id."""
    ids, next_id = header["ids"], int(header["next_id"])
    if not isinstance(ids, dict) or not all(
        type(label) is int and 0 <= label < next_id for label in ids.values()
    ):
        raise ValueError(f"its ids are not a map from id to a label below {next_id}")
    keys: list[str | None] = [None] * next_id
    for key, label in ids.items():
        keys[label] = key
    return keys


def _unwrap(wrapped: Any, by_label: list[str | None]) -> tuple[Any, list[str | None]]:
    """The bare index of a snapshot written when collections wrapped their index in an
    IndexIDMap2, its vectors in label order (which was insertion order), and the id at each
    position. Only flat codes ever removed, so only they can need reordering."""
    faiss = faiss_module()
    labels = faiss.vector_to_array(wrapped.id_map)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(by_label)):
        raise ValueError(f"its index holds labels outside 0..{len(by_label) - 1}")
    index = faiss.clone_index(wrapped.index)  # the wrapper owns the inner index
    order = np.argsort(labels, kind="stable")
    if (order != np.arange(len(order))).any():
        if not removable(index):
            raise ValueError("its index holds vectors out of label order")
        index.permute_entries(order)
    return index, [by_label[label] for label in labels[order].tolist()]


def _damaged(path: Path, why: str) -> DamagedData:
    return DamagedData(f"the snapshot {str(path)!r} is damaged: {why}")

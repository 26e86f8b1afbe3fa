"""The data directory: one folder per collection, each holding an atomic snapshot file.

Layout: `<data_dir>/LOCK` (held by the running server) and
`<data_dir>/collections/<name>/snapshot`. A snapshot is written to a temporary file,
fsynced, renamed over the old one and the folder fsynced, so a crash leaves either the
old snapshot or the new one. A write-ahead log can sit beside it in the same folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import struct
import threading
import uuid
from pathlib import Path

import numpy as np

from ..errors import FailedPrecondition
from .collection import Collection

log = logging.getLogger(__name__)

MAGIC = b"EMBEDSPACE-SNAPSHOT-1\n"
SNAPSHOT = "snapshot"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, chunks: list[bytes]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


class CollectionStore:
    """Persists collections under `root`; one server at a time may hold a root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._dir = self.root / "collections"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.root / "LOCK", "a+")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise FailedPrecondition(
                f"data directory {str(self.root)!r} is in use by another embedspace server"
            ) from None
        self._saved: dict[str, int] = {}
        self._lock = threading.Lock()  # one save or drop at a time

    def close(self) -> None:
        self._lock_file.close()

    def load_all(self) -> dict[str, Collection]:
        out: dict[str, Collection] = {}
        for folder in sorted(self._dir.iterdir()):
            if folder.name.startswith("."):
                shutil.rmtree(folder, ignore_errors=True)  # a drop that did not finish
                continue
            path = folder / SNAPSHOT
            if not path.exists():
                log.warning("skipping %s: no snapshot", folder)
                continue
            collection = self._read(path)
            out[collection.spec.name] = collection
            self._saved[collection.spec.name] = collection.version
        return out

    def _read(self, path: Path) -> Collection:
        """Loads one snapshot; an unreadable one stops the server rather than lose data."""
        try:
            data = path.read_bytes()
            if not data.startswith(MAGIC):
                raise ValueError("it does not start like an embedspace snapshot")
            offset = len(MAGIC)
            (size,) = struct.unpack_from("<Q", data, offset)
            offset += 8
            header = json.loads(data[offset : offset + size])
            blob = np.frombuffer(data, np.uint8, offset=offset + size).copy()
            return Collection.from_state(header, blob)
        except (OSError, ValueError, KeyError, TypeError, struct.error, RuntimeError) as e:
            raise FailedPrecondition(
                f"cannot read the snapshot {str(path)!r}: {e}; move it aside to start without "
                "that collection"
            ) from None

    def save(self, collection: Collection, *, force: bool = False) -> bool:
        """Writes the collection's snapshot if it changed since the last save."""
        name = collection.spec.name
        with self._lock:
            if collection.dropped or (not force and self._saved.get(name) == collection.version):
                return False
            header, blob, version = collection.state()
            encoded = json.dumps(header, separators=(",", ":")).encode()
            folder = self._dir / name
            if not folder.exists():
                folder.mkdir()
                _fsync_dir(self._dir)
            write_atomic(
                folder / SNAPSHOT,
                [MAGIC, struct.pack("<Q", len(encoded)), encoded, np.asarray(blob).tobytes()],
            )
            self._saved[name] = version
            return True

    def drop(self, collection: Collection) -> None:
        """Marks the collection dropped (later writes to it fail) and removes its folder."""
        name = collection.spec.name
        with self._lock, collection.lock:
            collection.dropped = True
            self._saved.pop(name, None)
            folder = self._dir / name
            if not folder.exists():
                return
            trash = self._dir / f".dropped-{name}-{uuid.uuid4().hex}"
            os.replace(folder, trash)
            _fsync_dir(self._dir)
        shutil.rmtree(trash, ignore_errors=True)

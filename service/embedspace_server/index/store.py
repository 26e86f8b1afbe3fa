"""The data directory: one folder per collection, each holding an atomic snapshot file.

Layout: `<data_dir>/LOCK` (held by the running server) and, per collection,
`<data_dir>/collections/<name>/snapshot` and its write-ahead log `wal-*` (see wal.py). A
snapshot is written to a temporary file, fsynced, renamed over the old one and the folder
fsynced, so a crash leaves either the old snapshot or the new one; the log holds every
write acknowledged since.
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
from typing import Any

import numpy as np

from ..errors import FailedPrecondition
from .collection import Collection
from .wal import Journal, fsync_dir, replay

log = logging.getLogger(__name__)

MAGIC = b"EMBEDSPACE-SNAPSHOT-1\n"
SNAPSHOT = "snapshot"


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
    fsync_dir(path.parent)


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
        self._journals: dict[str, Journal] = {}
        self._lock = threading.Lock()  # one save, create or drop at a time

    def close(self) -> None:
        with self._lock:
            for journal in self._journals.values():
                journal.close()
            self._journals.clear()
        self._lock_file.close()

    def load_all(self) -> dict[str, Collection]:
        """Every collection: its snapshot, then the writes logged after it."""
        out: dict[str, Collection] = {}
        for folder in sorted(self._dir.iterdir()):
            if folder.name.startswith("."):
                shutil.rmtree(folder, ignore_errors=True)  # a drop that did not finish
                continue
            path = folder / SNAPSHOT
            if not path.exists():
                log.warning("skipping %s: no snapshot", folder)
                continue
            collection = read_snapshot(path)
            self._saved[collection.spec.name] = collection.version
            replayed = 0
            for seq, op, body in replay(folder, collection.seq):
                collection.replay(seq, op, body)
                replayed += 1
            if replayed:
                log.info("%s: replayed %d logged write(s)", collection.spec.name, replayed)
            self._attach(collection)
            out[collection.spec.name] = collection
        return out

    def _attach(self, collection: Collection) -> None:
        journal = Journal(self._dir / collection.spec.name, collection.seq + 1)
        self._journals[collection.spec.name] = journal
        collection.journal = journal

    def create(self, collection: Collection) -> None:
        """Writes a new collection's folder and first snapshot, and starts its log."""
        with self._lock:
            folder = self._dir / collection.spec.name
            folder.mkdir()
            fsync_dir(self._dir)
            self._write(collection, folder / SNAPSHOT)
            self._attach(collection)

    def save(self, collection: Collection) -> bool:
        """Snapshots the collection if it changed since the last save, then deletes the
        log segments the snapshot covers."""
        name = collection.spec.name
        with self._lock:
            journal = self._journals.get(name)
            if collection.dropped or journal is None or self._saved.get(name) == collection.version:
                return False
            with collection.lock:  # the state and the log's new segment in one moment
                header, blob, version = collection.state()
                journal.rotate()
            _write_snapshot(self._dir / name / SNAPSHOT, header, blob)
            journal.drop_through(int(header["seq"]))
            self._saved[name] = version
            return True

    def _write(self, collection: Collection, path: Path) -> None:
        header, blob, version = collection.state()
        _write_snapshot(path, header, blob)
        self._saved[collection.spec.name] = version

    def drop(self, collection: Collection) -> None:
        """Marks the collection dropped (later writes to it fail) and removes its folder."""
        name = collection.spec.name
        with self._lock, collection.lock:
            collection.dropped = True
            self._saved.pop(name, None)
            journal = self._journals.pop(name, None)
            if journal is not None:
                journal.close()
            folder = self._dir / name
            if not folder.exists():
                return
            trash = self._dir / f".dropped-{name}-{uuid.uuid4().hex}"
            os.replace(folder, trash)
            fsync_dir(self._dir)
        shutil.rmtree(trash, ignore_errors=True)

    def backup(self, collection: Collection, path: Path) -> int:
        """Writes a consistent snapshot of the collection to `path`; returns its count."""
        header, blob, _ = collection.state()
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_snapshot(path, header, blob)
        return sum(key is not None for key in header["keys"])


def _write_snapshot(path: Path, header: dict[str, Any], blob: Any) -> None:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    write_atomic(
        path, [MAGIC, struct.pack("<Q", len(encoded)), encoded, np.asarray(blob).tobytes()]
    )


def read_snapshot(path: Path, name: str | None = None) -> Collection:
    """Loads one snapshot (under another name, if given); an unreadable one stops the
    server rather than lose data."""
    try:
        data = path.read_bytes()
        if not data.startswith(MAGIC):
            raise ValueError("it does not start like an embedspace snapshot")
        offset = len(MAGIC)
        (size,) = struct.unpack_from("<Q", data, offset)
        offset += 8
        header = json.loads(data[offset : offset + size])
        blob = np.frombuffer(data, np.uint8, offset=offset + size).copy()
        if name is not None:
            header["spec"]["name"] = name
        return Collection.from_state(header, blob)
    except (OSError, ValueError, KeyError, TypeError, struct.error, RuntimeError) as e:
        raise FailedPrecondition(
            f"cannot read the snapshot {str(path)!r}: {e}; move it aside to start without "
            "that collection"
        ) from None

"""The data directory: one folder per collection, each holding a snapshot and its log.

Layout: `<data_dir>/LOCK` (held by the running server), `<data_dir>/collections/<name>/`
with `snapshot` (see snapshot.py) and the write-ahead log `wal-*` (see wal.py), and
`<data_dir>/tmp/`, the server's own scratch space: a new collection is written there in
full and then renamed into `collections/`, and a dropped one is renamed there before it is
deleted, so a crash never leaves half a collection under its name.

At start the server deletes only what is provably its own: `tmp/` and its tagged temporary
files. Anything else in `collections/` that is not a collection (a folder named `.a-bad`, a
file) is left alone with a warning.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from ..errors import AlreadyExists, DamagedData, FailedPrecondition
from .base import NAME_RE, Backend, Spec, VectorCollection
from .collection import Collection
from .disk import check_room, fsync_dir, remove_temp_files, storage_error
from .factory import build_index
from .snapshot import read_snapshot, write_snapshot
from .wal import Journal, replay

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot"


def _local(collection: VectorCollection) -> Collection:
    if not isinstance(collection, Collection):
        raise TypeError(f"the data directory keeps FAISS collections, not {collection!r}")
    return collection


class CollectionStore(Backend):
    """Persists FAISS collections under `root`; one server at a time may hold a root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._dir = self.root / "collections"
        self._tmp = self.root / "tmp"
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.root / "LOCK", "a+")  # noqa: SIM115 (held until close)
        except OSError as e:
            raise FailedPrecondition(
                f"cannot use the data directory {str(self.root)!r}: {e.strerror}"
                + (f" ({e.filename})" if e.filename else "")
            ) from None
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
            self._journals.clear()
        self._lock_file.close()

    def folder(self, name: str) -> Path:
        return self._dir / name

    def new(self, spec: Spec) -> Collection:
        """An empty FAISS collection: one shard, one replica, in this data directory."""
        self._check_layout(spec)
        return Collection(spec, build_index(spec))

    def read_backup(self, path: Path, name: str) -> Collection:
        collection = read_snapshot(path, name)
        self._check_layout(collection.spec)
        return collection

    def _check_layout(self, spec: Spec) -> None:
        if spec.shards > 1 or spec.replicas > 1:
            raise FailedPrecondition(
                f"collection {spec.name!r} asks for {spec.shards} shard(s) and "
                f"{spec.replicas} replica(s) of each: this server keeps collections in its "
                f"data directory {str(self.root)!r}, one shard and one replica each; sharded "
                "and replicated collections need a server on a Ray cluster (embedspace serve "
                "--ray ADDRESS, or ray_address in the settings)"
            )

    def load_all(
        self, *, quarantine: bool = False
    ) -> tuple[dict[str, VectorCollection], dict[str, str]]:
        """Every collection (its snapshot, then the writes logged after it), and, with
        `quarantine`, the damaged ones set aside with the reason (else the first damaged
        one raises DamagedData). Their files are never changed."""
        if self._tmp.exists():
            shutil.rmtree(self._tmp)  # creates and drops that did not finish
        out: dict[str, VectorCollection] = {}
        damaged: dict[str, str] = {}
        for folder in sorted(self._dir.iterdir()):
            if not folder.is_dir() or not NAME_RE.match(folder.name):
                log.warning("ignoring %s: not a collection folder (left as it is)", folder)
                continue
            try:
                collection = self._load(folder)
            except DamagedData as e:
                reason = (
                    f"{e}; its files are left as they are in {str(folder)!r}: restore it from "
                    "a backup, or move the folder out of the data directory"
                )
                if not quarantine:
                    raise DamagedData(
                        f"collection {folder.name!r} cannot be loaded: {reason} (or set "
                        "quarantine_damaged to start without it)"
                    ) from None
                log.error("collection %r is quarantined: %s", folder.name, reason)
                damaged[folder.name] = reason
                continue
            if collection is not None:
                out[folder.name] = collection
        return out, damaged

    def _load(self, folder: Path) -> Collection | None:
        removed = remove_temp_files(folder)
        if removed:
            log.info("%s: removed %d temporary file(s) of a snapshot a crash interrupted",
                     folder, removed)  # fmt: skip
        path = folder / SNAPSHOT
        if not path.exists():
            if any(folder.iterdir()):
                raise DamagedData("its folder holds no snapshot but other files")
            # An empty folder: a create that an older version did not finish.
            folder.rmdir()
            log.info("removed %s: an empty collection folder (a create that did not finish)",
                     folder)  # fmt: skip
            return None
        collection = read_snapshot(path)
        if collection.spec.name != folder.name:
            raise DamagedData(
                f"its folder is named {folder.name!r} but holds the snapshot of collection "
                f"{collection.spec.name!r} (a copied or renamed folder?)"
            )
        saved = collection.version  # what the snapshot holds; replayed writes are unsaved
        replayed = 0
        for seq, op, body in replay(folder, collection.seq):
            collection.replay(seq, op, body)
            replayed += 1
        if replayed:
            log.info("%s: replayed %d logged write(s)", folder.name, replayed)
        self._saved[folder.name] = saved
        self._attach(collection)
        return collection

    def _attach(self, collection: Collection) -> None:
        name = collection.spec.name
        journal = Journal(self._dir / name, collection.seq + 1, name)
        self._journals[name] = journal
        collection.journal = journal

    def create(
        self, collection: VectorCollection, state: tuple[dict[str, Any], Any] | None = None
    ) -> None:
        """Writes a new collection's folder and first snapshot, and starts its log. The
        folder is built under tmp/ and renamed into place: all of it or nothing. `state`:
        the collection's header and index bytes when the caller has them already (a copy
        received from elsewhere), so that the index is not serialized again."""
        collection = _local(collection)
        name = collection.spec.name
        with self._lock:
            folder = self._dir / name
            if folder.exists():
                raise AlreadyExists(
                    f"the data directory already holds {str(folder)!r}, which the server did "
                    "not load as a collection; move it away to use that name"
                )
            staging = self._tmp / f"create-{name}-{uuid.uuid4().hex}"
            try:
                staging.mkdir(parents=True)
                if state is None:
                    header, blob, version = collection.state()
                else:
                    (header, blob), version = state, collection.version
                write_snapshot(staging / SNAPSHOT, header, blob)
                os.rename(staging, folder)
                fsync_dir(self._dir)
            except OSError as e:
                shutil.rmtree(staging, ignore_errors=True)
                raise storage_error(e, f"create collection {name!r}") from None
            self._saved[name] = version
            self._attach(collection)

    def save(self, collection: VectorCollection) -> bool:
        """Rebuilds an index heavy with tombstones, then snapshots the collection if it
        changed since the last save and deletes the log segments the snapshot covers.
        Raises the domain error of a failed write; the log still holds every write then."""
        collection = _local(collection)
        if collection.needs_rebuild():
            collection.rebuild()
        name = collection.spec.name
        with self._lock:
            journal = self._journals.get(name)
            if collection.dropped or journal is None or self._saved.get(name) == collection.version:
                return False
            try:
                with collection.lock:  # the state and the log's new segment in one moment
                    header, blob, version = collection.state()
                    journal.rotate()
                check_room(self._dir / name, blob.nbytes + 64 * len(header["keys"]),
                           f"snapshot collection {name!r}")  # fmt: skip
                write_snapshot(self._dir / name / SNAPSHOT, header, blob)
                journal.drop_through(int(header["seq"]))
            except OSError as e:
                raise storage_error(e, f"snapshot collection {name!r}") from None
            self._saved[name] = version
            return True

    def drop(self, collection: VectorCollection) -> None:
        """Marks the collection dropped (later writes to it fail) and removes its folder:
        renamed into tmp/ first, so a crash cannot leave half of it in collections/."""
        collection = _local(collection)
        name = collection.spec.name
        with self._lock, collection.lock:
            trash = self._tmp / f"drop-{name}-{uuid.uuid4().hex}"
            try:
                self._tmp.mkdir(exist_ok=True)
                os.rename(self._dir / name, trash)
                fsync_dir(self._dir)
            except FileNotFoundError:
                pass  # its folder is gone already
            except OSError as e:
                raise storage_error(e, f"drop collection {name!r}") from None
            collection.dropped = True
            self._saved.pop(name, None)
            self._journals.pop(name, None)
        shutil.rmtree(trash, ignore_errors=True)

    def backup(self, collection: VectorCollection, path: Path) -> int:
        """Writes a consistent snapshot of the collection to `path`; returns its count."""
        header, blob, _ = _local(collection).state()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_snapshot(path, header, blob)
        except OSError as e:
            raise storage_error(e, f"write the backup {str(path)!r}") from None
        return sum(key is not None for key in header["keys"])

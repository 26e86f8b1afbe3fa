"""The catalogue: which collections exist, their life cycle (create, drop, backup, restore,
periodic saves) and those set aside as damaged. It keeps collections through a Backend and
touches them only through the collection interface (index/base.py)."""

from __future__ import annotations

import datetime
import logging
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from .config import Settings
from .encoders import EncoderRegistry
from .errors import (
    AlreadyExists,
    CollectionNotFound,
    EmbedspaceServerError,
    FailedPrecondition,
    InvalidInput,
    NotFound,
    blaming,
)
from .index.backups import describe, list_backups
from .index.base import Backend, Spec, VectorCollection, check_name
from .index.disk import remove_temp_files
from .types import BackupInfo, CollectionInfo, Metric

log = logging.getLogger(__name__)

DEFAULT_INDEX = "Flat"
# The most shards and replicas a collection may ask for.
MAX_SHARDS = 64
MAX_REPLICAS = 8
BACKUP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class Catalogue:
    def __init__(self, registry: EncoderRegistry, backend: Backend, settings: Settings) -> None:
        self.registry = registry
        self.backend = backend
        self.settings = settings
        loaded, damaged = backend.load_all(quarantine=settings.quarantine_damaged)
        self._collections: dict[str, VectorCollection] = loaded
        # Collections whose files are damaged, set aside at start with the reason.
        self.quarantined: dict[str, str] = damaged
        self.lock = threading.RLock()  # guards the set of collections (taken again by get)
        # Called with a collection's name once it is dropped (its search batcher stops).
        self.on_drop: Callable[[str], None] = lambda name: None
        backups = self._backup_folder()
        if backups.is_dir():
            remove_temp_files(backups)  # of backups a crash interrupted

    def create(
        self,
        name: str,
        encoder: str,
        index: str = DEFAULT_INDEX,
        metric: Metric | None = None,
        search_params: Mapping[str, float] | None = None,
        *,
        shards: int = 1,
        replicas: int = 1,
    ) -> CollectionInfo:
        """A new, empty collection; `shards` and `replicas` above 1 need a backend that
        spreads collections over processes (the local one answers FailedPrecondition)."""
        info = self.registry.get(encoder).info
        with blaming("collection"):
            self._check_new_name(name, encoder)
        _check_layout(name, shards, replicas)
        params = tuple(sorted((search_params or {}).items()))
        spec = Spec(name, encoder, index or DEFAULT_INDEX, metric or info.metric, info.dim,
                    params, shards, replicas)  # fmt: skip
        with self.lock:
            self._check_free(name)
            with blaming("index"):  # a factory string FAISS cannot build
                collection = self.backend.new(spec)
            self.backend.create(collection)
            self._collections[name] = collection
        return collection.info()

    def _check_new_name(self, name: str, encoder: str) -> None:
        """A collection may share its name only with the encoder it uses."""
        check_name(name)
        if name in self.registry and name != encoder:
            raise InvalidInput(
                f"collection name {name!r} is the name of an encoder; a collection may share "
                f"its name only with the encoder it uses (here {encoder!r})"
            )

    def _check_free(self, name: str) -> None:
        """Call holding the lock."""
        self._refresh()
        if name in self._collections:
            raise AlreadyExists(f"collection {name!r} already exists")
        if name in self.quarantined:
            raise AlreadyExists(
                f"collection {name!r} exists and is quarantined: {self.quarantined[name]}"
            )

    def _refresh(self) -> None:
        """Takes in what other servers sharing the backend created and dropped; call
        holding the lock."""
        current = self.backend.refresh(self._collections)
        if current is not None:
            self._collections = current

    def __contains__(self, name: str) -> bool:
        if name not in self._collections:
            with self.lock:
                self._refresh()
        return name in self._collections

    def current(self) -> dict[str, VectorCollection]:
        """The collections as this server last saw them, without asking the backend."""
        return dict(self._collections)

    def holds(self, name: str) -> bool:
        """Whether this server last saw a collection of that name (asks no backend)."""
        return name in self._collections

    def names(self) -> list[str]:
        with self.lock:
            self._refresh()
            return sorted(self._collections)

    def infos(self) -> list[CollectionInfo]:
        with self.lock:
            self._refresh()
            found = list(self._collections.values())
            damaged = sorted(self.quarantined.items())
        return [c.info() for c in found] + [_quarantined_info(n, why) for n, why in damaged]

    def get(self, name: str) -> VectorCollection:
        try:
            return self._collections[name]
        except KeyError:
            with self.lock:
                self._refresh()
            if name in self._collections:
                return self._collections[name]
            if name in self.quarantined:
                raise FailedPrecondition(
                    f"collection {name!r} is quarantined: {self.quarantined[name]}"
                ) from None
            raise CollectionNotFound(
                f"no collection named {name!r}; existing: {sorted(self._collections)}"
            ) from None

    def is_current(self, collection: VectorCollection) -> bool:
        """Whether `collection` is still the one under its name (not dropped)."""
        return self._collections.get(collection.spec.name) is collection

    def describe(self, name: str) -> CollectionInfo:
        if name in self.quarantined:
            return _quarantined_info(name, self.quarantined[name])
        return self.get(name).info()

    def drop(self, name: str) -> None:
        with self.lock:
            self.backend.drop(self.get(name))
            del self._collections[name]
        self.on_drop(name)

    def backup(self, collection: str, name: str = "") -> BackupInfo:
        """Writes a consistent snapshot of a collection into the backup folder while the
        server keeps serving; `name` defaults to "<collection>-<UTC time>"."""
        coll = self.get(collection)
        if not name:
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            name = f"{collection}-{stamp}"
        path = self._backup_path(name)
        self.backend.backup(coll, path)
        return describe(path)

    def backups(self) -> list[BackupInfo]:
        """Every backup in the backup folder, oldest first; files that are not readable
        backups are left out (with a warning in the log)."""
        return list_backups(self._backup_folder())

    def restore(self, backup: str, collection: str) -> CollectionInfo:
        """Creates `collection` from a backup."""
        path = self._backup_path(backup)
        if not path.is_file():
            raise NotFound(f"no backup named {backup!r} in {str(path.parent)!r}")
        with blaming("collection"):
            check_name(collection)
        restored = self.backend.read_backup(path, collection)
        with blaming("collection"):
            self._check_new_name(collection, restored.spec.encoder)
        with self.lock:
            self._check_free(collection)
            self.backend.create(restored)
            self._collections[collection] = restored
        return restored.info()

    def _backup_path(self, name: str) -> Path:
        if not BACKUP_NAME.match(name) or name in (".", ".."):
            raise InvalidInput(
                f"backup name {name!r} is invalid: use 1-128 characters of [A-Za-z0-9_.-]",
                field="backup",
            )
        return self._backup_folder() / name

    def _backup_folder(self) -> Path:
        return Path(self.settings.backup_dir or Path(self.settings.data_dir) / "backups")

    def save(self) -> int:
        """Saves every collection that changed since its last save; returns how many were.
        One that cannot be saved (a full disk) is logged and tried again next time."""
        with self.lock:
            collections = list(self._collections.values())
        saved = 0
        for c in collections:
            try:
                saved += self.backend.save(c)
            except EmbedspaceServerError as e:  # the log still holds every write
                log.warning("collection %r not snapshotted: %s; its log holds every "
                            "acknowledged write", c.spec.name, e)  # fmt: skip
        return saved


def _check_layout(name: str, shards: int, replicas: int) -> None:
    if not 1 <= shards <= MAX_SHARDS:
        raise InvalidInput(
            f"collection {name!r} asks for {shards} shards; a collection has 1 to "
            f"{MAX_SHARDS} shards (0 in a request means 1)",
            field="shards",
        )
    if not 1 <= replicas <= MAX_REPLICAS:
        raise InvalidInput(
            f"collection {name!r} asks for {replicas} replicas of each shard; a collection "
            f"keeps 1 to {MAX_REPLICAS} (0 in a request means 1)",
            field="replicas",
        )


def _quarantined_info(name: str, reason: str) -> CollectionInfo:
    return CollectionInfo(name, "", "", None, 0, 0, {}, quarantined=reason)

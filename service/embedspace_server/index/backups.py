"""The backup folder. A backup is a snapshot file (snapshot.py) named as the backup; a
backup of a sharded collection is one file per shard, `NAME` holding shard 0 and
`NAME.shardI` shard I, each header saying how many shards there were and which it holds.
What a backup holds is read from its files' headers alone, never from their index bytes."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DamagedData
from ..types import BackupInfo
from .disk import is_temp
from .snapshot import read_header

log = logging.getLogger(__name__)


def shard_path(path: Path, i: int) -> Path:
    """The file of shard `i` of the backup at `path`: shard 0 is the backup's own file, so
    that a backup is found by its name."""
    return path if i == 0 else path.with_name(f"{path.name}.shard{i}")


def describe(path: Path) -> BackupInfo:
    """The backup at `path` (with its other shards' files); DamagedData for a file that is
    not a readable backup, or one whose shards' files are missing or damaged."""
    return _describe(path, {})


def list_backups(folder: Path) -> list[BackupInfo]:
    """Every backup in `folder`, oldest first. A file that is not a readable backup (or a
    shard's file whose backup is gone) is left out with a warning in the log."""
    if not folder.is_dir():
        return []
    headers: dict[Path, dict[str, Any] | DamagedData] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not is_temp(path):
            try:
                headers[path] = read_header(path)
            except DamagedData as e:
                headers[path] = e
    found: list[BackupInfo] = []
    parts: set[Path] = set()  # the files of shards 1, 2... of some backup
    claimed: set[Path] = set()  # those of the backups found
    for path, header in headers.items():
        if isinstance(header, dict) and header.get("shard", 0) != 0:
            parts.add(path)  # described with its shard 0
            continue
        try:
            info = _describe(path, headers)
        except DamagedData as e:
            log.warning("backup folder %s: skipping %s: %s", folder, path.name, e)
            continue
        found.append(info)
        claimed.update(shard_path(path, i) for i in range(1, info.shards))
    for path in sorted(parts - claimed):
        log.warning("backup folder %s: skipping %s: a shard's file whose backup (shard 0) is "
                    "missing or damaged", folder, path.name)  # fmt: skip
    return sorted(found, key=lambda info: (info.created, info.backup))


def _describe(path: Path, known: Mapping[Path, dict[str, Any] | DamagedData]) -> BackupInfo:
    """The backup whose shard 0 is at `path`, with the headers read already in `known`."""

    def header_of(p: Path) -> dict[str, Any]:
        header = known[p] if p in known else read_header(p)
        if isinstance(header, DamagedData):
            raise header
        return header

    first = header_of(path)
    spec = first["spec"]
    try:
        shards = int(spec.get("shards", 1))
        files = [shard_path(path, i) for i in range(shards)]
        headers = [first] + [header_of(p) for p in files[1:]]
        count = sum(_count(h) for h in headers)
        size = sum(p.stat().st_size for p in files)
        created = _created(first, path)
        return BackupInfo(path.name, path, count, str(spec["name"]), str(spec["encoder"]),
                          size, created, shards)  # fmt: skip
    except OSError as e:
        raise DamagedData(f"the backup {str(path)!r} cannot be read: {e.strerror} "
                          f"({e.filename})") from None  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        raise DamagedData(f"the backup {str(path)!r} is damaged: its header lacks or "
                          f"garbles {e}") from None  # fmt: skip


def _count(header: Mapping[str, Any]) -> int:
    if "keys" in header:
        return sum(key is not None for key in header["keys"])
    return len(header["ids"])  # snapshots written before headers held a list of keys


def _created(header: Mapping[str, Any], path: Path) -> datetime.datetime:
    """When the backup was written: its header says so (since snapshots recorded it), else
    its file's modification time."""
    if "created" in header:
        created = datetime.datetime.fromisoformat(header["created"])
        return created.astimezone(datetime.UTC)
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)


__all__ = ["describe", "list_backups", "shard_path"]

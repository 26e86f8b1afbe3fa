"""Durable file operations, and the one translation of the OS's file errors into domain
errors: a full disk or too many open files is RESOURCE_EXHAUSTED with a message that names
the disk, never an internal error.

Temporary files and folders that the server makes carry a random 32-hex-digit tag, so that
leftovers of a crash can be told apart from anything an operator put there.
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

from ..errors import EmbedspaceServerError, ResourceExhausted, Unavailable

# errno values that mean the machine ran out of something, not that the data is bad.
_EXHAUSTED = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EMFILE: "the server has too many open files",
    errno.ENFILE: "the system has too many open files",
    errno.ENOMEM: "the system is out of memory",
}
_TEMP = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


def storage_error(error: OSError, doing: str, path: Path | None = None) -> EmbedspaceServerError:
    """The domain error for an OSError met while `doing` something to `path`: RESOURCE_EXHAUSTED
    for a full disk or exhausted descriptors, UNAVAILABLE for any other failure of the disk."""
    where = error.filename or path
    detail = f"{str(where)!r}: {error.strerror}" if where else str(error.strerror or error)
    why = _EXHAUSTED.get(error.errno or 0)
    if why is not None:
        return ResourceExhausted(f"cannot {doing}: {why} ({detail})")
    return Unavailable(f"cannot {doing}: the disk failed ({detail})")


# Space a snapshot leaves free on its disk, beyond its own size, for the log to go on.
SNAPSHOT_HEADROOM = 4 * 2**20


def check_room(folder: Path, size: int, doing: str) -> None:
    """Raises ResourceExhausted unless `folder`'s disk has `size` bytes free and headroom:
    a snapshot that cannot fit must not fill the disk for the log's appends meanwhile."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    if free < size + SNAPSHOT_HEADROOM:
        raise ResourceExhausted(
            f"cannot {doing}: the disk is nearly full ({str(folder)!r}: {free / 2**20:.1f} MiB "
            f"free, {(size + SNAPSHOT_HEADROOM) / 2**20:.1f} MiB needed)"
        )


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """A temporary sibling of `path`, recognisable as the server's own (`is_temp`)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def is_temp(path: Path) -> bool:
    return bool(_TEMP.match(path.name))


def write_atomic(path: Path, chunks: Iterable[bytes]) -> None:
    """Writes `path` so that a crash leaves the old file or the new one, never a mix: a
    temporary file, fsynced, renamed over `path`, and the folder fsynced. On failure the
    temporary file is removed and `path` is untouched."""
    tmp = temp_name(path)
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


def remove_temp_files(folder: Path) -> int:
    """Deletes the server's temporary files left in `folder` by a crash; returns how many."""
    removed = 0
    for path in folder.iterdir():
        if path.is_file() and is_temp(path):
            path.unlink()
            removed += 1
    return removed

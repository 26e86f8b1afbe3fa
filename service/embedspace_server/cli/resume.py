"""The state an interrupted `embedspace ingest` resumes from: `FILE.ingest-state.json`
beside the input, naming the collection, the file's size and modification time, and how
many of its records the server has acknowledged. Written atomically, at most once a second
while the run goes, and removed when a run completes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import CannotResume
from .output import warn

SUFFIX = ".ingest-state.json"
VERSION = 1
_EVERY = 1.0  # seconds between two writes while a run goes


def state_path(source: Path) -> Path:
    return source.with_name(source.name + SUFFIX)


class IngestState:
    """How far a run over one file into one collection has got."""

    def __init__(self, source: Path, collection: str, records: int = 0) -> None:
        self.source = source
        self.path = state_path(source)
        self.collection = collection
        stat = source.stat()
        self.size, self.mtime_ns = stat.st_size, stat.st_mtime_ns
        self.records = records
        self.saved = records
        self.last_write = 0.0
        self.writable = True

    @classmethod
    def resume(cls, source: Path, collection: str) -> IngestState:
        """The state a previous run left for this file and collection, or CannotResume."""
        path = state_path(source)
        try:
            saved: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise CannotResume(
                f"no interrupted ingest of {source} to resume ({path.name} is absent); "
                "run without --resume"
            ) from None
        except ValueError as e:
            raise CannotResume(f"{path} is damaged ({e}); run without --resume") from None
        state = cls(source, collection, int(saved.get("records", 0)))
        if saved.get("version") != VERSION:
            raise CannotResume(f"{path} has an unknown version; run without --resume")
        if saved.get("collection") != collection:
            raise CannotResume(
                f"{path.name} is for collection {saved.get('collection')!r}, not "
                f"{collection!r}; run without --resume"
            )
        if (saved.get("size"), saved.get("mtime_ns")) != (state.size, state.mtime_ns):
            raise CannotResume(
                f"{source} changed since the interrupted run (size or modification time "
                "differ); run without --resume to send the whole file again"
            )
        return state

    def acknowledged(self, records: int) -> None:
        """The first `records` records are stored; written now if a second has passed."""
        self.records = max(self.records, records)
        if time.monotonic() - self.last_write >= _EVERY:
            self.save()

    def save(self) -> None:
        if self.records == self.saved or not self.writable:
            return
        state = {
            "version": VERSION,
            "file": self.source.name,
            "collection": self.collection,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "records": self.records,
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            temporary.write_text(json.dumps(state) + "\n")
            os.replace(temporary, self.path)
        except OSError as e:
            self.writable = False
            warn(f"cannot keep the ingest state in {self.path} ({e}); --resume will not work")
            return
        self.saved, self.last_write = self.records, time.monotonic()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

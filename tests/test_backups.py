"""The catalogue's backups: a backup says what it holds; the backup folder lists every backup
oldest first from its files' headers, a sharded one once (its shards' files summed), and a
file that is not a readable backup is left out with a warning, never failing the list."""

from __future__ import annotations

import datetime
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from embedspace_server.catalogue import Catalogue
from embedspace_server.config import Settings
from embedspace_server.encoders import EncoderRegistry
from embedspace_server.encoders.vector import VectorEncoder
from embedspace_server.index.backups import list_backups
from embedspace_server.index.base import Backend
from embedspace_server.index.store import CollectionStore
from embedspace_server.types import Metric

from .sharded import ShardedBackend

DATA = Path(__file__).parent / "data"


def catalogue(backend: Backend, data_dir: Path) -> Catalogue:
    registry = EncoderRegistry([VectorEncoder("v4", 4, Metric.L2), VectorEncoder("c8", 8)])
    return Catalogue(registry, backend, Settings(data_dir=data_dir))


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Catalogue]:
    store = CollectionStore(tmp_path / "data")
    try:
        yield catalogue(store, tmp_path / "data")
    finally:
        store.close()


def fill(cat: Catalogue, name: str, n: int) -> None:
    dim = cat.get(name).spec.dim
    vectors = np.random.default_rng(n).normal(size=(n, dim)).astype(np.float32)
    cat.get(name).upsert([f"{name}{i}" for i in range(n)], vectors, [{}] * n)


def test_backups_are_listed_oldest_first_with_what_they_hold(
    local: Catalogue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "data" / "backups"
    assert local.backups() == []  # no folder yet
    local.create("one", "v4")
    local.create("two", "c8")
    fill(local, "one", 5)
    fill(local, "two", 3)
    before = datetime.datetime.now(datetime.UTC)
    first = local.backup("one", "first")
    later = local.backup("two", "a-later")  # sorts first by name, not by age
    named = local.backup("two")
    after = datetime.datetime.now(datetime.UTC)
    assert (first.backup, first.path, first.count) == ("first", folder / "first", 5)
    assert (first.collection, first.encoder, first.shards) == ("one", "v4", 1)
    assert first.bytes == (folder / "first").stat().st_size > 0
    assert before <= first.created <= later.created <= after
    assert first.created.tzinfo == datetime.UTC
    assert (later.collection, later.encoder, later.count) == ("two", "c8", 3)
    assert named.backup.startswith("two-") and named.path == folder / named.backup
    # Files that are not backups: junk, an empty file, a torn copy, a snapshot of the format
    # before checksums (listed: its time is its file's), and a temporary file a backup
    # being written leaves (skipped without a word).
    (folder / "notes.txt").write_text("not a backup")
    (folder / "empty").write_bytes(b"")
    (folder / "torn").write_bytes((folder / "first").read_bytes()[:-10])
    shutil.copy(DATA / "format1" / "collections" / "flat" / "snapshot", folder / "old")
    os.utime(folder / "old", (1e9, 1e9))
    (folder / f".first.{'0' * 32}.tmp").write_bytes(b"half")
    with caplog.at_level(logging.WARNING):
        listed = local.backups()
    assert [b.backup for b in listed] == ["old", "first", "a-later", named.backup]
    assert listed[1:] == [first, later, named]
    old = listed[0]
    assert (old.collection, old.encoder, old.count, old.shards) == ("flat", "v4", 5, 1)
    assert old.created == datetime.datetime.fromtimestamp(1e9, datetime.UTC)
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for name in ("notes.txt", "empty", "torn"):
        assert f"skipping {name}:" in warned
    assert ".tmp" not in warned
    # Restore takes a backup by its name.
    assert local.restore(backup="first", collection="copy").count == 5


def test_a_sharded_backup_is_listed_once_with_every_shards_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cat = catalogue(ShardedBackend(), tmp_path / "data")
    folder = tmp_path / "data" / "backups"
    cat.create("s", "v4")
    fill(cat, "s", 40)
    info = cat.backup("s", "sb")
    files = [folder / "sb", folder / "sb.shard1"]
    assert (info.backup, info.count, info.shards) == ("sb", 40, 2)
    assert info.bytes == sum(f.stat().st_size for f in files)
    assert cat.backups() == [info]
    assert cat.restore("sb", "s2").count == 40
    # A shard's file without its backup, and a backup missing a shard's file: left out.
    files[1].rename(folder / "elsewhere")
    with caplog.at_level(logging.WARNING):
        assert cat.backups() == []
    assert "skipping sb:" in caplog.text and "sb.shard1" in caplog.text
    (folder / "elsewhere").rename(files[1])
    files[0].unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert list_backups(folder) == []
    assert "skipping sb.shard1:" in caplog.text

"""FAISS collections: vectors under string ids, with metadata, persisted in a data directory."""

from __future__ import annotations

from .collection import Collection
from .store import CollectionStore

__all__ = ["Collection", "CollectionStore"]

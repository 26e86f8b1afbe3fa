"""Settings that hold per thread reach the threads that do the work: FAISS's threads on the
batch thread and the workers that search, torch's on the thread of a forward pass."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
import torch
from embedspace import Client
from embedspace_server.index.collection import Collection


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch, minilm: Any) -> dict[str, set[tuple[str, int]]]:
    """What each FAISS search and each forward pass saw: (thread name, threads setting)."""
    out: dict[str, set[tuple[str, int]]] = {"faiss": set(), "torch": set()}
    search, encode = Collection.search, minilm._encode

    def recording_search(self: Collection, *args: Any, **kwargs: Any) -> Any:
        out["faiss"].add((threading.current_thread().name, faiss.omp_get_max_threads()))
        return search(self, *args, **kwargs)

    def recording_encode(items: Any) -> Any:
        out["torch"].add((threading.current_thread().name, torch.get_num_threads()))
        return encode(items)

    monkeypatch.setattr(Collection, "search", recording_search)
    monkeypatch.setattr(minilm, "_encode", recording_encode)
    before = torch.get_num_threads()
    yield out
    torch.set_num_threads(before)  # process-wide: leave it as the other tests found it


@pytest.mark.parametrize("search_batch", [64, 1])
def test_thread_settings_reach_the_threads_that_search_and_embed(
    start_server: Any, tmp_path: Path, seen: dict[str, set[tuple[str, int]]], search_batch: int
) -> None:
    assert faiss.omp_get_max_threads() > 1 and torch.get_num_threads() > 1  # defaults, 2 cores
    settings = {"faiss_threads": 1, "encoder_threads": 1, "search_batch": search_batch}
    with start_server(tmp_path / "data", **settings) as server, Client(server.target) as es:
        es.create_collection("c", "minilm")
        es.upsert("c", ["a", "b"], items=["a red apple", "a blue car"])
        es.search("c", np.ones(384, np.float32), k=1)  # by vector
        es.search("c", "fruit", k=1)  # embedded first
    threads = {name for name, _ in seen["faiss"]}
    assert threads and threads.isdisjoint({threading.main_thread().name})
    if search_batch > 1:
        assert threads == {"batch-search-c"}
    assert {n for _, n in seen["faiss"]} == {1}, seen
    assert seen["torch"] and {n for _, n in seen["torch"]} == {1}, seen

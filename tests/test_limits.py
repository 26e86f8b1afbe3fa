"""Limits: too much pending work answers RESOURCE_EXHAUSTED at once; a call whose deadline
passes while it waits never runs; texts and messages have a size limit."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import Client, DeadlineExceeded, InvalidArgument, ResourceExhausted
from embedspace_server.config import Settings

from .conftest import RunningServer, wait_until
from .test_lifecycle import GatedEncoder


@pytest.fixture
def gated_server(tmp_path: Path) -> Any:
    gated = GatedEncoder()
    running = RunningServer(
        Settings(port=0, data_dir=tmp_path / "d", workers=1, max_pending=2), [gated]
    )
    yield running, gated
    gated.gate.set()
    running.stop()


def test_overload_is_resource_exhausted_at_once(gated_server: Any) -> None:
    running, gated = gated_server
    calls = running.server.servicer.calls
    results: list[Any] = []

    def call() -> None:
        with Client(running.target, timeout=30) as es:
            try:
                results.append(es.embed("gated", [np.ones(4, np.float32)]).shape)
            except Exception as e:
                results.append(e)

    first = threading.Thread(target=call)
    first.start()
    assert gated.entered.wait(10)  # the only worker is busy
    second = threading.Thread(target=call)
    second.start()
    wait_until(lambda: calls.pending == 2)  # one running, one queued: the limit
    with Client(running.target) as es, pytest.raises(ResourceExhausted, match="busy"):
        es.embed("gated", [np.ones(4, np.float32)])
    gated.gate.set()
    first.join(10)
    second.join(10)
    assert results == [(1, 4), (1, 4)]
    assert calls.pending == 0


def test_a_call_past_its_deadline_never_runs(gated_server: Any) -> None:
    running, gated = gated_server
    calls = []
    original = gated._encode

    def counting(items: Any) -> Any:
        calls.append(len(items))
        return original(items)

    gated._encode = counting  # type: ignore[method-assign]
    holder = threading.Thread(
        target=lambda: Client(running.target).embed("gated", [np.ones(4, np.float32)])
    )
    holder.start()
    assert gated.entered.wait(10)
    with Client(running.target) as es, pytest.raises(DeadlineExceeded):
        es.embed("gated", [np.ones(4, np.float32)] * 3, timeout=0.3)
    gated.gate.set()
    holder.join(10)
    wait_until(lambda: running.server.servicer.calls.pending == 0)
    assert calls == [1]  # the expired call's three items were never embedded


def test_texts_and_messages_have_limits(start_server: Any) -> None:
    with (
        start_server(max_text_chars=100, max_message_bytes=64 * 1024) as server,
        Client(server.target) as es,
    ):
        with pytest.raises(InvalidArgument, match=r"at most 100 \(max_text_chars\)"):
            es.embed("minilm", ["x" * 101])
        assert es.embed("minilm", ["x" * 100]).shape == (1, 384)
        with pytest.raises(ResourceExhausted):
            es.embed("vec8", [np.ones(8, np.float32)] * 5000)  # ~200 kB

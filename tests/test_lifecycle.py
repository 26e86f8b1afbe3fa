"""Health follows the lifecycle: NOT_SERVING while encoders load, SERVING after, NOT_SERVING
while draining; calls in flight finish within the grace period."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from embedspace import Client, Unavailable
from embedspace_server import server as server_module
from embedspace_server.config import Settings
from embedspace_server.encoders.vector import VectorEncoder
from embedspace_server.server import EmbedspaceServer
from embedspace_server.types import FloatArray, Item
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import wait_until

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GatedEncoder(VectorEncoder):
    """A vector encoder whose forward pass waits for a gate: a call held in flight."""

    def __init__(self) -> None:
        super().__init__("gated", 4)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def _encode(self, items: Sequence[Item]) -> FloatArray:
        self.entered.set()
        assert self.gate.wait(30)
        return super()._encode(items)


def health_of(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def test_not_serving_until_encoders_are_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = threading.Event()

    def slow_load(settings: Settings) -> list[Any]:
        assert loaded.wait(30)
        return [VectorEncoder("vec4", 4)]

    monkeypatch.setattr(server_module, "load_encoders", slow_load)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = EmbedspaceServer(Settings(port=0, data_dir=tmp_path / "d"))
    starting = asyncio.run_coroutine_threadsafe(server.start(), loop)
    try:
        wait_until(lambda: server.port != 0)
        target = f"127.0.0.1:{server.port}"
        assert health_of(target) == NOT_SERVING
        assert health_of(target, "embedspace.v1.Embedspace") == NOT_SERVING
        with Client(target, retries=0) as es, pytest.raises(Unavailable, match="starting"):
            es.encoders()
        loaded.set()
        starting.result(30)
        assert health_of(target) == SERVING
        assert health_of(target, "embedspace.v1.Embedspace") == SERVING
    finally:
        loaded.set()
        asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_draining_reports_not_serving_and_finishes_calls_in_flight(tmp_path: Path) -> None:
    from .conftest import RunningServer

    gated = GatedEncoder()
    running = RunningServer(Settings(port=0, data_dir=tmp_path / "d"), [gated])
    watched: list[int] = []
    channel = grpc.insecure_channel(running.target)
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())

    def follow() -> None:
        try:
            for reply in watch:
                watched.append(reply.status)
        except grpc.RpcError:
            pass

    follower = threading.Thread(target=follow)
    follower.start()
    result: dict[str, Any] = {}

    def slow_call() -> None:
        with Client(running.target) as es:
            result["vectors"] = es.embed("gated", [np.ones(4, np.float32)])

    caller = threading.Thread(target=slow_call)
    caller.start()
    assert gated.entered.wait(10)
    stopping = asyncio.run_coroutine_threadsafe(running.server.stop(10), running.loop)
    wait_until(lambda: NOT_SERVING in watched[1:])
    gated.gate.set()  # the call in flight may now finish, within the grace period
    stopping.result(30)
    caller.join(10)
    follower.join(10)
    channel.close()
    running.loop.call_soon_threadsafe(running.loop.stop)
    running.thread.join(10)
    running.loop.close()
    assert np.array_equal(result["vectors"], np.ones((1, 4), np.float32))
    assert watched[0] == SERVING and watched[-1] == NOT_SERVING

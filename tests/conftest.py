"""Fixtures: a real server on 127.0.0.1 and a free port, with real encoders.

The all-MiniLM-L6-v2 encoder is loaded once per session and shared by the servers the
tests start; `vec8` (precomputed 8-d vectors, cosine) and `vec8dot`/`vec8l2` are real
encoders of kind "vector", small enough to make exact checks quick.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from embedspace import Client
from embedspace_server.cli import main
from embedspace_server.config import Settings
from embedspace_server.encoders import Encoder
from embedspace_server.encoders.vector import VectorEncoder
from embedspace_server.index.base import Backend, Spec
from embedspace_server.server import EmbedspaceServer
from embedspace_server.types import Metric

REPO = Path(__file__).resolve().parent.parent


def wait_until(condition: Any, timeout: float = 30) -> None:
    """Polls `condition` until it holds; fails the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class RunningServer:
    """An EmbedspaceServer on its own event loop in a background thread."""

    def __init__(
        self, settings: Settings, encoders: Sequence[Encoder], backend: Backend | None = None
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = EmbedspaceServer(settings, encoders=encoders, backend=backend)
        self.port = self._run(self.server.start())
        self.target = f"127.0.0.1:{self.port}"

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self, grace: float = 1.0) -> None:
        try:
            self._run(self.server.stop(grace))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


@pytest.fixture(scope="session")
def minilm() -> Encoder:
    from embedspace_server.encoders.sentence_transformers import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder("minilm")
    encoder.warmup()
    return encoder


@pytest.fixture(scope="session")
def small_encoders() -> list[Encoder]:
    return [
        VectorEncoder("vec8", 8, Metric.COSINE),
        VectorEncoder("vec8dot", 8, Metric.DOT),
        VectorEncoder("vec8l2", 8, Metric.L2),
    ]


@pytest.fixture(scope="session")
def encoders(minilm: Encoder, small_encoders: list[Encoder]) -> list[Encoder]:
    return [minilm, *small_encoders]


@pytest.fixture
def start_server(encoders: list[Encoder], tmp_path: Path):
    """A factory: start_server(data_dir=None, **settings) -> RunningServer; all are stopped
    at the end of the test."""
    started: list[RunningServer] = []

    @contextmanager
    def start(data_dir: Path | None = None, **overrides: object) -> Iterator[RunningServer]:
        settings = Settings(
            host="127.0.0.1", port=0, data_dir=data_dir or tmp_path / "data", **overrides
        )
        running = RunningServer(settings, encoders)
        started.append(running)
        try:
            yield running
        finally:
            if running in started:
                started.remove(running)
                running.stop()

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def shared_server(encoders: list[Encoder], tmp_path_factory: pytest.TempPathFactory):
    """One server for the tests that only need their own collections."""
    settings = Settings(host="127.0.0.1", port=0, data_dir=tmp_path_factory.mktemp("shared"))
    running = RunningServer(settings, encoders)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def sharded_server(encoders: list[Encoder], tmp_path_factory: pytest.TempPathFactory):
    """A server whose every collection is split over two shards (tests/sharded.py)."""
    from .sharded import ShardedBackend

    data_dir = tmp_path_factory.mktemp("sharded")
    settings = Settings(host="127.0.0.1", port=0, data_dir=data_dir)
    running = RunningServer(settings, encoders, ShardedBackend())
    yield running
    running.stop()


@pytest.fixture(scope="session")
def ray_server(encoders: list[Encoder], tmp_path_factory: pytest.TempPathFactory):
    """A server on a Ray cluster of two workers (this process its driver), whose every
    collection has 3 shards of 2 replicas unless it asks for another layout."""
    from embedspace_server.cluster.backend import RayBackend

    from .ray_cluster import ray_cluster

    class Sharded(RayBackend):
        def new(self, spec: Spec):  # type: ignore[no-untyped-def]
            if (spec.shards, spec.replicas) == (1, 1):
                spec = dataclasses.replace(spec, shards=3, replicas=2)
            return super().new(spec)

    folder = tmp_path_factory.mktemp("ray")
    with ray_cluster(workers=2) as cluster:
        settings = Settings(
            host="127.0.0.1", port=0, data_dir=folder / "data", ray_address=cluster.address,
            ray_data_dir=str(folder / "shards"),
        )  # fmt: skip
        running = RunningServer(settings, encoders, Sharded(settings))
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture(scope="session", params=["faiss", "two-shards", "ray"])
def congruence_server(request: pytest.FixtureRequest) -> RunningServer:
    """The congruence suites run against the FAISS collection, the two-shard one, and a
    collection of 3 shards of 2 replicas on a Ray cluster."""
    name = {"faiss": "shared_server", "two-shards": "sharded_server", "ray": "ray_server"}
    server: RunningServer = request.getfixturevalue(name[request.param])
    return server


@pytest.fixture
def es_stub(shared_server: RunningServer) -> Iterator[Any]:
    """The generated stub over a channel to the shared server: the contract itself, with no
    SDK in between."""
    import grpc
    from embedspace.v1 import embedspace_pb2_grpc

    with grpc.insecure_channel(shared_server.target) as channel:
        yield embedspace_pb2_grpc.EmbedspaceStub(channel)


@pytest.fixture
def client(shared_server: RunningServer) -> Iterator[Client]:
    with Client(shared_server.target, timeout=60) as c:
        yield c


_names = iter(range(1_000_000))


@pytest.fixture
def collection_name(request: pytest.FixtureRequest) -> str:
    """A collection name no other test uses on the shared server."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"t{next(_names)}-{request.node.name}")[:64]


# ---------------------------------------------------------------- the command line


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def rows(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]

    def row(self) -> Any:
        (only,) = self.rows()
        return only


def invoke(
    target: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: tuple[str, ...],
    stdin: str | bytes = b"",
) -> Ran:
    """`embedspace --target TARGET ARGV...` in this process, with `stdin` as its stdin."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code = main(["--target", target, *argv])
    out, err = capsys.readouterr()
    return Ran(code, out, err)


Cli = Callable[..., Ran]


@pytest.fixture
def cli(
    shared_server: RunningServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    def run(*argv: str, stdin: str | bytes = b"") -> Ran:
        return invoke(shared_server.target, capsys, monkeypatch, argv, stdin)

    return run

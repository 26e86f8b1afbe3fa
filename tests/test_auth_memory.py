"""A call without a bearer token is refused before the server reads its request body.

gRPC hands a unary handler its request only after receiving and parsing all of it, so a
refusal shaped like the real handler would let anyone without a token make the server
allocate up to max_message_bytes per call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pytest
from embedspace import Client
from embedspace.v1 import embedspace_pb2 as pb
from embedspace_server.auth import TokenInterceptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .serve_process import BIN, ServeProcess

TOKEN = "s3cret-token-for-tests"
MiB = 2**20
DIM = 512
FLOOD = 12  # concurrent calls, each with a body of about 60 MB


def _rss(pid: int, field: str = "VmRSS") -> int:
    """Bytes of resident memory (or its peak, VmHWM) of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _upsert_body(n: int) -> bytes:
    """An UpsertRequest of n 512-d vectors, serialized: about n * 2 KiB."""
    rows = np.random.default_rng(0).random((n, DIM), dtype=np.float32)
    points = [
        pb.UpsertPoint(id=f"p{i}", vector=pb.Vector(dim=DIM, data=row.tobytes()))
        for i, row in enumerate(rows)
    ]
    return pb.UpsertRequest(collection="c", points=points).SerializeToString()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """`embedspace serve` with bearer tokens and one 512-d vector encoder."""
    folder = tmp_path_factory.mktemp("auth-memory")
    config = folder / "es.toml"
    config.write_text(
        f'tokens = "{TOKEN}"\nbuiltin_collections = false\n'
        f'[[encoders]]\nname = "v"\nkind = "vector"\ndim = {DIM}\n'
    )
    proc = ServeProcess([str(BIN / "embedspace"), "serve", "--port", "0", "--config",
                         str(config), "--data-dir", str(folder / "data")])  # fmt: skip
    try:
        proc.wait_serving(120)
        yield proc
        assert proc.terminate() == 0, proc.log
        assert "Traceback" not in proc.log and " ERROR " not in proc.log, proc.log
    finally:
        proc.kill()


@pytest.mark.slow
def test_a_flood_of_large_calls_without_a_token_does_not_grow_the_server(
    token_server: ServeProcess,
) -> None:
    pid = token_server.proc.pid
    with Client(token_server.target, token=TOKEN) as es:
        es.create_collection("c", "v")
    body = _upsert_body(60_000_000 // (DIM * 4 + 16))
    assert 55 * MiB < len(body) < 64 * MiB
    before = _rss(pid)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS, to see the peak

    def send(_: int) -> grpc.StatusCode:
        # A channel each: twelve clients on twelve connections.
        options = [("grpc.max_send_message_length", 64 * MiB),
                   ("grpc.use_local_subchannel_pool", 1)]  # fmt: skip
        with grpc.insecure_channel(token_server.target, options=options) as channel:
            upsert = channel.unary_unary("/embedspace.v1.Embedspace/Upsert")
            with pytest.raises(grpc.RpcError) as info:
                upsert(body, timeout=60)
            return info.value.code()

    with ThreadPoolExecutor(FLOOD) as pool:
        codes = list(pool.map(send, range(FLOOD)))
    after, peak = _rss(pid), _rss(pid, "VmHWM")
    print(f"server RSS before {before / MiB:.0f} MiB, after {after / MiB:.0f} MiB, "
          f"peak during the flood {peak / MiB:.0f} MiB")  # fmt: skip
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * FLOOD
    assert after - before < 100 * MiB, (before, after)
    assert peak - before < 100 * MiB, (before, peak)
    with Client(token_server.target, token=TOKEN) as es:
        assert es.upsert("c", ["a"], vectors=np.ones((1, DIM), np.float32)).inserted == 1
        assert es.describe("c").count == 1


def test_without_a_token_unary_and_streaming_calls_are_refused_and_health_answers(
    token_server: ServeProcess,
) -> None:
    with grpc.insecure_channel(token_server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        listing = channel.unary_unary("/embedspace.v1.Embedspace/ListCollections")
        with pytest.raises(grpc.RpcError) as info:
            listing(pb.ListCollectionsRequest().SerializeToString(), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "bearer token" in (info.value.details() or "")
        # Reflection is a bidirectional stream; the client never closes its side.
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
        done = threading.Event()
        try:
            with pytest.raises(grpc.RpcError) as info:
                list(reflect(_until(done), timeout=10))
        finally:
            done.set()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _until(done: threading.Event) -> Iterator[bytes]:
    """A request stream that sends one empty message and ends only when `done` is set."""
    yield b""
    done.wait(30)


# The interceptor alone, with a handler of each of gRPC's four shapes.

SHAPES = {
    "UnaryUnary": grpc.unary_unary_rpc_method_handler,
    "UnaryStream": grpc.unary_stream_rpc_method_handler,
    "StreamUnary": grpc.stream_unary_rpc_method_handler,
    "StreamStream": grpc.stream_stream_rpc_method_handler,
}


async def _shapes_server(parsed: list[bytes]) -> tuple[grpc.aio.Server, str]:
    """A server with the TokenInterceptor and an echo method of each shape; every request
    it parses is appended to `parsed`."""

    def parse(raw: bytes) -> bytes:
        parsed.append(raw)
        return raw

    async def unary_in(request: bytes, context: Any) -> bytes:
        return request

    async def stream_in(requests: AsyncIterator[bytes], context: Any) -> bytes:
        return b"".join([r async for r in requests])

    async def unary_out(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield request

    async def stream_out(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for r in requests:
            yield r

    behaviour = {"UnaryUnary": unary_in, "UnaryStream": unary_out,
                 "StreamUnary": stream_in, "StreamStream": stream_out}  # fmt: skip
    handlers = {
        name: make(behaviour[name], request_deserializer=parse) for name, make in SHAPES.items()
    }
    server = grpc.aio.server(interceptors=[TokenInterceptor([TOKEN.encode()],
                                                            public_reflection=False)])  # fmt: skip
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Shapes", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _call(channel: grpc.aio.Channel, shape: str, token: str | None) -> Any:
    """One call of the given shape; a streaming request sends b"x" and, without a token,
    never closes, so that only a prompt refusal ends the call before its deadline."""
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    method = f"/t.Shapes/{shape}"
    closes = token is not None

    async def requests() -> AsyncIterator[bytes]:
        yield b"x"
        if not closes:
            await asyncio.sleep(30)

    if shape == "UnaryUnary":
        return await channel.unary_unary(method)(b"x", timeout=10, metadata=metadata)
    if shape == "UnaryStream":
        call = channel.unary_stream(method)(b"x", timeout=10, metadata=metadata)
        return b"".join([r async for r in call])
    if shape == "StreamUnary":
        return await channel.stream_unary(method)(requests(), timeout=10, metadata=metadata)
    call = channel.stream_stream(method)(requests(), timeout=10, metadata=metadata)
    return b"".join([r async for r in call])


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_is_refused_promptly_without_parsing_the_request(shape: str) -> None:
    async def scenario() -> None:
        parsed: list[bytes] = []
        server, target = await _shapes_server(parsed)
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                for token in (None, "wrong"):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await _call(channel, shape, token)
                    # Not DEADLINE_EXCEEDED: the refusal does not wait for the request.
                    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
                    assert "bearer token" in (info.value.details() or "")
                assert parsed == []
                assert await _call(channel, shape, TOKEN) == b"x"
                assert parsed == [b"x"]
        finally:
            await server.stop(5)

    asyncio.run(scenario())

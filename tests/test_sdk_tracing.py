"""The SDK sends the caller's OpenTelemetry trace context (W3C traceparent) with every call.

A small gRPC server of the test's own records the metadata each call brings, so these tests
check what goes on the wire, whatever the real server does with it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from embedspace import AsyncClient, Client, Point
from embedspace._tracing import _opentelemetry
from embedspace.v1 import embedspace_pb2 as pb
from embedspace.v1 import embedspace_pb2_grpc as pb_grpc
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from .tracing import span_exporter, tracer


class Recorder(pb_grpc.EmbedspaceServicer):
    """Answers ListEncoders and UpsertStream with empty responses, keeping each call's
    method name and invocation metadata."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def _record(self, method: str, context: grpc.ServicerContext) -> None:
        metadata = {key: value for key, value in context.invocation_metadata()}
        with self._lock:
            self.calls.append((method, metadata))

    def ListEncoders(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record("ListEncoders", context)
        return pb.ListEncodersResponse()

    def UpsertStream(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        for _ in requests:
            pass
        self._record("UpsertStream", context)
        return pb.UpsertStreamResponse()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Recorder, str]]:
    recorder = Recorder()
    grpc_server = grpc.server(ThreadPoolExecutor(4))
    pb_grpc.add_EmbedspaceServicer_to_server(recorder, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield recorder, f"127.0.0.1:{port}"
    grpc_server.stop(None)


@pytest.fixture
def recorder(server: tuple[Recorder, str]) -> Recorder:
    server[0].calls.clear()
    return server[0]


@pytest.fixture
def target(server: tuple[Recorder, str]) -> str:
    return server[1]


def traceparent_ids(metadata: dict[str, str]) -> tuple[int, int]:
    """The trace id and span id a W3C traceparent names."""
    version, trace_id, span_id, flags = metadata["traceparent"].split("-")
    assert (version, len(trace_id), len(span_id), len(flags)) == ("00", 32, 16, 2)
    return int(trace_id, 16), int(span_id, 16)


def ids(span: trace.Span) -> tuple[int, int]:
    context = span.get_span_context()
    return context.trace_id, context.span_id


def test_a_call_in_a_span_sends_the_spans_trace_context(recorder: Recorder, target: str) -> None:
    with Client(target) as client, tracer().start_as_current_span("caller") as span:
        client.encoders()
    [(method, metadata)] = recorder.calls
    assert method == "ListEncoders"
    assert traceparent_ids(metadata) == ids(span)
    assert int(metadata["traceparent"][-2:], 16) & int(TraceFlags.SAMPLED)  # as the span is
    assert "tracestate" not in metadata


def test_an_async_call_in_a_span_sends_the_spans_trace_context(
    recorder: Recorder, target: str
) -> None:
    async def main() -> trace.Span:
        async with AsyncClient(target) as client:
            with tracer().start_as_current_span("caller") as span:
                await client.encoders()
            await client.encoders()  # outside the span again
        return span

    span = asyncio.run(main())
    [(_, inside), (_, outside)] = recorder.calls
    assert traceparent_ids(inside) == ids(span)
    assert "traceparent" not in outside


def test_a_call_outside_any_span_sends_no_trace_context(recorder: Recorder, target: str) -> None:
    assert not trace.get_current_span().get_span_context().is_valid
    with Client(target) as client:
        client.encoders()
    [(_, metadata)] = recorder.calls
    assert "traceparent" not in metadata and "tracestate" not in metadata


def test_each_call_sends_the_span_current_when_it_is_made(recorder: Recorder, target: str) -> None:
    with Client(target) as client:
        with tracer().start_as_current_span("first") as first:
            client.encoders()
        with tracer().start_as_current_span("second") as second:
            client.encoders()
    assert [traceparent_ids(metadata) for _, metadata in recorder.calls] == [
        ids(first),
        ids(second),
    ]
    assert ids(first)[0] != ids(second)[0]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_upsert_many_streams_send_the_callers_trace_context(
    recorder: Recorder, target: str, asynchronous: bool
) -> None:
    """Every stream, though the blocking client sends them from threads of its own."""
    points = [Point(f"p{i}", vector=[float(i), 1.0]) for i in range(6)]
    options: dict[str, Any] = {"batch_size": 1, "stream_messages": 2, "in_flight": 2}

    async def load_async() -> trace.Span:
        async with AsyncClient(target) as client:
            with tracer().start_as_current_span("load") as span:
                await client.upsert_many("points", points, **options)
        return span

    if asynchronous:
        span = asyncio.run(load_async())
    else:
        with Client(target) as client, tracer().start_as_current_span("load") as span:
            client.upsert_many("points", points, **options)
    assert [method for method, _ in recorder.calls] == ["UpsertStream"] * 3
    for _, metadata in recorder.calls:
        assert traceparent_ids(metadata) == ids(span)


def test_tracestate_and_the_bearer_token_travel_together(recorder: Recorder, target: str) -> None:
    """A remote parent's tracestate is passed on; trace context adds to the token's metadata."""
    parent = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "opaque-value")]),
    )
    with Client(target, token="s3cret") as client, trace.use_span(NonRecordingSpan(parent)):
        client.encoders()
    [(_, metadata)] = recorder.calls
    assert metadata["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert metadata["tracestate"] == "vendor=opaque-value"
    assert metadata["authorization"] == "Bearer s3cret"


def test_the_exported_span_is_the_one_the_call_named(recorder: Recorder, target: str) -> None:
    """The shared global provider (tests/tracing.py) records the caller's span."""
    exporter = span_exporter()
    exporter.clear()
    with Client(target) as client, tracer().start_as_current_span("exported"):
        client.encoders()
    [span] = exporter.get_finished_spans()
    assert span.context is not None
    [(_, metadata)] = recorder.calls
    assert traceparent_ids(metadata) == (span.context.trace_id, span.context.span_id)


def test_without_opentelemetry_calls_carry_no_trace_context(
    recorder: Recorder, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # what `import` meets without it
    _opentelemetry.cache_clear()
    try:
        with Client(target, token="s3cret") as client, tracer().start_as_current_span("caller"):
            client.encoders()
    finally:
        monkeypatch.undo()
        _opentelemetry.cache_clear()
    [(_, metadata)] = recorder.calls
    assert "traceparent" not in metadata
    assert metadata["authorization"] == "Bearer s3cret"


def test_importing_the_sdk_does_not_import_opentelemetry() -> None:
    code = "import sys, embedspace; print('opentelemetry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

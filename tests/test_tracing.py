"""The server's OpenTelemetry spans: one SERVER span per call (its parent the caller's
`traceparent`), with the steps of the call as its children, in an in-process server whose
spans the test process's SDK provider records (tests/tracing.py); and a server process that
exports them by OTLP to a collector of the test's own, and exports nothing unless asked.

Spans of every test of the session land in one exporter, so each test picks its own by the
trace ids it sent, or by the unique collection its call named.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from embedspace.v1 import embedspace_pb2 as pb
from embedspace.v1 import embedspace_pb2_grpc as pb_grpc
from embedspace_server.errors import FailedPrecondition
from embedspace_server.observe import tracing
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from .conftest import wait_until
from .serve_process import serve_with_config
from .tracing import span_exporter

SERVICE = "embedspace.v1.Embedspace"
Metadata = tuple[tuple[str, str], ...]


class Incoming:
    """A caller's span, sent as W3C `traceparent` metadata."""

    def __init__(self, sampled: bool = True) -> None:
        self.trace_id = secrets.randbits(128) | 1
        self.span_id = secrets.randbits(64) | 1
        flags = "01" if sampled else "00"
        self.metadata: Metadata = (
            ("traceparent", f"00-{self.trace_id:032x}-{self.span_id:016x}-{flags}"),
        )


def vector(*values: float) -> pb.Vector:
    return pb.Vector(values=[*values, *[0.0] * (8 - len(values))])


def finished(trace_id: int) -> list[ReadableSpan]:
    """The finished spans of one trace."""
    return [s for s in span_exporter().get_finished_spans() if s.context.trace_id == trace_id]


def server_span(spans: Sequence[ReadableSpan], method: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == f"{SERVICE}/{method}"]
    assert span.kind is SpanKind.SERVER
    return span


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def names(spans: Sequence[ReadableSpan]) -> Counter[str]:
    return Counter(s.name for s in spans)


@pytest.fixture
def stub(start_server: Any) -> Iterator[tuple[Any, Any]]:
    """A fresh in-process server (real encoders) and the generated stub over a channel to
    it: no SDK in between, so the metadata is only what the test sends."""
    span_exporter()  # the process's SDK provider, before the first call
    with (
        start_server(embed_batch=64, embed_wait_ms=50) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        yield server, pb_grpc.EmbedspaceStub(channel)


INCOMING = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True)


# ---------------------------------------------------------------- an in-process server


def test_a_search_by_text_is_a_server_span_with_its_steps_as_children(
    stub: tuple[Any, Any], collection_name: str
) -> None:
    _, es = stub
    name = collection_name
    es.CreateCollection(pb.CreateCollectionRequest(collection=name, encoder="minilm"))
    texts = ["a cat on a mat", "stock markets fell", "rain in spain"]
    points = [pb.UpsertPoint(id=f"p{i}", item=pb.Item(text=t)) for i, t in enumerate(texts)]
    es.Upsert(pb.UpsertRequest(collection=name, points=points), timeout=60)
    query = pb.Query(item=pb.Item(text="a kitten"))
    reply = es.Search(pb.SearchRequest(collection=name, query=query, k=2), timeout=60)
    assert reply.neighbors[0].id == "p0"

    (server,) = [
        s
        for s in span_exporter().get_finished_spans()
        if s.name == f"{SERVICE}/Search" and s.attributes.get("embedspace.collection") == name
    ]
    assert server.kind is SpanKind.SERVER and server.parent is None  # no traceparent: a root
    assert dict(server.attributes) == {
        "rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Search",
        "rpc.grpc.status_code": 0, "embedspace.collection": name,
    }  # fmt: skip
    assert server.status.status_code is StatusCode.UNSET
    spans = finished(server.context.trace_id)
    # The worker's queue, the query made a vector, and the coalesced FAISS call (with the
    # wait for it); the forward pass (and the wait for its batch) happens inside resolve.
    direct = children(spans, server)
    assert names(direct) == Counter(
        {"embedspace.queue": 2, "embedspace.resolve": 1, "embedspace.faiss": 1}
    ), names(direct)
    (resolve,) = [s for s in direct if s.name == "embedspace.resolve"]
    assert resolve.attributes == {"embedspace.queries": 1}
    below = children(spans, resolve)
    assert names(below) == Counter({"embedspace.queue": 1, "embedspace.forward": 1})
    (forward,) = [s for s in below if s.name == "embedspace.forward"]
    assert forward.attributes["embedspace.batch.size"] == 1
    assert isinstance(forward.attributes["embedspace.batch.id"], int)
    (faiss,) = [s for s in direct if s.name == "embedspace.faiss"]
    assert faiss.attributes["embedspace.batch.size"] == 1
    assert set(spans) == {server, *direct, *below}  # nothing else in the trace
    for span in (*direct, *below):  # within the call, as its clock saw it
        assert span.kind is SpanKind.INTERNAL
        assert server.start_time <= span.start_time <= span.end_time <= server.end_time
    assert resolve.start_time <= forward.start_time <= forward.end_time <= resolve.end_time


def test_an_upsert_has_a_write_ahead_log_span(stub: tuple[Any, Any], collection_name: str) -> None:
    _, es = stub
    es.CreateCollection(pb.CreateCollectionRequest(collection=collection_name, encoder="vec8"))
    caller = Incoming()
    points = [pb.UpsertPoint(id="a", vector=vector(1)), pb.UpsertPoint(id="b", vector=vector(0, 1))]
    es.Upsert(pb.UpsertRequest(collection=collection_name, points=points),
              metadata=caller.metadata, timeout=30)  # fmt: skip
    spans = finished(caller.trace_id)
    server = server_span(spans, "Upsert")
    assert server.attributes["embedspace.collection"] == collection_name
    direct = children(spans, server)
    assert names(direct) == Counter({"embedspace.queue": 1, "embedspace.wal": 1}), names(spans)
    (wal,) = [s for s in direct if s.name == "embedspace.wal"]
    assert wal.attributes["embedspace.wal.bytes"] > 2 * 8 * 4  # two 8-d float32 vectors


def test_concurrent_embeds_that_share_a_forward_pass_carry_its_batch_id(
    stub: tuple[Any, Any],
) -> None:
    running, es = stub
    calls = [(Incoming(), [f"word {i} of call {n}" for i in range(n % 3 + 1)]) for n in range(24)]

    def embed(call: tuple[Incoming, list[str]]) -> None:
        caller, texts = call
        items = [pb.Item(text=t) for t in texts]
        es.Embed(pb.EmbedRequest(encoder="minilm", items=items),
                 metadata=caller.metadata, timeout=60)  # fmt: skip

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(embed, calls))
    (batched,) = running.server._batched
    assert batched.batcher.batches < len(calls)

    batch_of: dict[int, list[tuple[ReadableSpan, int]]] = {}  # batch id -> forward spans
    for caller, texts in calls:
        spans = finished(caller.trace_id)
        server = server_span(spans, "Embed")
        assert server.attributes["embedspace.encoder"] == "minilm"
        direct = children(spans, server)
        assert names(direct) == Counter({"embedspace.queue": 1, "embedspace.forward": 1})
        queue, forward = sorted(direct, key=lambda s: s.name != "embedspace.queue")
        assert queue.end_time == forward.start_time  # waited, then ran
        batch = forward.attributes["embedspace.batch.id"]
        batch_of.setdefault(batch, []).append((forward, len(texts)))
    assert len(batch_of) == batched.batcher.batches
    assert max(len(shared) for shared in batch_of.values()) > 1
    for shared in batch_of.values():
        # One forward pass: its size is the items of the calls that joined it, its time
        # is the same for each of them.
        size = sum(count for _, count in shared)
        assert {s.attributes["embedspace.batch.size"] for s, _ in shared} == {size}
        assert len({(s.start_time, s.end_time) for s, _ in shared}) == 1


def test_the_server_span_continues_the_callers_trace(stub: tuple[Any, Any]) -> None:
    _, es = stub
    caller = Incoming()
    es.ListEncoders(pb.ListEncodersRequest(), metadata=caller.metadata, timeout=30)
    server = server_span(finished(caller.trace_id), "ListEncoders")
    assert server.parent is not None and server.parent.is_remote
    assert server.parent.trace_id == caller.trace_id
    assert server.parent.span_id == caller.span_id
    assert server.attributes["rpc.grpc.status_code"] == 0

    # A caller that does not sample its trace: the server records nothing of the call,
    # neither its span nor its steps.
    unsampled = Incoming(sampled=False)
    query = pb.Query(item=pb.Item(text="a kitten"))
    es.Distance(pb.DistanceRequest(encoder="minilm", a=[query], b=[query]),
                metadata=unsampled.metadata, timeout=60)  # fmt: skip
    assert finished(unsampled.trace_id) == []


def test_a_callers_error_is_no_error_of_the_span_and_the_servers_own_is(
    stub: tuple[Any, Any], collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, es = stub
    es.CreateCollection(pb.CreateCollectionRequest(collection=collection_name, encoder="vec8"))
    C = grpc.StatusCode

    def status_of(method: str, request: Any, code: grpc.StatusCode) -> tuple[Any, ...]:
        """The failed call's status code attribute, and its span's status and description."""
        caller = Incoming()
        with pytest.raises(grpc.RpcError) as failed:
            getattr(es, method)(request, metadata=caller.metadata, timeout=30)
        assert failed.value.code() == code  # type: ignore[attr-defined]
        # An error's status goes out as the handler raises, before the span ends.
        wait_until(lambda: [s for s in finished(caller.trace_id) if s.kind is SpanKind.SERVER])
        span = server_span(finished(caller.trace_id), method)
        status = span.status
        return span.attributes["rpc.grpc.status_code"], status.status_code, status.description

    one = pb.Query(vector=vector(1))
    missing = pb.SearchRequest(collection="no-such-collection", query=one, k=1)
    assert status_of("Search", missing, C.NOT_FOUND) == (5, StatusCode.UNSET, None)
    bad = pb.SearchRequest(collection=collection_name, query=one, k=0)
    assert status_of("Search", bad, C.INVALID_ARGUMENT) == (3, StatusCode.UNSET, None)

    listing = pb.ListCollectionsRequest()
    monkeypatch.setattr(running.server.servicer, "calls", None)  # as while encoders load
    unavailable = status_of("ListCollections", listing, C.UNAVAILABLE)
    assert unavailable == (14, StatusCode.ERROR, "UNAVAILABLE")
    monkeypatch.undo()

    def boom() -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(running.server.engine, "collections", boom)
    assert status_of("ListCollections", listing, C.INTERNAL) == (13, StatusCode.ERROR, "INTERNAL")


def test_traces_are_exported_only_when_the_environment_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = trace.get_tracer_provider()
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert tracing.configure_from_environment() is None
    assert trace.get_tracer_provider() is before
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    assert tracing.exporter_from_environment(endpoint) == "otlp"
    assert tracing.exporter_from_environment({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "x"}) == "otlp"
    assert tracing.exporter_from_environment({**endpoint, "OTEL_SDK_DISABLED": "true"}) == ""
    assert tracing.exporter_from_environment({"OTEL_TRACES_EXPORTER": "none"}) == "none"
    with pytest.raises(FailedPrecondition, match=r"'zipkin'.*'otlp'.*'none'"):
        tracing.exporter_from_environment({**endpoint, "OTEL_TRACES_EXPORTER": "zipkin"})


def test_with_no_exporter_calls_get_trace_ids_and_no_span_is_recorded() -> None:
    provider = tracing.provider_for("none", {})
    tracer = provider.get_tracer("t")
    span = tracer.start_span("call")
    assert not span.is_recording() and span.get_span_context().is_valid
    caller = tracer.start_span("other call")
    assert caller.get_span_context().trace_id != span.get_span_context().trace_id
    parent = trace.set_span_in_context(trace.NonRecordingSpan(INCOMING))
    assert tracer.start_span("continued", context=parent).get_span_context().trace_id == (
        INCOMING.trace_id
    )
    assert provider.resource.attributes["service.name"] == "embedspace"
    named = tracing.provider_for("none", {"OTEL_SERVICE_NAME": "mine"})
    assert named.resource.attributes["service.name"] == "mine"


# ---------------------------------------------------------------- a server process

SMALL = 'builtin_collections = false\n[[encoders]]\nname = "v"\nkind = "vector"\ndim = 8\n'


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace collector: keeps every export request it is sent."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self._lock = threading.Lock()

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self, trace_id: int) -> list[tuple[dict[str, Any], Any]]:
        """The spans of one trace received so far, each with its resource's attributes."""
        with self._lock:
            requests = list(self.requests)
        wanted = trace_id.to_bytes(16, "big")
        return [
            (attributes(resource.resource.attributes), span)
            for request in requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
            if span.trace_id == wanted
        ]


def attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in pairs}


@pytest.fixture(scope="module")
def collector() -> Iterator[tuple[Collector, str]]:
    received = Collector()
    server = grpc.server(ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(received, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield received, f"http://127.0.0.1:{port}"
    server.stop(None)


def otlp_env(endpoint: str, service: str, delay_ms: int) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": str(delay_ms),
        "OTEL_SERVICE_NAME": service,
    }


def search(target: str, caller: Incoming) -> None:
    """Creates collection `c`, stores two vectors, and searches it by an item (embedded by
    the collection's encoder); the search carries the caller's trace."""
    with grpc.insecure_channel(target) as channel:
        es = pb_grpc.EmbedspaceStub(channel)
        es.CreateCollection(pb.CreateCollectionRequest(collection="c", encoder="v"), timeout=30)
        points = [pb.UpsertPoint(id="a", vector=vector(1)),
                  pb.UpsertPoint(id="b", vector=vector(0, 1))]  # fmt: skip
        es.Upsert(pb.UpsertRequest(collection="c", points=points), timeout=30)
        query = pb.Query(item=pb.Item(vector=vector(1, 0.1)))
        reply = es.Search(pb.SearchRequest(collection="c", query=query, k=1),
                          metadata=caller.metadata, timeout=30)  # fmt: skip
        assert [n.id for n in reply.neighbors] == ["a"]


@pytest.mark.slow
def test_a_server_process_exports_its_spans_by_otlp(
    collector: tuple[Collector, str], tmp_path: Path
) -> None:
    received, endpoint = collector
    service = f"embedspace-test-{secrets.token_hex(4)}"
    proc = serve_with_config(tmp_path, SMALL, otlp_env(endpoint, service, 200), 60)
    try:
        caller = Incoming()
        search(proc.target, caller)
        wait_until(lambda: len(received.spans(caller.trace_id)) >= 6, timeout=30)
        spans = received.spans(caller.trace_id)
        assert proc.terminate() == 0, proc.log
    finally:
        proc.kill()
    assert f"exporting traces by OTLP to {endpoint}" in proc.log
    assert {resource["service.name"] for resource, _ in spans} == {service}
    (server,) = [s for _, s in spans if s.name == f"{SERVICE}/Search"]
    assert server.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert server.parent_span_id == caller.span_id.to_bytes(8, "big")
    assert attributes(server.attributes) == {
        "rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Search",
        "rpc.grpc.status_code": 0, "embedspace.collection": "c",
    }  # fmt: skip
    by_parent: dict[bytes, Counter[str]] = {}
    for _, span in spans:
        by_parent.setdefault(span.parent_span_id, Counter())[span.name] += 1
    (resolve,) = [s for _, s in spans if s.name == "embedspace.resolve"]
    assert by_parent[server.span_id] == Counter(
        {"embedspace.queue": 2, "embedspace.resolve": 1, "embedspace.faiss": 1}
    )
    assert by_parent[resolve.span_id] == Counter({"embedspace.forward": 1})
    assert len(spans) == 6  # the server span and its five


@pytest.mark.slow
def test_spans_still_queued_are_exported_when_the_server_stops(
    collector: tuple[Collector, str], tmp_path: Path
) -> None:
    received, endpoint = collector
    proc = serve_with_config(
        tmp_path, SMALL, otlp_env(endpoint, "embedspace-flush", 600_000), 60
    )  # no export due
    try:
        caller = Incoming()
        search(proc.target, caller)
        assert received.spans(caller.trace_id) == []
        assert proc.terminate() == 0, proc.log
    finally:
        proc.kill()
    exported = {span.name for _, span in received.spans(caller.trace_id)}
    assert exported >= {f"{SERVICE}/Search", "embedspace.resolve", "embedspace.faiss"}


@pytest.mark.slow
def test_a_server_process_without_an_otlp_endpoint_exports_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    proc = serve_with_config(tmp_path, SMALL, timeout=60)
    try:
        search(proc.target, Incoming())
        assert proc.terminate() == 0, proc.log
    finally:
        proc.kill()
    assert "exporting traces" not in proc.log, proc.log
    assert "SERVING on" in proc.log  # the log was read

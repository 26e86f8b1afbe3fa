"""Stand-ins for what a traced, monitored deployment runs beside the server (O1): a scraper
that reads /metrics the way Prometheus does, and an OTLP/gRPC trace receiver that counts the
spans it is sent and keeps none."""

from __future__ import annotations

import contextlib
import gzip
import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

# The Accept header Prometheus sends by default (OpenMetrics first), and gzip, which it asks for.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
_SAMPLE = re.compile(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`, in Prometheus or
    OpenMetrics text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None or m.group(1) != name:
            continue
        have = dict(_LABEL.findall(m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


class Scraper:
    """GETs http://127.0.0.1:PORT/metrics as Prometheus does; `every_second()` keeps doing
    so from a thread of this process while a block runs."""

    def __init__(self, port: int, every_s: float = 1.0) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.every_s = every_s
        self.took: list[float] = []  # seconds per scrape, as the scraper sees it
        self.sizes: list[tuple[int, int]] = []  # bytes on the wire, bytes of text

    def scrape(self) -> str:
        start = time.perf_counter()
        request = urllib.request.Request(self.url, headers=PROMETHEUS_HEADERS)
        with urllib.request.urlopen(request, timeout=30) as r:
            body = r.read()
            gzipped = r.headers.get("Content-Encoding") == "gzip"
        text = gzip.decompress(body) if gzipped else body
        self.took.append(time.perf_counter() - start)
        self.sizes.append((len(body), len(text)))
        return text.decode()

    @contextlib.contextmanager
    def every_second(self) -> Iterator[None]:
        stop = threading.Event()
        errors: list[BaseException] = []

        def loop() -> None:
            due = time.monotonic()
            while not stop.is_set():
                try:
                    self.scrape()
                except BaseException as e:
                    errors.append(e)
                    return
                due += self.every_s
                stop.wait(max(0.0, due - time.monotonic()))

        thread = threading.Thread(target=loop, name="scraper", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(60)
        if errors:
            raise errors[0]


class SpanSink:
    """An OTLP/gRPC trace receiver on 127.0.0.1 (a thread pool of this process) that counts
    what it is sent, by span name, and drops it. `callers` holds the trace ids the load
    generator's calls carry, so the sink can tell server spans that joined a caller's trace."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as pb_grpc
        from opentelemetry.proto.trace.v1 import trace_pb2

        self.lock = threading.Lock()
        self.names: Counter[str] = Counter()
        self.server_spans = 0
        self.joined = 0  # server spans in one of `callers`' traces
        self.requests = 0
        self.callers: set[bytes] = set()
        server_kind = trace_pb2.Span.SPAN_KIND_SERVER
        sink = self

        class Receiver(pb_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                names: Counter[str] = Counter()
                server = joined = 0
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            names[span.name] += 1
                            if span.kind == server_kind:
                                server += 1
                                joined += span.trace_id in sink.callers
                with sink.lock:
                    sink.names.update(names)
                    sink.server_spans += server
                    sink.joined += joined
                    sink.requests += 1
                return pb.ExportTraceServiceResponse()

        self.server = grpc.server(ThreadPoolExecutor(2, thread_name_prefix="otlp-sink"))
        pb_grpc.add_TraceServiceServicer_to_server(Receiver(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counts(self) -> tuple[Counter[str], int, int, int]:
        """Spans by name, server spans, those in a caller's trace, export requests so far."""
        with self.lock:
            return Counter(self.names), self.server_spans, self.joined, self.requests

    def close(self) -> None:
        self.server.stop(0)

"""Prometheus metrics: what the server counts and times, and the HTTP endpoint that serves them.

The counters and histograms live in one registry of the process (`REGISTRY`), filled from
wherever the work happens: the gRPC interceptor, the call limits, the batchers, the FAISS
collection, the write-ahead log. What is read at scrape time (collection sizes, encoders,
the build) comes from the server that serves the endpoint (`ServerCollector`).

Label values are bounded: methods come from the contract, encoders from the settings, and
collections get a label of their own up to `metrics_max_collections`, the rest `other`.
Names carry their base unit (`_seconds`, `_bytes`, `_total`).
"""

from __future__ import annotations

import functools
import platform
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ..engine import Engine

# Calls here take from a tenth of a millisecond (a search by vector) to tens of seconds (a
# backup, a large batch of texts on 2 cores).
SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # fmt: skip
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
OTHER = "other"

# Each counter's `_created` series doubles what is stored and is charted by nobody.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_GRPC = ["grpc_type", "grpc_service", "grpc_method"]
STARTED = Counter("grpc_server_started", "RPCs started on the server.", _GRPC, registry=REGISTRY)
HANDLED = Counter(
    "grpc_server_handled",
    "RPCs completed on the server, by status code.",
    [*_GRPC, "grpc_code"],
    registry=REGISTRY,
)
HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "Seconds from the start of an RPC to its status.",
    _GRPC,
    buckets=SECONDS,
    registry=REGISTRY,
)
_NAMED = ["encoder", "collection"]
PENDING = Gauge(
    "embedspace_calls_pending",
    "Calls queued for or running on a worker or a batch, by the encoder or collection "
    "they name ('' when none).",
    _NAMED,
    registry=REGISTRY,
)
REJECTED = Counter(
    "embedspace_calls_rejected",
    "Calls refused with RESOURCE_EXHAUSTED because max_pending calls were pending.",
    _NAMED,
    registry=REGISTRY,
)
EMBED_BATCH = Histogram(
    "embedspace_embed_batch_size",
    "Items per encoder forward pass.",
    ["encoder"],
    buckets=SIZES,
    registry=REGISTRY,
)
FORWARD = Histogram(
    "embedspace_forward_pass_seconds",
    "Seconds per encoder forward pass.",
    ["encoder"],
    buckets=SECONDS,
    registry=REGISTRY,
)
FAISS_SECONDS = Histogram(
    "embedspace_faiss_seconds",
    "Seconds per FAISS search call, filters and id mapping included.",
    ["collection"],
    buckets=SECONDS,
    registry=REGISTRY,
)
FAISS_BATCH = Histogram(
    "embedspace_faiss_batch_size",
    "Queries per FAISS search call.",
    ["collection"],
    buckets=SIZES,
    registry=REGISTRY,
)
WAL_APPEND = Histogram(
    "embedspace_wal_append_seconds",
    "Seconds per write-ahead-log append, its fsync included.",
    buckets=SECONDS,
    registry=REGISTRY,
)
WAL_FSYNC = Histogram(
    "embedspace_wal_fsync_seconds",
    "Seconds per write-ahead-log fsync.",
    buckets=SECONDS,
    registry=REGISTRY,
)
SNAPSHOT_SECONDS = Histogram(
    "embedspace_snapshot_seconds",
    "Seconds to write one collection's snapshot (fsyncs included).",
    buckets=SECONDS,
    registry=REGISTRY,
)
SNAPSHOT_BYTES = Counter(
    "embedspace_snapshot_bytes",
    "Bytes written to snapshot files.",
    registry=REGISTRY,
)


class CollectionLabels:
    """Each collection's label value: its name, for the first `limit` collections that the
    `known` predicate accepts (collections that exist), and `other` for the rest, so that
    a client naming thousands of collections cannot make thousands of series."""

    def __init__(self, limit: int = 100) -> None:
        self.reset(limit, lambda name: False)
        self._lock = threading.Lock()

    def reset(self, limit: int, known: Callable[[str], bool]) -> None:
        """Starts afresh for a server: its limit and its collections."""
        self.limit = limit
        self.known = known
        self._labels: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        label = self._labels.get(name)
        if label is not None:
            return label
        if not name:
            return ""
        if not self.known(name):
            return OTHER
        with self._lock:
            if name not in self._labels:
                own = len(self._labels) < self.limit
                self._labels[name] = name if own else OTHER
            return self._labels[name]


collection_label = CollectionLabels()


class EncoderLabels:
    """Each encoder's label value: its name if the server loaded it, else `other` (a
    call may name any encoder)."""

    def __init__(self) -> None:
        self.names: frozenset[str] = frozenset()

    def __call__(self, name: str) -> str:
        return name if not name or name in self.names else OTHER


encoder_label = EncoderLabels()


@functools.cache
def _forward(encoder: str) -> tuple[Any, Any]:
    return EMBED_BATCH.labels(encoder), FORWARD.labels(encoder)


def observe_forward(encoder: str, size: int, seconds: float) -> None:
    batch, forward = _forward(encoder)
    batch.observe(size)
    forward.observe(seconds)


@functools.cache
def _faiss(label: str) -> tuple[Any, Any]:
    return FAISS_BATCH.labels(label), FAISS_SECONDS.labels(label)


def observe_faiss(collection: str, size: int, seconds: float) -> None:
    batch, faiss_seconds = _faiss(collection_label(collection))
    batch.observe(size)
    faiss_seconds.observe(seconds)


@functools.cache
def pending(encoder: str, collection: str) -> Any:
    """The pending-calls gauge of a pair of label values (already bounded)."""
    return PENDING.labels(encoder, collection)


@functools.cache
def rejected(encoder: str, collection: str) -> Any:
    return REJECTED.labels(encoder, collection)


class ServerCollector:
    """What one server reports at scrape time: its limits, its encoders, its build, and how
    many vectors and tombstones each of its collections holds."""

    def __init__(self, max_pending: int, build: dict[str, str]) -> None:
        self.engine: Engine | None = None  # set once the encoders are loaded
        self.max_pending = max_pending
        self.build = build

    def collect(self) -> Iterator[Metric]:
        limit = GaugeMetricFamily(
            "embedspace_max_pending_calls",
            "Pending calls past which new ones are refused (max_pending).",
            value=self.max_pending,
        )
        yield limit
        yield InfoMetricFamily(
            "embedspace_build", "The server's version and what it runs on.", value=self.build
        )
        if self.engine is None:
            return
        encoders = InfoMetricFamily(
            "embedspace_encoder",
            "The loaded encoders.",
            labels=["encoder"],
        )
        for info in self.engine.encoders():
            p = info.provenance
            encoders.add_metric(
                [info.name],
                {"kind": p.kind, "backend": p.details.get("backend", ""), "sha256": p.sha256},
            )
        yield encoders
        yield from self._collections()

    def _collections(self) -> Iterable[Metric]:
        assert self.engine is not None
        vectors: dict[str, float] = {}
        tombstones: dict[str, float] = {}
        for info in self.engine.collections():
            label = collection_label(info.name)
            vectors[label] = vectors.get(label, 0) + info.count
        for name, collection in self.engine.catalogue.current().items():
            dead = getattr(collection, "tombstones", None)
            if dead is not None:
                label = collection_label(name)
                tombstones[label] = tombstones.get(label, 0) + dead
        family = GaugeMetricFamily(
            "embedspace_collection_vectors", "Vectors stored, by collection.", labels=["collection"]
        )
        for label, value in sorted(vectors.items()):
            family.add_metric([label], value)
        yield family
        family = GaugeMetricFamily(
            "embedspace_collection_tombstones",
            "Deleted or replaced vectors still in a collection's index until its next rebuild.",
            labels=["collection"],
        )
        for label, value in sorted(tombstones.items()):
            family.add_metric([label], value)
        yield family


class _Exposed(CollectorRegistry):
    """The process's metrics and one server's, as one registry to serve."""

    def __init__(self, server: ServerCollector) -> None:
        super().__init__(auto_describe=False)
        self.register(REGISTRY)  # type: ignore[arg-type]
        self.register(server)  # type: ignore[arg-type]


class MetricsEndpoint:
    """`/metrics` over HTTP on its own port (prometheus_client's server: the text format,
    or OpenMetrics when the scraper asks for it)."""

    def __init__(self, host: str, port: int, server: ServerCollector) -> None:
        httpd: WSGIServer
        httpd, self._thread = start_http_server(port, addr=host.strip("[]"),
                                                registry=_Exposed(server))  # fmt: skip
        self._httpd = httpd
        self.port: int = httpd.server_port

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def build_labels(faiss_version: str, faiss_simd: str) -> dict[str, str]:
    import grpc

    from .. import __version__

    return {
        "version": __version__,
        "faiss_version": faiss_version,
        "faiss_simd": faiss_simd,
        "python_version": platform.python_version(),
        "grpc_version": grpc.__version__,
    }

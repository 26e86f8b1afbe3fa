"""A real Prometheus scrapes a real server (`embedspace serve --metrics-port 0`) every second.
After a known set of calls, what Prometheus stored agrees with them: the gRPC counters equal
the calls made, by method and status; the histograms have the contract's buckets and count
what was done (items per forward pass, queries per FAISS call, appends to the log); the
server's gauges report its collections, its limit, its encoders and its build. Then every
query of the Grafana dashboard (deploy/grafana/embedspace.json) returns data.

Needs Debian's prometheus: when it is not on PATH the fixture installs it with
scripts/ci/install-prometheus.sh (root), and fails if it cannot. Loopback only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import platform
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from embedspace import Client, EmbedspaceError, Ref, ResourceExhausted, Tensor
from embedspace_models import artifact
from embedspace_server import __version__
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import REPO
from .serve_process import BIN, ServeProcess

pytestmark = pytest.mark.slow

INSTALL = REPO / "scripts" / "ci" / "install-prometheus.sh"
DASHBOARD = REPO / "deploy" / "grafana" / "embedspace.json"
SERVICE = "embedspace.v1.Embedspace"
HEALTH = "grpc.health.v1.Health"
ENCODER = "shapes"  # a trained image encoder: batched forward passes, quick to load
COLLECTION = "tiles"
SHAPE = (32, 32, 3)
MAX_PENDING = 1  # so that a burst of concurrent embeds is refused in part
BURST = 8  # concurrent embeds per burst, of BURST_ITEMS images each
BURST_ITEMS = 256
# The contract's buckets (seconds, and items or queries per batch).
SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1, 2.5, 5, 10, 30, 60)  # fmt: skip
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# The dashboard's Grafana variables, as PromQL: every call happens within this window.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1m"}
SCRAPE_TIMEOUT = 30.0

Labels = frozenset[tuple[str, str]]


def labels(**values: str) -> Labels:
    return frozenset(values.items())


class Prometheus:
    """A Prometheus server of this test's own, on a free loopback port, scraping `target`
    (host:port) every second; `query` asks its HTTP API."""

    def __init__(self, binary: str, folder: Path, target: str) -> None:
        config = folder / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "embedspace",
                            "scrape_interval": "1s",
                            "scrape_timeout": "1s",
                            "static_configs": [{"targets": [target]}],
                        }
                    ],
                }
            )
        )
        self.log_path = folder / "prometheus.log"
        # No proxy: everything here is on loopback.
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for _ in range(3):  # the free port may be taken between finding it and binding it
            self.address = f"127.0.0.1:{free_port()}"
            with self.log_path.open("w") as log:
                self.proc = subprocess.Popen(
                    [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
                     f"--web.listen-address={self.address}", "--log.level=warn"],
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            if self._wait_ready():
                return
            if "address already in use" not in self.log:
                break
        raise RuntimeError(f"prometheus did not get ready:\n{self.log}")

    @property
    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    def _get(self, path: str, **params: str) -> Any:
        url = f"http://{self.address}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with self._http.open(url, timeout=10) as response:
            return response.read()

    def _wait_ready(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                self._get("/-/ready")
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant query's result now: [{"metric": {...}, "value": [time, "1.5"]}]."""
        try:
            body = json.loads(self._get("/api/v1/query", query=expr))
        except urllib.error.HTTPError as e:  # a bad query: 400 and the error in the body
            body = json.loads(e.read())
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def values(self, expr: str, *keep: str) -> dict[Labels, float]:
        """The query's samples by their labels (only the labels named in `keep`, if any;
        Prometheus stores no empty label values, so one it does not return is "")."""
        out = {}
        for sample in self.query(expr):
            metric = sample["metric"]
            pairs = [(k, metric.get(k, "")) for k in keep] if keep else metric.items()
            key = frozenset(pairs)
            assert key not in out, f"{expr}: two samples with labels {dict(key)}"
            out[key] = float(sample["value"][1])
        return out

    def value(self, expr: str) -> float:
        """The value of a query that must return one sample (0 when it returns none)."""
        found = self.values(expr)
        assert len(found) <= 1, f"{expr}: {found}"
        return next(iter(found.values()), 0.0)

    def scraped_after(self, moment: float) -> None:
        """Waits until a scrape that started after `moment` (time.time()) is stored."""
        # timestamp() of a plain selector is the sample's, i.e. the scrape's start (of an
        # expression such as `up == 1`, it would be the time of the query).
        wait_for(
            lambda: self.value('timestamp(up{job="embedspace"})') > moment,
            f"scrape after {moment}",
            self,
        )
        assert self.value('up{job="embedspace"}') == 1, self.query("up")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str, prometheus: Prometheus) -> None:
    deadline = time.monotonic() + SCRAPE_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(
                f"no {what} within {SCRAPE_TIMEOUT:.0f}s; prometheus log:\n{prometheus.log}"
            )
        time.sleep(0.1)


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        out = subprocess.run([str(INSTALL)], capture_output=True, text=True, timeout=600)
        found = shutil.which("prometheus")
        if found is None:
            pytest.fail(
                f"prometheus is not installed and {INSTALL.relative_to(REPO)} could not install "
                f"it (exit {out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
            )
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("prometheus-server")
    config = folder / "embedspace.toml"
    config.write_text(
        "builtin_collections = false\n"
        f"max_pending = {MAX_PENDING}\n"
        "snapshot_interval_s = 0.5\n"  # a changed collection is saved within a scrape or two
        f'[[encoders]]\nname = "{ENCODER}"\nkind = "trained"\n'
        f"path = {json.dumps(str(artifact('shapes-by-colour')))}\n"
        '[[encoders]]\nname = "rgb"\nkind = "colour"\noptions = { space = "rgb" }\n'
    )
    proc = ServeProcess(
        [str(BIN / "embedspace"), "serve", "--port", "0", "--data-dir", str(folder / "data"),
         "--config", str(config), "--metrics-port", "0"]
    )  # fmt: skip
    try:
        proc.wait_serving()
        yield proc
    finally:
        try:
            proc.terminate()
        finally:
            proc.kill()


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str, server: ServeProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    assert server.metrics_port > 0, server.ports()
    running = Prometheus(
        prometheus_binary,
        tmp_path_factory.mktemp("prometheus"),
        f"127.0.0.1:{server.metrics_port}",
    )
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Traffic:
    """What the calls did, to compare with what Prometheus stored."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, code)
    health_checks: int = 0  # on the main port, from this test (not from the fixtures)
    embedded: int = 0  # items through forward passes: embeds, upserts, searches by item
    searches: int = 0  # queries that reached FAISS
    upserts: int = 0
    vectors: int = 0
    rejected: int = 0
    # Values before the calls (the fixtures' own calls: health checks while waiting).
    before: dict[str, float] = field(default_factory=dict)
    encoders: dict[str, Labels] = field(default_factory=dict)  # name: its info labels


def images(rng: np.random.Generator, count: int) -> list[Tensor]:
    return [Tensor(a) for a in rng.random((count, *SHAPE), dtype=np.float32)]


class Caller:
    """Makes calls, each expected to end with a known status, and counts them."""

    def __init__(self, client: Client, target: str, traffic: Traffic) -> None:
        self.client = client
        self.target = target
        self.traffic = traffic
        self.rng = np.random.default_rng(7)

    def expect(self, method: str, code: str, call: Callable[[], Any]) -> Any:
        result = None
        try:
            result = call()
            got = "OK"
        except EmbedspaceError as e:
            assert e.code is not None, e
            got = e.code.name
        assert got == code, f"{method} ended with {got}, not {code}"
        self.traffic.calls[method, code] += 1
        return result

    def phase(self, phase: int) -> None:
        """The same mix of calls in each phase: every series the dashboard reads exists
        after the first, and grows in the second (rate() needs both)."""
        t, es = self.traffic, self.client
        for _ in range(3):
            t.embedded += 4
            self.expect("Embed", "OK", lambda: es.embed(ENCODER, images(self.rng, 4)))
        for i in range(2):
            ids = [f"{phase}-{i}-{j}" for j in range(5)]
            upsert = functools.partial(es.upsert, COLLECTION, ids, items=images(self.rng, 5))
            added = self.expect("Upsert", "OK", upsert)
            assert added.inserted == 5
            t.embedded += 5
            t.vectors += 5
            t.upserts += 1
        for query in (*images(self.rng, 2), Ref(f"{phase}-0-0"), Ref(f"{phase}-1-4")):
            hits = self.expect("Search", "OK", functools.partial(es.search, COLLECTION, query))
            assert len(hits) == min(10, t.vectors)
            t.searches += 1
            t.embedded += int(isinstance(query, Tensor))
        self.expect("Embed", "NOT_FOUND", lambda: es.embed("no-such-encoder", ["x"]))
        self.expect(
            "CreateCollection",
            "NOT_FOUND",
            lambda: es.create_collection(f"new-{phase}", f"no-such-encoder-{phase}"),
        )
        for _ in range(2):
            self.expect("Search", "NOT_FOUND", lambda: es.search("no-such-collection", "x"))
        for _ in range(2):  # text for an image encoder
            self.expect("Embed", "INVALID_ARGUMENT", lambda: es.embed(ENCODER, ["a red square"]))
        with grpc.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(3):
                health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                t.health_checks += 1
        self.bursts()

    def bursts(self) -> None:
        """Concurrent embeds past max_pending, until some are refused."""
        batch = images(self.rng, BURST_ITEMS)

        def embed(start: threading.Barrier) -> str:
            start.wait()
            try:
                self.client.embed(ENCODER, batch)
            except ResourceExhausted:
                return "RESOURCE_EXHAUSTED"
            return "OK"

        for _ in range(20):
            start = threading.Barrier(BURST)
            with ThreadPoolExecutor(BURST) as pool:
                codes = Counter(pool.map(embed, [start] * BURST))
            for code, n in codes.items():
                self.traffic.calls["Embed", code] += n
            self.traffic.embedded += codes["OK"] * BURST_ITEMS
            self.traffic.rejected += codes["RESOURCE_EXHAUSTED"]
            if codes["RESOURCE_EXHAUSTED"]:
                return
        pytest.fail(
            f"20 bursts of {BURST} concurrent embeds; max_pending {MAX_PENDING} refused none"
        )


@pytest.fixture(scope="module")
def traffic(server: ServeProcess, prometheus: Prometheus) -> Traffic:
    """Two phases of calls, with a scrape after each; then a snapshot and a last scrape."""
    t = Traffic()
    prometheus.scraped_after(time.time())
    for name, expr in {
        "health": f'sum(grpc_server_handled_total{{grpc_service="{HEALTH}"}})',
        "forward_items": "sum(embedspace_embed_batch_size_sum)",
        "forward_passes": "sum(embedspace_embed_batch_size_count)",
    }.items():
        t.before[name] = prometheus.value(expr)
    with Client(server.target, timeout=30) as es:
        caller = Caller(es, server.target, t)
        for info in caller.expect("ListEncoders", "OK", es.encoders):
            p = info.provenance
            backend = p.details.get("backend", "")
            t.encoders[info.name] = labels(
                encoder=info.name, kind=p.kind, backend=backend, sha256=p.sha256
            )
        caller.expect("CreateCollection", "OK", lambda: es.create_collection(COLLECTION, ENCODER))
        caller.phase(1)
        prometheus.scraped_after(time.time())
        snapshots = prometheus.value("embedspace_snapshot_seconds_count")
        caller.phase(2)
    # The second phase's upserts changed the collection: the timer saves it within a second.
    wait_for(
        lambda: prometheus.value("embedspace_snapshot_seconds_count") > snapshots,
        "snapshot after the second phase's upserts",
        prometheus,
    )
    prometheus.scraped_after(time.time())
    return t


def handled(prometheus: Prometheus) -> dict[Labels, float]:
    """grpc_server_handled_total of embedspace's methods, by method and code (non-zero)."""
    return prometheus.values(
        f'grpc_server_handled_total{{grpc_service="{SERVICE}"}} > 0', "grpc_method", "grpc_code"
    )


def test_handled_counts_every_call_by_method_and_status(
    prometheus: Prometheus, traffic: Traffic
) -> None:
    expected = {labels(grpc_method=m, grpc_code=c): float(n) for (m, c), n in traffic.calls.items()}
    assert handled(prometheus) == expected
    assert {"OK", "NOT_FOUND", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"} == {
        c for _, c in traffic.calls
    }
    types = prometheus.values(
        f'count by (grpc_type) (grpc_server_handled_total{{grpc_service="{SERVICE}"}} > 0)'
    )
    assert set(types) == {labels(grpc_type="unary")}
    # The health service on the main port is counted under its own name; the fixtures'
    # checks while waiting for SERVING came before.
    checks = prometheus.value(
        f'sum(grpc_server_handled_total{{grpc_service="{HEALTH}",grpc_method="Check",'
        'grpc_code="OK",grpc_type="unary"})'
    )
    assert checks - traffic.before["health"] == traffic.health_checks


def test_started_counts_agree_with_handled(prometheus: Prometheus, traffic: Traffic) -> None:
    per_method: Counter[str] = Counter()
    for (method, _), n in traffic.calls.items():
        per_method[method] += n
    started = prometheus.values(
        f'grpc_server_started_total{{grpc_service="{SERVICE}"}} > 0', "grpc_method"
    )
    assert started == {labels(grpc_method=m): float(n) for m, n in per_method.items()}

    # Every call started was handled, the health service's too: none is in flight.
    def by_method(counter: str) -> dict[Labels, float]:
        selector = f'{counter}{{grpc_service=~"{SERVICE}|{HEALTH}"}}'
        return prometheus.values(f"sum by (grpc_service, grpc_method) ({selector})")

    assert by_method("grpc_server_started_total") == by_method("grpc_server_handled_total")


def test_handling_seconds_histogram(prometheus: Prometheus, traffic: Traffic) -> None:
    p99 = prometheus.value(
        "histogram_quantile(0.99, sum by (le) (rate("
        f'grpc_server_handling_seconds_bucket{{grpc_service="{SERVICE}",grpc_method="Embed"}}[1m])))'
    )
    assert math.isfinite(p99) and p99 > 0
    buckets = prometheus.values(
        f'grpc_server_handling_seconds_bucket{{grpc_service="{SERVICE}",grpc_method="Search"}}',
        "le",
    )
    assert sorted(float(dict(k)["le"]) for k in buckets) == [*SECONDS, math.inf]
    searches = sum(n for (m, _), n in traffic.calls.items() if m == "Search")
    count = prometheus.value(
        f'grpc_server_handling_seconds_count{{grpc_service="{SERVICE}",grpc_method="Search"}}'
    )
    assert count == searches
    assert buckets[labels(le="+Inf")] == searches


def test_embedspace_histograms_count_the_work(prometheus: Prometheus, traffic: Traffic) -> None:
    items = prometheus.value("sum(embedspace_embed_batch_size_sum)")
    passes = prometheus.value("sum(embedspace_embed_batch_size_count)")
    assert prometheus.value(f'embedspace_embed_batch_size_count{{encoder="{ENCODER}"}}') > 0
    assert items - traffic.before["forward_items"] == traffic.embedded
    assert 0 < passes - traffic.before["forward_passes"] <= traffic.embedded
    assert prometheus.value(f'embedspace_forward_pass_seconds_count{{encoder="{ENCODER}"}}') > 0
    sizes = prometheus.values(f'embedspace_embed_batch_size_bucket{{encoder="{ENCODER}"}}', "le")
    assert sorted(float(dict(k)["le"]) for k in sizes) == [*SIZES, math.inf]
    # One query per Search call; each reached FAISS, alone or in a shared call.
    faiss = f'{{collection="{COLLECTION}"}}'
    assert prometheus.value(f"embedspace_faiss_batch_size_sum{faiss}") == traffic.searches
    assert 0 < prometheus.value(f"embedspace_faiss_seconds_count{faiss}") <= traffic.searches
    # One append to the log per upsert, each synced (at least once, for all of them).
    assert prometheus.value("embedspace_wal_append_seconds_count") == traffic.upserts
    assert 0 < prometheus.value("embedspace_wal_fsync_seconds_count") <= traffic.upserts
    assert prometheus.value("embedspace_snapshot_seconds_count") >= 1
    assert prometheus.value("embedspace_snapshot_bytes_total") > 0


def test_pending_limit_and_rejections(prometheus: Prometheus, traffic: Traffic) -> None:
    assert prometheus.value("embedspace_max_pending_calls") == MAX_PENDING
    rejected = prometheus.values("embedspace_calls_rejected_total", "encoder", "collection")
    assert rejected == {labels(encoder=ENCODER, collection=""): traffic.rejected}
    assert traffic.calls["Embed", "RESOURCE_EXHAUSTED"] == traffic.rejected > 0
    pending = prometheus.values("embedspace_calls_pending", "encoder", "collection")
    assert labels(encoder=ENCODER, collection="") in pending
    assert any(dict(key)["collection"] == COLLECTION for key in pending), pending
    assert set(pending.values()) == {0.0}  # no call in flight


def test_collection_encoder_and_build_gauges(prometheus: Prometheus, traffic: Traffic) -> None:
    vectors = prometheus.values("embedspace_collection_vectors", "collection")
    assert vectors == {labels(collection=COLLECTION): traffic.vectors}
    tombstones = prometheus.values("embedspace_collection_tombstones", "collection")
    assert set(tombstones) <= {labels(collection=COLLECTION)}
    # One series per encoder, with what ListEncoders says of it.
    encoders = prometheus.values("embedspace_encoder_info", "encoder", "kind", "backend", "sha256")
    assert encoders == {info: 1.0 for info in traffic.encoders.values()}
    assert set(traffic.encoders) == {ENCODER, "rgb"}
    (build,) = prometheus.query("embedspace_build_info")
    assert build["value"][1] == "1"
    info = build["metric"]
    assert info["version"] == __version__
    assert info["python_version"] == platform.python_version()
    assert info["grpc_version"] == grpc.__version__
    assert info["faiss_version"] and info["faiss_simd"]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the dashboard, its variables replaced."""
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: a variable this test does not know"
            queries.append((panel["title"], expr))
    return queries


def test_every_dashboard_query_returns_data(prometheus: Prometheus, traffic: Traffic) -> None:
    """Every panel shows something after ordinary traffic: each query returns samples, at
    least one of them a number (a quantile over no observations is NaN)."""
    queries = dashboard_queries()
    assert len(queries) >= 14
    empty = []
    for title, expr in queries:
        values = prometheus.values(expr)
        if not any(math.isfinite(v) for v in values.values()):
            empty.append(f"{title}: {expr} -> {values}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def test_label_values_are_bounded(prometheus: Prometheus, traffic: Traffic) -> None:
    """Names a client sends (an unknown encoder, a collection that does not exist) never
    become label values: encoders come from the settings, collections from the catalogue
    (the rest are `other`)."""
    encoders = prometheus.values('count by (encoder) ({__name__=~"embedspace_.+"})', "encoder")
    assert {dict(key)["encoder"] for key in encoders} <= {*traffic.encoders, "other", ""}
    collections = prometheus.values(
        'count by (collection) ({__name__=~"embedspace_.+"})', "collection"
    )
    assert {dict(key)["collection"] for key in collections} <= {COLLECTION, "other", ""}

"""The metrics endpoint of an in-process server: label values stay bounded whatever clients
send, both exposition formats are served, and the port is reported and checked.

Counters belong to the process, which other in-process servers of the test session share,
so these tests compare counts before and after their own calls. tests/test_prometheus.py
scrapes a server process with a real Prometheus.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

import numpy as np
import pytest
from embedspace import Client
from embedspace.errors import EmbedspaceError
from embedspace_server.errors import FailedPrecondition
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.headers["Content-Type"], reply.read().decode()


def samples(port: int) -> Samples:
    _, text = scrape(port)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def values(found: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of `name` by the value of one label."""
    return {dict(labels)[label]: v for (n, labels), v in found.items() if n == name}


def test_collections_past_the_limit_share_one_label(start_server: Any) -> None:
    with start_server(metrics_port=0, metrics_max_collections=2) as server:
        port = server.server.metrics_port
        before = values(samples(port), "embedspace_faiss_seconds_count", "collection")
        with Client(server.target) as es:
            for name in ("limit-1", "limit-2", "limit-3"):
                es.create_collection(name, "vec8")
                es.upsert(name, ["a", "b"], vectors=np.eye(2, 8, dtype=np.float32))
                es.search(name, np.ones(8, np.float32), k=1)
            for _ in range(3):  # names that exist nowhere never become label values
                with pytest.raises(EmbedspaceError):
                    es.search("no-such-collection", np.ones(8, np.float32), k=1)
        found = samples(port)
    assert values(found, "embedspace_collection_vectors", "collection") == {
        "limit-1": 2,
        "limit-2": 2,
        "other": 2,
    }
    # The histograms belong to the process: count what this server's searches added.
    after = values(found, "embedspace_faiss_seconds_count", "collection")
    grown = {label: n - before.get(label, 0) for label, n in after.items()}
    assert {label: n for label, n in grown.items() if n} == {"limit-1": 1, "limit-2": 1, "other": 1}
    labels = {dict(k[1]).get("collection") for k in found if k[0].startswith("embedspace_")}
    assert "limit-3" not in labels and "no-such-collection" not in labels


def test_calls_refused_for_want_of_a_token_keep_their_method_and_type(
    start_server: Any,
) -> None:
    """The refusal answers before reading the request, as a stream whatever the method's
    shape; the metrics still name the method and its real type."""
    with start_server(metrics_port=0, tokens="s3cret") as server:
        port = server.server.metrics_port
        with Client(server.target) as es, pytest.raises(EmbedspaceError):
            es.encoders()
        with Client(server.target, token="s3cret") as es:
            es.encoders()
        found = samples(port)
    handled = values(found, "grpc_server_handled_total", "grpc_code")
    assert handled.keys() >= {"UNAUTHENTICATED", "OK"}
    refused = [
        dict(labels)
        for (name, labels), _ in found.items()
        if name == "grpc_server_handled_total" and dict(labels)["grpc_code"] == "UNAUTHENTICATED"
    ]
    assert refused == [
        {"grpc_code": "UNAUTHENTICATED", "grpc_method": "ListEncoders",
         "grpc_service": "embedspace.v1.Embedspace", "grpc_type": "unary"}
    ]  # fmt: skip


def test_each_call_is_counted_once_by_method_and_code(start_server: Any) -> None:
    with start_server(metrics_port=0) as server:
        port = server.server.metrics_port
        key = ("unary", "embedspace.v1.Embedspace", "ListEncoders")
        before = samples(port)
        with Client(server.target) as es:
            for _ in range(3):
                es.encoders()
            with pytest.raises(EmbedspaceError):
                es.describe("no-such-collection")
        after = samples(port)

    def grew(name: str, method: tuple[str, ...], code: str | None = None) -> float:
        """How much one series grew between the two scrapes."""
        labels = dict(zip(("grpc_type", "grpc_service", "grpc_method"), method, strict=True))
        if code is not None:
            labels["grpc_code"] = code
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    describe = ("unary", "embedspace.v1.Embedspace", "DescribeCollection")
    assert grew("grpc_server_handled_total", key, "OK") == 3
    assert grew("grpc_server_started_total", key) == 3
    assert grew("grpc_server_handled_total", describe, "NOT_FOUND") == 1
    assert grew("grpc_server_handling_seconds_count", key) == 3


def test_openmetrics_is_served_when_asked_for(start_server: Any) -> None:
    with start_server(metrics_port=0) as server:
        port = server.server.metrics_port
        text_type, text = scrape(port)
        open_type, open_text = scrape(port, "application/openmetrics-text; version=1.0.0")
    assert text_type.startswith("text/plain") and "# EOF" not in text
    assert open_type.startswith("application/openmetrics-text")
    assert open_text.rstrip().endswith("# EOF")
    assert "embedspace_build_info{" in open_text and "grpc_server_started_total" in text


def test_the_metrics_port_is_in_the_port_file_and_a_busy_one_is_refused(
    start_server: Any, tmp_path: Any
) -> None:
    port_file = tmp_path / "ports.json"
    with start_server(metrics_port=0, port_file=str(port_file)) as server:
        ports = json.loads(port_file.read_text())
        assert ports["metrics_port"] == server.server.metrics_port > 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        refused = pytest.raises(FailedPrecondition, match=rf"127.0.0.1:{taken} \(metrics_port\)")
        with refused, start_server(tmp_path / "other", metrics_port=taken):
            pass

"""deploy/: the Kubernetes manifests are valid against the Kubernetes schemas (offline, with
kubernetes-validate), and agree with the image, with the server's settings and with each
other; the ServiceMonitor (a custom resource kubernetes-validate has no schema for) is
checked field by field, and the Grafana dashboard's structure too (its queries run against
a real Prometheus in tests/test_prometheus.py)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from embedspace_server.config import Settings, load_settings

from .conftest import REPO
from .test_container import RESTRICTED

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "embedspace.json"
# Custom resources: only for clusters with the Prometheus Operator, so never in the
# kustomization's resources (its comment says how to add them).
OPTIONAL = {"servicemonitor.yaml"}
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# gRPC probes are GA from 1.27; the newest schemas kubernetes-validate carries too.
VERSIONS = ["1.27", kubernetes_validate.latest_version()]
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
TLS_DIR = "/etc/embedspace/tls"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every manifest in deploy/ by file name, the kustomization aside."""
    return {
        p.name: documents(p)
        for p in sorted(DEPLOY.glob("*.yaml"))
        if p.name != "kustomization.yaml"
    }


def one(kind: str) -> dict[str, Any]:
    found = [doc for docs in manifests().values() for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    (only,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(only)


def container_ports() -> dict[str, int]:
    """The container's ports by name."""
    ports = container()["ports"]
    named = {p["name"]: p["containerPort"] for p in ports}
    assert len(named) == len(ports), "two container ports with one name"
    return named


def plain_env() -> dict[str, str]:
    """The container's variables that have a value of their own (not from a reference)."""
    return {e["name"]: e["value"] for e in container()["env"] if "value" in e}


def dockerfile() -> dict[str, Any]:
    """What the runtime stage declares: user, exposed ports, volume, and the serve flags."""
    text = (REPO / "Dockerfile").read_text()
    runtime = text[text.rindex("\nFROM ") :]
    cmd = json.loads(re.findall(r"^CMD\s+(\[.*\])\s*$", runtime, re.M)[-1])
    flags = dict(zip(cmd[::2], cmd[1::2], strict=True))
    return {
        "user": re.findall(r"^USER\s+(\S+)", runtime, re.M)[-1],
        "expose": [
            int(port)
            for line in re.findall(r"^EXPOSE\s+(.+)$", runtime, re.M)
            for port in line.split()
        ],
        "volume": json.loads(re.findall(r"^VOLUME\s+(\[.*\])", runtime, re.M)[-1]),
        "port": int(flags["--port"]),
        "data_dir": flags["--data-dir"],
    }


def validation_errors(docs: list[tuple[str, dict[str, Any]]], version: str) -> list[str]:
    """What kubernetes-validate finds wrong in each (name, document), strictly."""
    errors = []
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(part) for part in e.absolute_path)
            errors.append(f"{name}: {doc['kind']} {where}: {e.message}")
    return errors


def is_custom(doc: dict[str, Any]) -> bool:
    return (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    docs = [(name, doc) for name, docs in manifests().items() for doc in docs if not is_custom(doc)]
    errors = validation_errors(docs, version)
    assert not errors, f"not valid Kubernetes {version}:\n" + "\n".join(errors)


def test_the_custom_resources_are_ones_kubernetes_validate_cannot_check() -> None:
    """The ServiceMonitor is checked here by hand (test_the_service_monitor_...) because
    kubernetes-validate has no schema for it; should it gain one, validate it instead."""
    custom = [doc for docs in manifests().values() for doc in docs if is_custom(doc)]
    assert [doc["kind"] for doc in custom] == ["ServiceMonitor"]
    for doc in custom:
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_kustomization_applies_every_manifest_but_the_example_and_optional_ones() -> None:
    text = (DEPLOY / "kustomization.yaml").read_text()
    (kustomization,) = documents(DEPLOY / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    examples = {name for name in manifests() if name.endswith(".example.yaml")}
    assert examples == {"secret.example.yaml"}
    assert set(manifests()) >= OPTIONAL
    assert sorted(kustomization["resources"]) == sorted(set(manifests()) - examples - OPTIONAL)
    # The comment says how to add each optional manifest.
    for name in OPTIONAL:
        assert f"kustomize edit add resource {name}" in text, name


def test_the_ports_agree_with_the_image_and_the_settings() -> None:
    image = dockerfile()
    ports = container_ports()
    assert set(ports) == {"grpc", "health", "metrics"}
    assert ports["grpc"] == image["port"] == Settings().port
    env = plain_env()
    settings = load_settings(env=env)
    assert ports["health"] == int(env["EMBEDSPACE_HEALTH_PORT"]) == settings.health_port
    assert ports["metrics"] == int(env["EMBEDSPACE_METRICS_PORT"]) == settings.metrics_port
    assert len(set(ports.values())) == 3
    # The image documents the API port and the metrics port; the health port is only the
    # probes' business, inside the pod.
    assert sorted(image["expose"]) == sorted([ports["grpc"], ports["metrics"]])
    service = {p["name"]: p for p in one("Service")["spec"]["ports"]}
    assert set(service) == {"grpc", "metrics"}
    for name, port in service.items():
        assert port["targetPort"] == name and port["port"] == ports[name], name


def test_the_probes_call_the_grpc_health_service_on_the_plaintext_health_port() -> None:
    ports = container_ports()
    for probe in PROBES:
        assert container()[probe]["grpc"] == {"port": ports["health"]}, probe
        assert container()[probe]["grpc"]["port"] != ports["grpc"], probe


def test_the_pod_annotations_point_prometheus_at_the_metrics_port() -> None:
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    metrics_port = container_ports()["metrics"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics_port),
        "prometheus.io/path": "/metrics",
    }
    assert metrics_port == load_settings(env=plain_env()).metrics_port


def test_the_service_monitor_selects_the_service_metrics_port() -> None:
    """What the Prometheus Operator needs of a ServiceMonitor (monitoring.coreos.com/v1):
    a selector that matches the Service's labels and endpoints that name its ports."""
    monitor = one("ServiceMonitor")
    service = one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert monitor["metadata"]["name"] == service["metadata"]["name"]
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    assert set(spec["selector"]) == {"matchLabels"}
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
    assert endpoint["port"] in service_ports
    assert service_ports[endpoint["port"]]["targetPort"] == "metrics"
    assert endpoint.get("path", "/metrics") == annotations["prometheus.io/path"]
    assert re.fullmatch(r"\d+s", endpoint["interval"])


def test_the_selectors_pick_the_pods() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one("Service")["spec"]["selector"].items() <= labels.items()


def test_one_pod_owns_the_data_volume_at_the_image_data_dir() -> None:
    image = dockerfile()
    deployment = one("Deployment")
    # ReadWriteOnce and the server's LOCK file: never two pods on the data, even in a rollout.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert one("PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    claim = volumes[mounts[image["data_dir"]]]["persistentVolumeClaim"]["claimName"]
    assert claim == one("PersistentVolumeClaim")["metadata"]["name"]
    assert image["volume"] == [image["data_dir"]]


def test_the_pod_runs_as_the_image_user_as_the_container_test_runs_it() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    uid, gid = (int(x) for x in dockerfile()["user"].split(":"))
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (uid, gid, gid)
    # tests/test_container.py runs the image with these restrictions as docker run flags.
    restricted = container()["securityContext"]
    assert restricted == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    flags = " ".join(RESTRICTED)
    for flag in (f"--user {uid}:{gid}", "--read-only", "--cap-drop ALL", "no-new-privileges"):
        assert flag in flags
    # A read-only root needs a writable /tmp, as the container test gives it.
    assert "--tmpfs /tmp" in flags
    volumes = {v["name"]: v for v in pod["volumes"]}
    tmp = [m["name"] for m in container()["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]]


def test_the_token_and_tls_files_come_from_the_secret() -> None:
    secret = one("Secret")
    keys = set(secret["stringData"])
    env = {e["name"]: e for e in container()["env"]}
    tokens = env["EMBEDSPACE_TOKENS"]["valueFrom"]["secretKeyRef"]
    assert tokens["name"] == secret["metadata"]["name"] and tokens["key"] in keys
    volumes = {v["name"]: v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [m for m in container()["volumeMounts"] if m["mountPath"] == TLS_DIR]
    assert mount.get("readOnly") is True
    source = volumes[mount["name"]]["secret"]
    assert source["secretName"] == secret["metadata"]["name"]
    assert {i["path"]: i["key"] for i in source["items"]} == {
        "tls.crt": "tls.crt",
        "tls.key": "tls.key",
    }
    assert {"tls.crt", "tls.key"} <= keys


def test_tls_is_never_on_where_the_grpc_probes_call() -> None:
    """Kubernetes' gRPC probes speak plaintext: TLS on their port would fail every probe.
    They call the health port, which is always plaintext; TLS, when on, is the main port's."""
    env = {e["name"]: e.get("value") for e in container()["env"]}
    probed = {container()[p]["grpc"]["port"] for p in PROBES}
    assert probed == {container_ports()["health"]}
    assert container_ports()["grpc"] not in probed
    if "EMBEDSPACE_TLS_CERT" in env or "EMBEDSPACE_TLS_KEY" in env:
        assert env["EMBEDSPACE_TLS_CERT"] == f"{TLS_DIR}/tls.crt"
        assert env["EMBEDSPACE_TLS_KEY"] == f"{TLS_DIR}/tls.key"


def test_every_variable_the_pod_sets_is_a_server_setting() -> None:
    """A misspelt EMBEDSPACE_* variable would be ignored, silently (EMBEDSPACE_TOKEN is the
    client's; the server reads EMBEDSPACE_TOKENS)."""
    secret = one("Secret")["stringData"]
    env = {}
    for var in container()["env"]:
        source = var.get("valueFrom", {})
        if "secretKeyRef" in source:
            env[var["name"]] = secret[source["secretKeyRef"]["key"]]
        elif "resourceFieldRef" in source:
            limits = container()["resources"]["limits"]
            env[var["name"]] = str(
                int(_quantity(limits[source["resourceFieldRef"]["resource"].split(".")[1]]))
            )
        else:
            env[var["name"]] = var["value"]
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {"health_port", "metrics_port"} <= fields
    for name in env:
        assert name.startswith("EMBEDSPACE_") and name.removeprefix("EMBEDSPACE_").lower() in fields
    settings = load_settings(env=env)
    assert settings.tokens == secret["tokens"]
    assert (settings.health_port, settings.metrics_port) == (50052, 9464)
    cpus = _quantity(container()["resources"]["limits"]["cpu"])
    assert settings.encoder_threads == settings.faiss_threads == cpus


def test_the_pod_gets_longer_to_stop_than_the_server_takes_to_drain() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["terminationGracePeriodSeconds"] > Settings().grace_period_s


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?", str(value))
    assert match, value
    return float(match[1]) * units.get(match[2] or "", 1)


def test_the_requests_fit_under_the_limits() -> None:
    resources = container()["resources"]
    for kind in ("cpu", "memory"):
        assert _quantity(resources["requests"][kind]) <= _quantity(resources["limits"][kind])
    # Measured: the server holds about 530 MiB once SERVING (tests/test_container.py).
    assert _quantity(resources["requests"]["memory"]) >= 600 * 2**20


def test_the_dashboard_is_a_grafana_dashboard_of_prometheus_queries() -> None:
    """deploy/grafana/embedspace.json imports into Grafana (10 or newer): one Prometheus
    data source variable, and every panel's queries go to it. What the queries return is
    tested against a real Prometheus (tests/test_prometheus.py)."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    source = {"type": "prometheus", "uid": "${datasource}"}
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "two panels with one id"
    queried = [panel for panel in panels if panel["type"] != "row"]
    assert len(queried) >= 12
    for panel in queried:
        title = panel["title"]
        assert panel["datasource"] == source, title
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24 and box["h"] > 0, title
        targets = panel["targets"]
        assert targets, f"{title}: no queries"
        assert len({t["refId"] for t in targets}) == len(targets), title
        for target in targets:
            assert target["datasource"] == source, title
            expr = target["expr"]
            assert isinstance(expr, str) and expr.strip(), f"{title}: a target without expr"
            assert "datasource" not in expr, title

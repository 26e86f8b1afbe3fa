"""deploy/: the Kubernetes manifests are valid against the Kubernetes schemas (offline, with
kubernetes-validate), and agree with the image and with each other."""

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


def dockerfile() -> dict[str, Any]:
    """What the runtime stage declares: user, exposed port, volume, and the serve flags."""
    text = (REPO / "Dockerfile").read_text()
    runtime = text[text.rindex("\nFROM ") :]
    cmd = json.loads(re.findall(r"^CMD\s+(\[.*\])\s*$", runtime, re.M)[-1])
    flags = dict(zip(cmd[::2], cmd[1::2], strict=True))
    return {
        "user": re.findall(r"^USER\s+(\S+)", runtime, re.M)[-1],
        "expose": int(re.findall(r"^EXPOSE\s+(\d+)", runtime, re.M)[-1]),
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


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    docs = [(name, doc) for name, docs in manifests().items() for doc in docs]
    errors = validation_errors(docs, version)
    assert not errors, f"not valid Kubernetes {version}:\n" + "\n".join(errors)


def test_the_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    (kustomization,) = documents(DEPLOY / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    examples = {name for name in manifests() if name.endswith(".example.yaml")}
    assert examples == {"secret.example.yaml"}
    assert sorted(kustomization["resources"]) == sorted(set(manifests()) - examples)


def test_the_probes_call_the_grpc_health_service_on_the_served_port() -> None:
    image = dockerfile()
    (port,) = container()["ports"]
    assert port["containerPort"] == image["port"] == image["expose"]
    for probe in PROBES:
        assert container()[probe]["grpc"] == {"port": port["containerPort"]}, probe
    (service_port,) = one("Service")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]


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
    """Kubernetes' gRPC probes speak plaintext: TLS on their port would fail every probe."""
    env = {e["name"]: e.get("value") for e in container()["env"]}
    probed = {container()[p]["grpc"]["port"] for p in PROBES}
    (port,) = container()["ports"]
    if "EMBEDSPACE_TLS_CERT" in env or "EMBEDSPACE_TLS_KEY" in env:
        assert port["containerPort"] not in probed
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
    for name in env:
        assert name.startswith("EMBEDSPACE_") and name.removeprefix("EMBEDSPACE_").lower() in fields
    settings = load_settings(env=env)
    assert settings.tokens == secret["tokens"]
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

"""deploy/ray/: the KubeRay manifests run what the product runs (the image of deploy/, the
server's default port, `embedspace serve --ray auto` beside Ray's head), keep each worker's
shard replicas on the volume the front end names, and size the workers by the README's
memory plan. The Service and the pod templates are checked against the Kubernetes schemas
(offline, with kubernetes-validate); the RayCluster itself is a custom resource that
kubernetes-validate has no schema for, so its fields are checked here one by one."""

from __future__ import annotations

import dataclasses
import re
import shlex
import tomllib
from typing import Any

import pytest
from embedspace_server.config import Settings, load_settings

from .conftest import REPO
from .test_deploy import VERSIONS, dockerfile, documents, validation_errors

RAY = REPO / "deploy" / "ray"
GIB = 2**30
RAY_AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")

# The memory plan for 1 billion 384-d vectors (README, "Running on a Ray cluster"). Measured
# by bench/memory_plan.py (100,000 MiniLM word vectors, faiss 1.15.1, 20-character ids): a
# replica's collection over HNSW32,SQ8 holds 771 B per vector (662 of index, 105 of ids);
# taking a snapshot needs 1423 B per vector of the shard above that for a moment; the
# snapshot file is 679 B per vector; an idle actor holding an empty collection is 107 MiB.
VECTORS = 10**9
SHARDS = 48
REPLICAS = 2
COLLECTION_BYTES = 771  # per vector, index and ids
SNAPSHOT_PEAK_BYTES = 1423  # per vector of the shard being snapshotted
SNAPSHOT_FILE_BYTES = 679  # per vector
ACTOR_BYTES = 107 * 2**20
# Allowances, not measurements: Ray's own processes on a worker (raylet, agents, up to one
# idle 93 MiB worker per CPU); snapshots the plan leaves room for at once; the share of a
# container's memory past which Ray's memory monitor kills processes; the write-ahead logs
# of a worker's replicas (the writes since their last snapshots).
RAY_NODE_BYTES = 4 * GIB
CONCURRENT_SNAPSHOTS = 2
RAY_MEMORY_THRESHOLD = 0.95
LOG_BYTES = 16 * GIB


def quantity(value: str) -> float:
    """A Kubernetes quantity in base units (bytes, cores)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?", str(value))
    assert match, value
    return float(match[1]) * units.get(match[2] or "", 1)


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        p.name: documents(p) for p in sorted(RAY.glob("*.yaml")) if p.name != "kustomization.yaml"
    }


def one(kind: str) -> dict[str, Any]:
    found = [doc for docs in manifests().values() for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/ray/, found {len(found)}"
    return found[0]


def cluster() -> dict[str, Any]:
    return one("RayCluster")


def head_pod() -> dict[str, Any]:
    return dict(cluster()["spec"]["headGroupSpec"]["template"])


def worker_group() -> dict[str, Any]:
    (group,) = cluster()["spec"]["workerGroupSpecs"]
    return dict(group)


def container(template: dict[str, Any]) -> dict[str, Any]:
    (only,) = template["spec"]["containers"]
    return dict(only)


def steps(c: dict[str, Any]) -> list[list[str]]:
    """The container's shell script as commands (split at &&), each without a leading exec."""
    assert c["command"][-2:] == ["/bin/bash", "-c"], c["command"]
    (script,) = c["args"]
    out: list[list[str]] = [[]]
    for word in shlex.split(script):
        if word == "&&":
            out.append([])
        else:
            out[-1].append(word)
    return [s[1:] if s[:1] == ["exec"] else s for s in out]


def flags(words: list[str]) -> dict[str, str | bool]:
    """--name=value, --name value and bare --name (True)."""
    out: dict[str, str | bool] = {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        if "=" in word:
            name, value = word[2:].split("=", 1)
            out[name] = value
        elif i + 1 < len(words) and not words[i + 1].startswith("--"):
            out[word[2:]] = words[i + 1]
        else:
            out[word[2:]] = True
    return out


def step(c: dict[str, Any], *prefix: str) -> dict[str, str | bool]:
    found = [s for s in steps(c) if s[: len(prefix)] == list(prefix)]
    assert len(found) == 1, f"expected one `{' '.join(prefix)}` in {c['name']}, got {found}"
    return flags(found[0][len(prefix) :])


def env(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def ports(c: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c["ports"]}


def mounts(c: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in c["volumeMounts"]}


def volumes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in template["spec"]["volumes"]}


# ------------------------------------------------------------------ shape


def test_the_kustomization_applies_every_manifest() -> None:
    (kustomization,) = documents(RAY / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(manifests())


def test_a_kuberay_v1_raycluster_that_runs_the_containers_as_written() -> None:
    ray_cluster = cluster()
    assert (ray_cluster["apiVersion"], ray_cluster["kind"]) == ("ray.io/v1", "RayCluster")
    # Without it, KubeRay would wrap the commands in its own `ray start ... --block`.
    assert ray_cluster["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    # The Ray the image installs: the `ray` extra's pin.
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (pin,) = extras["optional-dependencies"]["ray"]
    assert pin == f"ray=={ray_cluster['spec']['rayVersion']}"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_service_and_the_pod_templates_are_valid_kubernetes(version: str) -> None:
    """The Service as it is; each pod template as a core v1 PodTemplate, so every field of
    the pods KubeRay makes from it is checked against the Kubernetes schema."""
    groups = {"head": head_pod(), "worker": worker_group()["template"]}
    docs = [("service.yaml", one("Service"))] + [
        (
            f"raycluster.yaml {name}",
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": f"embedspace-{name}"},
                "template": template,
            },
        )
        for name, template in groups.items()
    ]
    errors = validation_errors(docs, version)
    assert not errors, f"not valid Kubernetes {version}:\n" + "\n".join(errors)


def test_every_image_is_the_one_deploy_runs() -> None:
    (deployment,) = documents(REPO / "deploy" / "deployment.yaml")
    (image,) = {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert container(head_pod())["image"] == image
    assert container(worker_group()["template"])["image"] == image


# ------------------------------------------------------------------ the head


def test_the_head_starts_rays_head_and_then_the_front_end_on_the_cluster() -> None:
    head = container(head_pod())
    commands = [s[:3] for s in steps(head)]
    assert ["ray", "start", "--head"] in commands
    assert ["embedspace", "serve", "--ray"] in commands
    assert commands.index(["ray", "start", "--head"]) < commands.index(
        ["embedspace", "serve", "--ray"]
    )
    assert step(head, "embedspace", "serve")["ray"] == "auto"
    # The last command replaces the shell, so SIGTERM reaches the server (tini forwards it).
    (script,) = head["args"]
    assert shlex.split(script)[-len(steps(head)[-1]) - 1] == "exec"
    assert steps(head)[-1][:2] == ["embedspace", "serve"]
    assert head["command"][:2] == ["tini", "--"]


def test_the_front_end_serves_the_products_port_and_a_health_port_the_probes_call() -> None:
    head = container(head_pod())
    serve = step(head, "embedspace", "serve")
    image = dockerfile()
    assert int(str(serve["port"])) == Settings().port == image["port"] == ports(head)["grpc"]
    assert serve["data-dir"] == image["data_dir"]
    health = int(env(head)["EMBEDSPACE_HEALTH_PORT"]["value"])
    assert health == ports(head)["health"] != ports(head)["grpc"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert head[probe]["grpc"] == {"port": health}, probe
    (service_port,) = one("Service")["spec"]["ports"]
    assert service_port["port"] == Settings().port and service_port["targetPort"] == "grpc"


def test_prometheus_scrapes_the_front_ends_metrics_port() -> None:
    template = head_pod()
    head = container(template)
    metrics = int(env(head)["EMBEDSPACE_METRICS_PORT"]["value"])
    assert metrics == ports(head)["metrics"] not in (ports(head)["grpc"], ports(head)["health"])
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics),
        "prometheus.io/path": "/metrics",
    }


def test_the_service_selects_the_head_pod_only() -> None:
    selector = one("Service")["spec"]["selector"].items()
    assert selector <= head_pod()["metadata"]["labels"].items()
    assert not selector <= worker_group()["template"]["metadata"]["labels"].items()


def test_no_replica_is_placed_on_the_head_and_the_workers_join_its_gcs() -> None:
    """Replicas reserve a sliver of CPU; a head with none never gets one."""
    head = container(head_pod())
    start = step(head, "ray", "start")
    assert start["num-cpus"] == "0"
    gcs = int(str(start["port"]))
    assert ports(head)["gcs-server"] == gcs  # KubeRay's head Service is made from these
    assert int(cluster()["spec"]["headGroupSpec"]["rayStartParams"]["port"]) == gcs
    worker_start = step(container(worker_group()["template"]), "ray", "start")
    assert worker_start["address"] == "${RAY_ADDRESS}"  # set by KubeRay: head Service:port
    assert "head" not in worker_start


def test_every_variable_the_head_sets_is_a_server_setting_or_rays_token() -> None:
    """A misspelt EMBEDSPACE_* variable would be ignored, silently."""
    head = container(head_pod())
    fields = {f.name for f in dataclasses.fields(Settings)}
    values = {}
    for name, var in env(head).items():
        if name in RAY_AUTH:
            continue
        assert name.startswith("EMBEDSPACE_"), name
        assert name.removeprefix("EMBEDSPACE_").lower() in fields, f"{name} is no setting"
        source = var.get("valueFrom", {})
        if "resourceFieldRef" in source:
            resource = source["resourceFieldRef"]["resource"].split(".")[1]
            values[name] = str(int(quantity(head["resources"]["limits"][resource])))
        elif "secretKeyRef" in source:
            assert source["secretKeyRef"] == {"name": "embedspace", "key": "tokens"}
            values[name] = "a-token"
        else:
            values[name] = var["value"]
    settings = load_settings(env=values)
    cpus = quantity(head["resources"]["limits"]["cpu"])
    assert settings.encoder_threads == settings.faiss_threads == cpus


def test_every_ray_process_authenticates_with_one_token_from_the_secret() -> None:
    """Ray 2.60 turns token authentication on only where it finds a token; without one, a
    Ray cluster runs any code sent to its ports. Every pod takes the same one."""
    for c in (container(head_pod()), container(worker_group()["template"])):
        variables = env(c)
        assert variables[RAY_AUTH[0]]["value"] == "token", c["name"]
        source = variables[RAY_AUTH[1]]["valueFrom"]["secretKeyRef"]
        assert source == {"name": "embedspace", "key": "ray-token"}, c["name"]
        assert not source.get("optional", False)


# ------------------------------------------------------------------ the workers


def test_each_worker_keeps_its_replicas_on_its_own_volume_where_the_front_end_says() -> None:
    data_dir = env(container(head_pod()))["EMBEDSPACE_RAY_DATA_DIR"]["value"]
    assert load_settings(env={"EMBEDSPACE_RAY_DATA_DIR": data_dir}).ray_data_dir == data_dir
    template = worker_group()["template"]
    name = mounts(container(template))[data_dir]
    claim = volumes(template)[name]["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    # A folder of its own, not the data directory, where the front end keeps its own files.
    assert data_dir != dockerfile()["data_dir"]


def test_the_workers_are_a_fixed_number_of_ray_nodes_that_block() -> None:
    group = worker_group()
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"]
    # A lost worker's replicas need a worker that holds no other replica of their shard.
    assert group["replicas"] >= REPLICAS + 1
    worker = container(group["template"])
    start = step(worker, "ray", "start")
    assert start["block"] is True  # the container ends when a Ray process of the node dies
    assert worker["command"][:2] == ["tini", "--"]


def test_every_ray_container_has_its_own_probes() -> None:
    """KubeRay injects probes that run wget against Ray's dashboard agent into a container
    that has none: the image has neither, so those would fail and restart every pod."""
    head = container(head_pod())
    worker = container(worker_group()["template"])
    for c in (head, worker):
        assert "readinessProbe" in c and "livenessProbe" in c, c["name"]
    raylet = int(str(step(worker, "ray", "start")["node-manager-port"]))
    assert ports(worker)["raylet"] == raylet
    for probe in ("readinessProbe", "livenessProbe"):
        assert worker[probe]["tcpSocket"] == {"port": raylet}, probe


def test_the_pods_run_as_the_image_user_with_a_read_only_root() -> None:
    uid, gid = (int(x) for x in dockerfile()["user"].split(":"))
    for template in (head_pod(), worker_group()["template"]):
        pod = template["spec"]
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (uid, gid, gid)
        c = container(template)
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        # Ray's session folder is /tmp/ray: a read-only root needs a writable /tmp.
        assert "emptyDir" in volumes(template)[mounts(c)["/tmp"]]
        assert pod["terminationGracePeriodSeconds"] > Settings().grace_period_s


# ------------------------------------------------------------------ the memory plan


def plan_per_worker(workers: int) -> dict[str, float]:
    """The README's arithmetic for one worker, once one of `workers` is lost: Ray places the
    lost replicas on the others whatever their memory, so each must hold its share then."""
    survivors = workers - 1
    copies = REPLICAS / survivors  # of the whole collection, per surviving worker
    actors = -(-SHARDS * REPLICAS // survivors)
    shard = VECTORS / SHARDS
    used = (
        VECTORS * COLLECTION_BYTES * copies
        + actors * ACTOR_BYTES
        + RAY_NODE_BYTES
        + CONCURRENT_SNAPSHOTS * shard * SNAPSHOT_PEAK_BYTES
    )
    return {
        "memory": used / RAY_MEMORY_THRESHOLD,
        "shard_state": shard * SNAPSHOT_FILE_BYTES,  # what a sync carries: index and ids
        "disk": VECTORS * SNAPSHOT_FILE_BYTES * copies
        + CONCURRENT_SNAPSHOTS * shard * SNAPSHOT_FILE_BYTES  # a new one beside the old
        + LOG_BYTES,
    }


def test_the_workers_memory_is_the_plans() -> None:
    group = worker_group()
    worker = container(group["template"])
    resources = worker["resources"]
    assert resources["requests"] == resources["limits"]
    plan = plan_per_worker(group["replicas"])
    limit = quantity(resources["limits"]["memory"])
    store = int(str(step(worker, "ray", "start")["object-store-memory"]))
    # The object store (/dev/shm) is the container's memory too: room for one shard's
    # state on its way to a replica being rebuilt, on top of the rest.
    assert store >= plan["shard_state"]
    needed = plan["memory"] + store
    assert limit >= needed, f"{limit / GIB:.0f} GiB < {needed / GIB:.0f} GiB the plan needs"
    assert limit <= 1.1 * needed, f"{limit / GIB:.0f} GiB: far above the plan's {needed / GIB:.0f}"


def test_the_workers_disk_is_the_plans() -> None:
    template = worker_group()["template"]
    data_dir = env(container(head_pod()))["EMBEDSPACE_RAY_DATA_DIR"]["value"]
    claim = volumes(template)[mounts(container(template))[data_dir]]["ephemeral"]
    storage = quantity(claim["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"])
    needed = plan_per_worker(worker_group()["replicas"])["disk"]
    assert needed <= storage <= 1.5 * needed, (storage / GIB, needed / GIB)


def test_the_workers_ray_cpus_are_their_cpu_limit() -> None:
    worker = container(worker_group()["template"])
    cpus = quantity(worker["resources"]["limits"]["cpu"])
    assert float(str(step(worker, "ray", "start")["num-cpus"])) == cpus


def test_the_heads_object_store_fits_under_its_memory_limit() -> None:
    head = container(head_pod())
    store = int(str(step(head, "ray", "start")["object-store-memory"]))
    limit = quantity(head["resources"]["limits"]["memory"])
    # The front end (650 MiB after a 1024-text batch, tests/test_container.py), Ray's GCS
    # and raylet, and the catalog actor: 2 GiB and more beside the store.
    assert limit - store >= 4 * GIB
    assert head["resources"]["requests"]["memory"] == head["resources"]["limits"]["memory"]

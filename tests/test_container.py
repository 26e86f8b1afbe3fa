"""The image, built and run for real by a private Docker engine (scripts/container/engine.py):
it serves through a published loopback port, stops on SIGTERM with exit code 0, keeps its
collections on a volume, and runs under the Deployment's restrictions (deploy/).

Needs root and Debian's docker.io and debootstrap (scripts/container/install-engine.sh);
without them the tests skip, except under CI, where they fail. Build time, image size, the
time from `docker run` to SERVING and the server's memory are printed at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import grpc
import numpy as np
import pytest
from embedspace import Client, Unauthenticated
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import REPO

pytestmark = pytest.mark.container


def _load_engine() -> ModuleType:
    path = REPO / "scripts" / "container" / "engine.py"
    spec = importlib.util.spec_from_file_location("embedspace_container_engine", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ce = _load_engine()

TAG = "embedspace:test"
HEALTHCHECK = ["embedspace", "health", "--target", f"127.0.0.1:{ce.SERVER_PORT}"]
GRACE_S = 10.0  # the server's default grace_period_s
# What deploy/deployment.yaml's securityContext asks for, as docker run flags.
RESTRICTED = (
    "--user", "10001:10001", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
)  # fmt: skip
WORDS = ["king", "queen", "man", "woman", "prince", "princess", "apple", "car"]
MIB = 2**20
TOKEN = "container-test-token"


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    """Measurements the tests add to; printed when the module is done."""
    measured: dict[str, float] = {}
    start = time.monotonic()
    yield measured
    measured["container_tests_s"] = time.monotonic() - start
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_sep("-", "container figures")
            for name, value in measured.items():
                reporter.write_line(f"{name:>24}: {value:.1f}")


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    if missing := ce.missing_tools():
        message = f"no container engine here: missing {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with ce.Engine() as running:
        yield running


@pytest.fixture(scope="module")
def image(engine: Any, figures: dict[str, float]) -> str:
    start = time.monotonic()
    engine.ensure_base_image()
    figures["base_image_s"] = time.monotonic() - start
    start = time.monotonic()
    ce.build_wheelhouse(REPO)
    figures["wheelhouse_s"] = time.monotonic() - start
    figures["build_s"] = engine.build_image(TAG)
    figures["image_mib"] = engine.image_size(TAG) / MIB
    return TAG


def logs(engine: Any, container: str) -> str:
    out = engine.docker("logs", "--tail", "60", container, check=False)
    return f"container log:\n{out.stdout}{out.stderr}"


def serving(target: str) -> bool:
    # A new channel each time: a channel that failed backs off, and would see SERVING late.
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def run_container(engine: Any, *args: str, timeout: float = 180) -> tuple[str, str, float]:
    """`docker run -d` with the server's port published on a free loopback port; waits for
    SERVING and returns the container, its target and the seconds from `docker run`."""
    start = time.monotonic()
    container = engine.docker(
        "run", "-d", "--stop-timeout", "30", "-p", f"127.0.0.1::{ce.SERVER_PORT}", *args
    ).stdout.strip()
    target = f"127.0.0.1:{engine.published_port(container)}"
    while time.monotonic() - start < timeout:
        if serving(target):
            return container, target, time.monotonic() - start
        if not engine.inspect(container)["State"]["Running"]:
            pytest.fail(f"the container exited before SERVING\n{logs(engine, container)}")
        time.sleep(0.2)
    pytest.fail(f"not SERVING {timeout:.0f}s after docker run\n{logs(engine, container)}")


def stop(engine: Any, container: str) -> float:
    """`docker stop` (SIGTERM, then SIGKILL after 30 s); asserts exit code 0, returns the
    seconds it took."""
    start = time.monotonic()
    engine.docker("stop", "--time", "30", container, timeout=60)
    took = time.monotonic() - start
    state = engine.inspect(container)["State"]
    assert state["ExitCode"] == 0 and not state["OOMKilled"], logs(engine, container)
    return took


def test_the_image_is_cpu_only_non_root_and_describes_itself(engine: Any, image: str) -> None:
    config = engine.inspect(image)["Config"]
    assert config["User"] == "10001:10001"
    assert f"{ce.SERVER_PORT}/tcp" in config["ExposedPorts"]
    assert "/data" in config["Volumes"]
    assert config["Entrypoint"][:2] == ["tini", "--"]  # SIGTERM reaches the server
    assert config["Healthcheck"]["Test"] == ["CMD", *HEALTHCHECK]
    assert config["Labels"]["org.opencontainers.image.title"] == "embedspace"
    facts = engine.docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c",
        "import importlib.metadata as m, json, os, torch; print(json.dumps({"
        "'uid': os.getuid(), 'torch': torch.__version__, 'cuda': torch.version.cuda,"
        "'nvidia': [d.metadata['Name'] for d in m.distributions()"
        " if d.metadata['Name'].lower().startswith(('nvidia', 'triton'))]}))",
    )  # fmt: skip
    assert json.loads(facts.stdout) == {
        "uid": 10001,
        "torch": "2.13.0+cpu",
        "cuda": None,
        "nvidia": [],
    }


def test_the_server_starts_with_no_network(engine: Any, image: str) -> None:
    """The encoder ships inside the image: it loads and warms with no network at all."""
    container = engine.docker("run", "-d", "--network", "none", image).stdout.strip()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        probe = engine.docker("exec", container, *HEALTHCHECK, check=False)
        if probe.returncode == 0:
            assert "SERVING" in probe.stdout
            break
        if not engine.inspect(container)["State"]["Running"]:
            pytest.fail(f"the container exited\n{logs(engine, container)}")
        time.sleep(0.5)
    else:
        pytest.fail(f"not SERVING after 180s with no network\n{logs(engine, container)}")
    stop(engine, container)


def test_it_serves_stops_on_sigterm_and_a_new_container_finds_the_data(
    engine: Any, image: str, figures: dict[str, float]
) -> None:
    volume = engine.docker("volume", "create").stdout.strip()
    # No timed snapshot in this container's life: what the next one finds was saved on SIGTERM.
    first, target, figures["run_to_serving_s"] = run_container(
        engine, "-e", "EMBEDSPACE_SNAPSHOT_INTERVAL_S=3600", "-v", f"{volume}:/data", image
    )
    memory = engine.server_memory(first)
    figures["rss_serving_mib"] = memory["rss"] / MIB
    # The image's HEALTHCHECK, run where Docker runs it.
    health = engine.docker("exec", first, *HEALTHCHECK, check=False)
    assert health.returncode == 0 and "SERVING" in health.stdout, health.stderr

    texts = ["a red apple", "a blue car"]
    with Client(target) as es:
        vectors = es.embed("minilm", texts)
        assert vectors.shape == (2, 384) and vectors.dtype == np.float32
        es.create_collection("words", "minilm")
        es.upsert("words", WORDS, items=WORDS)
        assert es.analogy("words", positive=["king", "woman"], negative=["man"])[0].id == "queen"
        before = es.search("words", "royalty", k=3)
        assert {hit.id for hit in before} <= {"king", "queen", "prince", "princess"}
        es.embed("minilm", [f"sentence {i} about a red apple" for i in range(256)])
    figures["rss_peak_mib"] = engine.server_memory(first)["peak_rss"] / MIB

    figures["stop_s"] = stop(engine, first)
    assert figures["stop_s"] < GRACE_S, logs(engine, first)

    # A new container on the same volume, as the Deployment runs it: restricted, and with
    # tokens. run_container waits for SERVING without a token, as the Kubernetes probes do.
    second, target, figures["restart_to_serving_s"] = run_container(
        engine, *RESTRICTED, "-e", f"EMBEDSPACE_TOKENS={TOKEN}", "-v", f"{volume}:/data", image
    )
    with Client(target) as anonymous, pytest.raises(Unauthenticated):
        anonymous.collections()
    with Client(target, token=TOKEN) as es:
        assert es.describe("words").count == len(WORDS)
        assert es.search("words", "royalty", k=3) == before
        assert np.allclose(es.embed("minilm", texts), vectors, atol=1e-6)
    assert stop(engine, second) < GRACE_S

"""The image's exact entrypoint command, run on the host as a real process: health,
reflection with grpcurl, a client from an independent generator, SIGTERM, restart."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from embedspace import Client
from embedspace.v1 import embedspace_pb2 as pb
from embedspace.v1 import embedspace_pb2_grpc as pb_grpc

from .conftest import REPO
from .serve_process import BIN, ServeProcess

pytestmark = pytest.mark.slow


def dockerfile_command() -> list[str]:
    """ENTRYPOINT + CMD of the Dockerfile's final stage, without the init."""
    text = (REPO / "Dockerfile").read_text()
    entry = json.loads(re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.M)[-1])
    cmd = json.loads(re.findall(r"^CMD\s+(\[.*\])\s*$", text, re.M)[-1])
    argv = [*entry, *cmd]
    if argv[0] == "tini":
        argv = argv[argv.index("--") + 1 :]
    return argv


def host_command(data_dir: Path) -> list[str]:
    """The image's command with loopback, a free port and a temporary data dir."""
    argv = dockerfile_command()
    assert argv[:2] == ["embedspace", "serve"], argv
    values = {"--host": "127.0.0.1", "--port": "0", "--data-dir": str(data_dir)}
    for flag, value in values.items():
        argv[argv.index(flag) + 1] = value
    return [str(BIN / argv[0]), *argv[1:]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Path]]:
    data = tmp_path_factory.mktemp("entrypoint-data")
    proc = ServeProcess(host_command(data))
    try:
        proc.wait_serving()
        yield proc, data
    finally:
        proc.kill()


def grpcurl(*args: str, data: Any = None) -> str:
    argv = [str(BIN / "grpcurl"), "-plaintext"]
    if data is not None:
        argv += ["-d", json.dumps(data)]
    out = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_grpcurl_lists_describes_and_calls_through_reflection(served: Any) -> None:
    """grpcurl knows nothing of embedspace but what reflection tells it; from JSON, vectors
    go most simply as lists of floats (`values`)."""
    proc, _ = served
    services = grpcurl(proc.target, "list").split()
    assert "embedspace.v1.Embedspace" in services and "grpc.health.v1.Health" in services
    described = grpcurl(proc.target, "describe", "embedspace.v1.Embedspace")
    assert "rpc MostSimilar" in described and "rpc SearchBatch" in described

    def call(method: str, data: Any) -> Any:
        return json.loads(grpcurl(proc.target, f"embedspace.v1.Embedspace/{method}", data=data))

    hello = {"encoder": "minilm", "items": [{"text": "hello"}]}
    (packed,) = call("Embed", hello)["vectors"]
    (listed,) = call("Embed", {**hello, "vector_form": "VECTOR_FORM_VALUES"})["vectors"]
    # Packed bytes are base64 in JSON; a list of floats is a JSON array.
    values = np.frombuffer(base64.b64decode(packed["data"]), "<f4")
    assert packed["dim"] == 384 and values.shape == (384,) and "values" not in packed
    assert listed["dim"] == 384 and "data" not in listed
    assert np.allclose(listed["values"], values, atol=1e-6)
    with grpc.insecure_channel(proc.target) as channel:
        reply = pb_grpc.EmbedspaceStub(channel).Embed(
            pb.EmbedRequest(encoder="minilm", items=[pb.Item(text="hello")])
        )
    assert np.allclose(values, np.frombuffer(reply.vectors[0].data, "<f4"), atol=1e-6)

    created = call("CreateCollection", {"collection": "grpcurl-words", "encoder": "minilm"})
    assert created["name"] == "grpcurl-words" and created["dim"] == 384
    axis = [1.0] + [0.0] * 383
    points = [{"id": "hello", "vector": {"values": listed["values"]}},
              {"id": "axis", "vector": {"values": axis}}]  # fmt: skip
    # proto3 JSON leaves out fields at their default (here replaced = 0).
    assert call("Upsert", {"collection": "grpcurl-words", "points": points}) == {"inserted": 2}
    for query, expected in ((listed["values"], "hello"), (axis, "axis")):
        request = {"collection": "grpcurl-words", "query": {"vector": {"values": query}}, "k": 1}
        (hit,) = call("Search", request)["neighbors"]
        assert hit["id"] == expected and abs(hit["score"] - 1) < 1e-5
    health = json.loads(grpcurl(proc.target, "grpc.health.v1.Health/Check"))
    assert health["status"] == "SERVING"


def test_a_betterproto_client_calls_the_service(served: Any, tmp_path: Path) -> None:
    """betterproto generates its own client from the proto (google.protobuf.Timestamp
    becomes a datetime) and speaks to the server through grpclib."""
    proc, _ = served
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(REPO / "proto"),
         f"--python_betterproto_out={tmp_path}", "embedspace/v1/embedspace.proto"],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    spec = importlib.util.spec_from_file_location(
        "bp_embedspace_v1", tmp_path / "embedspace" / "v1" / "__init__.py"
    )
    assert spec and spec.loader
    bp = importlib.util.module_from_spec(spec)
    sys.modules["bp_embedspace_v1"] = bp
    spec.loader.exec_module(bp)
    words = ["king", "queen", "apple"]

    async def call() -> Any:
        from grpclib.client import Channel

        channel = Channel("127.0.0.1", proc.port)
        try:
            stub = bp.EmbedspaceStub(channel)
            encoders = await stub.list_encoders(bp.ListEncodersRequest())
            embedded = await stub.embed(
                bp.EmbedRequest(encoder="minilm", items=[bp.Item(text="hello")])
            )
            listed = await stub.embed(
                bp.EmbedRequest(
                    encoder="minilm",
                    items=[bp.Item(text=w) for w in words],
                    vector_form=bp.VectorForm.VALUES,
                )
            )
            await stub.create_collection(
                bp.CreateCollectionRequest(collection="betterproto-words", encoder="minilm")
            )
            points = [bp.UpsertPoint(id=w, vector=bp.Vector(values=v.values))
                      for w, v in zip(words, listed.vectors, strict=True)]  # fmt: skip
            await stub.upsert(bp.UpsertRequest(collection="betterproto-words", points=points))
            counted = await stub.count(bp.CountRequest(collection="betterproto-words"))
            found = await stub.search_batch(
                bp.SearchBatchRequest(
                    collection="betterproto-words",
                    queries=[bp.Query(id="queen"), bp.Query(item=bp.Item(text="fruit"))],
                    k=1,
                )
            )
            backup = await stub.backup(bp.BackupRequest(collection="betterproto-words"))
            return encoders, embedded, listed, counted, found, backup
        finally:
            channel.close()

    encoders, embedded, listed, counted, found, backup = asyncio.run(call())
    assert "minilm" in [e.name for e in encoders.encoders]
    assert embedded.vectors[0].dim == 384 and len(embedded.vectors[0].data) == 4 * 384
    assert [len(v.values) for v in listed.vectors] == [384] * 3
    assert not any(v.data for v in listed.vectors)
    assert counted.count == 3
    assert [[n.id for n in r.neighbors] for r in found.results] == [["queen"], ["apple"]]
    assert (backup.collection, backup.count) == ("betterproto-words", 3)
    assert isinstance(backup.created, datetime)
    assert abs(datetime.now(UTC) - backup.created) < timedelta(minutes=10)


def test_sigterm_drains_saves_and_a_restart_finds_the_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    words = ["king", "queen", "man", "woman", "apple"]
    proc = ServeProcess(host_command(data))
    try:
        proc.wait_serving()
        with Client(proc.target) as es:
            es.create_collection("words", "minilm")
            es.upsert("words", words, items=words)
            before = es.search("words", "royal", k=5)
        start = time.monotonic()
        assert proc.terminate(timeout=30) == 0, proc.log
        assert time.monotonic() - start < 10
        assert re.search(r"saved \d+ collection\(s\) on shutdown", proc.log)
    finally:
        proc.kill()
    again = ServeProcess(host_command(data))
    try:
        again.wait_serving()
        with Client(again.target) as es:
            assert es.describe("words").count == 5
            assert es.search("words", "royal", k=5) == before
    finally:
        assert again.terminate() == 0
        again.kill()


def test_sigint_also_stops_gracefully(tmp_path: Path) -> None:
    import signal

    proc = ServeProcess(host_command(tmp_path / "data"))
    try:
        proc.wait_serving()
        proc.proc.send_signal(signal.SIGINT)
        assert proc.proc.wait(30) == 0, proc.log
    finally:
        proc.kill()


def test_a_second_server_on_the_same_data_dir_exits_with_a_clear_error(served: Any) -> None:
    _, data = served
    out = subprocess.run([*host_command(data)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "in use by another embedspace server" in out.stderr + out.stdout


def test_cli_client_commands(served: Any) -> None:
    proc, _ = served
    with Client(proc.target) as es:
        es.create_collection("cli-words", "minilm")
        words = ["king", "queen", "man", "woman", "prince", "girl"]
        es.upsert("cli-words", words, items=words)
    run = lambda *a: subprocess.run(  # noqa: E731
        [str(BIN / "embedspace"), *a, "--target", proc.target], capture_output=True, text=True
    )
    embedded = run("embed", "hello world")
    assert embedded.returncode == 0 and len(json.loads(embedded.stdout)) == 384
    hits = run("analogy", "cli-words", "king", "woman", "-n", "man", "-k", "1")
    assert hits.returncode == 0 and json.loads(hits.stdout)["id"] == "queen"
    found = run("search", "cli-words", "monarch", "-k", "2")
    assert found.returncode == 0 and len(found.stdout.splitlines()) == 2
    missing = run("search", "no-such", "x")
    assert missing.returncode == 1 and "NotFound" in missing.stderr


# Refused starts: one line that says what is wrong, an exit code (2: settings, 1: start),
# and neither a traceback nor grpc.aio's `Event loop is closed` from a server left running.
SMALL = 'builtin_collections = false\n[[encoders]]\nname = "v"\nkind = "vector"\ndim = 8\n'


def small_serve(config: Path, data_dir: Path, *flags: str) -> list[str]:
    """`embedspace serve` with one 8-d vector encoder: starts in a second or two."""
    return [str(BIN / "embedspace"), "serve", "--port", "0", "--data-dir", str(data_dir),
            "--config", str(config), *flags]  # fmt: skip


def refused(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Runs a start that must fail: its exit code and output, checked for noise."""
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "Traceback" not in text and "Event loop is closed" not in text, text
    assert "never awaited" not in text, text
    return out.returncode, text


def write_config(tmp_path: Path, text: str = SMALL) -> Path:
    config = tmp_path / "es.toml"
    config.write_text(text)
    return config


def test_an_empty_variable_cannot_switch_off_the_tokens_of_the_config_file(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, 'tokens = "s3cret"\n' + SMALL)
    code, text = refused(small_serve(config, tmp_path / "data"), {"EMBEDSPACE_TOKENS": ""})
    assert code == 2
    assert "cannot start: EMBEDSPACE_TOKENS is set but empty" in text
    assert "unset EMBEDSPACE_TOKENS" in text and "s3cret" not in text
    assert not (tmp_path / "data").exists()


def test_a_config_file_that_is_a_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    code, text = refused(small_serve(tmp_path / "conf.d", tmp_path / "data"))
    assert code == 2
    assert f"cannot start: config file {str(tmp_path / 'conf.d')!r}: Is a directory" in text


def test_a_data_dir_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "a-file").write_text("")
    for data_dir in (tmp_path / "a-file", tmp_path / "a-file" / "data"):
        code, text = refused(small_serve(config, data_dir))
        assert code == 1
        assert re.search(r"ERROR embedspace: cannot start: .*a-file.*: Not a directory", text)


def test_a_data_dir_the_server_may_not_create_is_refused_in_one_line(tmp_path: Path) -> None:
    """As in the image, whose server runs as a user that may not write a root-owned /data.
    Root ignores permission bits; without CAP_DAC_OVERRIDE it is held to them."""
    config = write_config(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    try:
        code, text = refused([*prefix, *small_serve(config, locked / "data")])
    finally:
        locked.chmod(0o755)
    assert code == 1
    assert re.search(r"cannot start: .*locked/data.*: Permission denied", text), text


def test_an_encoder_that_fails_after_the_port_is_bound_stops_the_grpc_server(
    tmp_path: Path,
) -> None:
    """The failure comes after the gRPC server started: it must be stopped before the event
    loop closes. The file-system error is reported as `<path>: <strerror>`."""
    artifact = tmp_path / "artifact"
    (artifact / "manifest.json").mkdir(parents=True)
    config = write_config(
        tmp_path,
        'builtin_collections = false\n[[encoders]]\nname = "t"\nkind = "trained"\n'
        f'path = "{artifact}"\n',
    )
    code, text = refused(small_serve(config, tmp_path / "data"))
    assert code == 1
    assert "listening on" in text
    assert f"ERROR embedspace: cannot start: {artifact / 'manifest.json'}: Is a directory" in text
    # The data directory was released: a server starts on it at once.
    proc = ServeProcess(small_serve(write_config(tmp_path), tmp_path / "data"))
    try:
        proc.wait_serving()
    finally:
        assert proc.terminate() == 0, proc.log
        proc.kill()


def test_a_data_dir_or_port_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    proc = ServeProcess(small_serve(config, tmp_path / "data"))
    try:
        proc.wait_serving()
        code, text = refused(small_serve(config, tmp_path / "data"))
        assert code == 1
        assert "cannot start: data directory" in text
        assert "in use by another embedspace server" in text
        flags = ("--port", str(proc.port))
        code, text = refused(small_serve(config, tmp_path / "other", *flags))
        assert code == 1
        assert f"cannot start: cannot listen on 127.0.0.1:{proc.port}: Address already in use" in (
            text
        )
        health = write_config(tmp_path, f"health_port = {proc.port}\n" + SMALL)
        code, text = refused(small_serve(health, tmp_path / "third"))
        assert code == 1
        assert f"127.0.0.1:{proc.port} (health_port): Address already in use" in text
    finally:
        assert proc.terminate() == 0, proc.log
        proc.kill()


def test_the_port_file_names_the_ports_the_server_bound(tmp_path: Path) -> None:
    """`--port-file` is how a supervisor learns the ports that port 0 picked."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    config = tmp_path / "c.toml"
    config.write_text("health_port = 0\n" + SMALL)
    argv = [str(BIN / "embedspace"), "serve", "--config", str(config), "--port", "0",
            "--data-dir", str(tmp_path / "data")]  # fmt: skip
    proc = ServeProcess(argv)
    try:
        proc.wait_serving(60)
        ports = json.loads(proc.port_file.read_text())
        assert set(ports) == {"port", "health_port", "metrics_port"}
        assert 0 < ports["port"] != ports["health_port"] and ports["metrics_port"] == -1
        with Client(f"127.0.0.1:{ports['port']}") as es:
            assert es.collections() == []
        with grpc.insecure_channel(f"127.0.0.1:{ports['health_port']}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert proc.terminate() == 0
    finally:
        proc.kill()


def test_the_log_names_the_faiss_simd_level_without_the_loaders_noise(tmp_path: Path) -> None:
    proc = ServeProcess(small_serve(write_config(tmp_path), tmp_path / "data"))
    try:
        proc.wait_serving()
    finally:
        assert proc.terminate() == 0, proc.log
        proc.kill()
    levels = re.findall(r"FAISS [\d.]+, running at SIMD level ([A-Z0-9_]+)", proc.log)
    assert len(levels) == 1, proc.log
    assert "faiss.loader" not in proc.log and "swigfaiss" not in proc.log, proc.log

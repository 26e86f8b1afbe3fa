"""The contract and its tooling: every message crosses exactly one conversion boundary on
each side, the stubs are fresh, the Dockerfile lints clean."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import numpy as np
import pytest
from embedspace.v1 import embedspace_pb2 as pb

from .conftest import REPO
from .serve_process import BIN

# The only modules that import the generated code (embedspace.v1): they build and read messages.
BOUNDARIES = {
    REPO / "client/embedspace/_convert.py",  # the SDK's calls <-> messages, and the stub
    REPO / "client/embedspace/_messages.py",  # the SDK's values <-> messages
    REPO / "client/embedspace/wire.py",  # vectors and metadata, shared by SDK and server
}
# The server's messages <-> domain objects: decode (requests), encode (responses), codecs.
BOUNDARY_PACKAGE = REPO / "service/embedspace_server/convert"
GENERATED_IMPORT = re.compile(
    r"embedspace_pb2"  # the generated modules, by name
    r"|^\s*(from|import)\s+(embedspace\.v1|\.+v1)\b"  # from embedspace.v1 / .v1 import ...
    r"|^\s*from\s+(embedspace|\.+)\s+import\s+v1\b",  # from embedspace / . import v1
    re.MULTILINE,
)
SERVICE = pb.DESCRIPTOR.services_by_name["Embedspace"]


def _sdk_ops() -> list[Any]:
    """One Op per SDK call, built from sample arguments."""
    from embedspace import Point, Ref
    from embedspace import _convert as ops

    v = np.ones(4, np.float32)
    return [
        ops.encoders(), ops.embed("e", ["text"]), ops.create_collection("c", "e", "Flat", None),
        ops.collections(), ops.describe("c"), ops.drop_collection("c"),
        ops.backup("c", None), ops.backups(), ops.restore("b", "c"),
        ops.compare(["a", "b"], Ref("x"), 3), ops.scan("c", 10, "", True, True),
        ops.count("c", {"k": 1}), ops.upsert("c", ["a"], None, [v], [{"k": 1}]),
        ops.upsert_stream("c", [Point("a", vector=v)]), ops.get("c", ["a"]),
        ops.delete("c", ["a"]), ops.search("c", Ref("a"), 3, 0.5, ["b"], {"k": True}),
        ops.search_batch("c", [Ref("a"), v], 3, None, [], None),
        ops.distance("a", v, collection="c", metric="l2"),
        ops.analogy("c", ["a"], [Ref("b")], 3, "mul"),
        ops.doesnt_match(["a", "b"], encoder="e"), ops.mean_vector([v], collection="c"),
    ]  # fmt: skip


def test_every_rpc_is_served_and_called_by_the_sdk() -> None:
    from embedspace.v1 import embedspace_pb2_grpc as pb_grpc
    from embedspace_server.servicer import EmbedspaceServicer

    methods = {m.name: m for m in SERVICE.methods}
    for name in methods:
        assert getattr(EmbedspaceServicer, name) is not getattr(pb_grpc.EmbedspaceServicer, name)
    by_method = {op.method: op for op in _sdk_ops()}
    assert set(by_method) == set(methods)
    for name, op in by_method.items():
        rpc = methods[name]
        assert op.request.DESCRIPTOR is rpc.input_type, name
        if name != "Distance":  # a default DistanceResponse holds no value to read
            op.parse(getattr(pb, rpc.output_type.name)())


def test_every_message_is_part_of_some_call() -> None:
    reachable: set[str] = set()

    def visit(message: Any) -> None:
        if message.full_name in reachable:
            return
        reachable.add(message.full_name)
        for field in message.fields:
            if field.message_type is not None:
                visit(field.message_type)

    for method in SERVICE.methods:
        visit(method.input_type)
        visit(method.output_type)
    declared = {m.full_name for m in pb.DESCRIPTOR.message_types_by_name.values()}
    assert declared <= reachable, declared - reachable


def test_only_the_boundaries_touch_generated_types() -> None:
    """No module but the BOUNDARIES imports the generated code: the clients, the servicer and
    the server see numpy arrays and the dataclasses of each side."""
    for root in (REPO / "client" / "embedspace", REPO / "service" / "embedspace_server"):
        for path in root.rglob("*.py"):
            if "v1" in path.relative_to(root).parts or path in BOUNDARIES:
                continue
            if BOUNDARY_PACKAGE in path.parents:
                continue
            found = GENERATED_IMPORT.search(path.read_text())
            assert found is None, f"{path} imports generated code ({found and found[0]})"


def test_generated_stubs_are_fresh() -> None:
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "gen_proto.sh"), "--check"],
        capture_output=True, text=True, env={"PATH": f"{BIN}:/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_dockerfile_is_clean_under_hadolint() -> None:
    out = subprocess.run(
        [str(BIN / "hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_only_the_collection_implementations_touch_faiss() -> None:
    """FAISS stays behind the collection interface: outside index/ no module imports it
    (the engine, the catalogue and the threads see only VectorCollection and index/'s
    functions), and inside index/ one module imports it for the others."""
    import ast

    service = REPO / "service" / "embedspace_server"
    importers = set()
    for path in service.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "faiss" or name.startswith("faiss.") for name in names):
                importers.add(path.relative_to(service).as_posix())
    assert importers == {"index/factory.py"}


def test_shards_replicas_and_missing_shards_on_a_server_without_ray(start_server: Any) -> None:
    """The fields as the wire carries them: 0 shards and replicas mean 1; more than 1 is
    FAILED_PRECONDITION naming --ray, with nothing left on disk; too many is
    INVALID_ARGUMENT; a local collection has no placement and its answers miss no shard."""
    import grpc
    from embedspace.v1 import embedspace_pb2_grpc as pb_grpc

    with start_server() as running, grpc.insecure_channel(running.target) as channel:
        stub = pb_grpc.EmbedspaceStub(channel)
        data = running.server.settings.data_dir

        def create(name: str, **layout: int) -> Any:
            return stub.CreateCollection(
                pb.CreateCollectionRequest(collection=name, encoder="vec8", **layout), timeout=30
            )

        for layout in ({"shards": 2}, {"replicas": 2}, {"shards": 64, "replicas": 8}):
            with pytest.raises(grpc.RpcError) as info:
                create("a", **layout)
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "--ray" in info.value.details() and "'a'" in info.value.details()
        for layout in ({"shards": 65}, {"replicas": 9}):
            with pytest.raises(grpc.RpcError) as info:
                create("a", **layout)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, layout
        assert not stub.ListCollections(pb.ListCollectionsRequest(), timeout=30).collections
        assert not (data / "collections" / "a").exists()
        for name in ("a", "b"):
            info = create(name, shards=0, replicas=0)
            assert (info.shards, info.replicas, list(info.placement)) == (1, 1, [])
            vectors = np.eye(8, dtype=np.float32)
            stub.Upsert(pb.UpsertRequest(collection=name, points=[
                pb.UpsertPoint(id=f"p{i}", vector=pb.Vector(dim=8, data=v.tobytes()))
                for i, v in enumerate(vectors)
            ]), timeout=30)  # fmt: skip
        described = stub.DescribeCollection(
            pb.DescribeCollectionRequest(collection="a"), timeout=30
        )
        assert (described.shards, described.replicas, described.count) == (1, 1, 8)
        search = stub.Search(
            pb.SearchRequest(collection="a", query=pb.Query(id="p1"), k=3), timeout=30
        )
        assert search.neighbors[0].id == "p1" and list(search.missing_shards) == []
        positive = [pb.WeightedQuery(query=pb.Query(id="p1"))]
        analogy = stub.MostSimilar(
            pb.MostSimilarRequest(collection="a", positive=positive, k=3), timeout=30
        )
        assert len(analogy.neighbors) == 3 and list(analogy.missing_shards) == []
        compare = stub.Compare(
            pb.CompareRequest(collections=["a", "b"], query=pb.Query(id="p1"), k=3), timeout=30
        )
        assert [len(a.neighbors) for a in compare.answers] == [3, 3]
        assert all(list(a.missing_shards) == [] for a in compare.answers)

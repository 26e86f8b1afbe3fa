"""The SDK's public surface: pinned names, Client and AsyncClient in step, lifecycle."""

from __future__ import annotations

import asyncio
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import AsyncClient, Client, ClientClosed, Unavailable


def test_public_names_are_pinned() -> None:
    import embedspace

    assert sorted(embedspace.__all__) == sorted(
        [
            "USE_CLIENT_DEFAULT", "AlreadyExists", "Analogy", "AsyncClient", "BackupInfo",
            "Cancelled", "Client", "ClientClosed", "CollectionInfo", "Comparison",
            "DeadlineExceeded", "EmbedspaceError",
            "EncoderInfo", "FailedPrecondition", "FieldViolation", "IngestSummary", "Internal",
            "InvalidArgument", "Item", "Items",
            "Neighbor", "Neighbors", "NotFound", "Page", "PermissionDenied", "Point",
            "PointsRejected", "Provenance", "Query",
            "Ref", "Rejection", "ReplicaInfo", "ResourceExhausted", "StoredItem", "Sum", "Tensor",
            "Unauthenticated",
            "Unavailable", "Unknown", "UpsertResult",
        ]
    )  # fmt: skip
    for name in embedspace.__all__:
        assert hasattr(embedspace, name)


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in vars(cls).items()
        if callable(fn) and not name.startswith("_") and name != "close"
    }


def test_client_and_async_client_have_the_same_calls() -> None:
    """Same names, parameters and docstrings; what a sync call returns, its async twin
    returns awaited (an Iterator becomes an AsyncIterator, iterated with `async for`)."""
    sync, aio = _public(Client), _public(AsyncClient)
    assert set(sync) == set(aio)
    assert {"encoders", "embed", "create_collection", "collections", "describe",
            "drop_collection", "backup", "backups", "restore", "upsert", "upsert_many", "get",
            "delete", "search", "search_batch", "distance", "analogy", "compare", "scan",
            "scan_all", "count", "doesnt_match", "mean_vector"} <= set(sync)  # fmt: skip
    for name in sync:
        assert sync[name].parameters == aio[name].parameters, name
        returns = str(sync[name].return_annotation)
        assert str(aio[name].return_annotation) == returns.replace("Iterator[", "AsyncIterator["), (
            name
        )
        assert getattr(Client, name).__doc__ == getattr(AsyncClient, name).__doc__, name
        if returns.startswith("Iterator["):
            assert inspect.isgeneratorfunction(getattr(Client, name)), name
            assert inspect.isasyncgenfunction(getattr(AsyncClient, name)), name
        else:
            assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name


def test_renamed_parameters_name_the_thing_they_name() -> None:
    """One name per thing: `collection`, `encoder`, `backup`; the space of distance,
    doesnt_match and mean_vector is a collection or an encoder, by keyword."""
    params = {name: list(sig.parameters) for name, sig in _public(Client).items()}
    assert params["create_collection"][1:3] == ["collection", "encoder"]
    assert params["describe"][1] == params["drop_collection"][1] == "collection"
    assert params["backup"][1:3] == ["collection", "backup"]
    assert params["restore"][1:3] == ["backup", "collection"]
    for name in ("distance", "doesnt_match", "mean_vector"):
        sig = _public(Client)[name]
        for space in ("collection", "encoder"):
            assert sig.parameters[space].kind is inspect.Parameter.KEYWORD_ONLY, name
            assert sig.parameters[space].default is None, name
    assert "space" not in params["distance"] + params["doesnt_match"] + params["mean_vector"]


def test_async_client_is_generated_from_the_sync_one() -> None:
    """AsyncClient is generated from Client (each call is defined once); a stale copy fails."""
    root = Path(__file__).resolve().parent.parent
    assert (root / "client/embedspace/_async_client.py").read_text().startswith("# Generated ")
    out = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen_async_client.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_wire_module_is_public_and_pinned() -> None:
    """embedspace.wire: the wire format of vectors and metadata, which the server imports too."""
    from embedspace import wire

    assert sorted(wire.__all__) == sorted(
        [
            "FloatArray", "Scalar", "from_value", "from_values", "pack", "pack_tensor",
            "to_value", "to_values", "unpack", "unpack_rows", "unpack_tensor", "uses_values",
        ]
    )  # fmt: skip
    for name in wire.__all__:
        assert hasattr(wire, name)
    vector = np.arange(5, dtype=np.float32)
    assert np.array_equal(wire.unpack(wire.pack(vector)), vector)
    meta = {"s": "x", "i": 3, "f": 0.5, "b": True}
    assert wire.from_values(wire.to_values(meta)) == meta


def test_sdk_import_pulls_in_no_server_dependencies() -> None:
    code = (
        "import sys, embedspace\n"
        "heavy = {'torch', 'faiss', 'sentence_transformers', 'embedspace_server', 'tqdm',"
        " 'pyarrow'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_sdk_installs_with_four_dependencies_and_imports_no_others_eagerly() -> None:
    """grpcio, protobuf, numpy and googleapis-common-protos (google.rpc: error details);
    tqdm (progress bars) comes with the `files` extra and is imported only when used."""
    import ast
    import tomllib

    import embedspace

    root = Path(embedspace.__file__).parent
    project = tomllib.loads((root.parent.parent / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=~!\[ ]", d)[0] for d in project["dependencies"]}
    assert names == {"grpcio", "protobuf", "numpy", "googleapis-common-protos"}
    allowed = {"grpc", "google", "numpy", "embedspace", "typing_extensions"}
    for path in root.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.Import):
                found = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = {node.module.split(".")[0]}
            else:
                continue
            assert found - sys.stdlib_module_names <= allowed, (path.name, found)


def test_progress_bars_without_tqdm_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from embedspace import Point

    class Terminal:
        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            return len(text)

    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if it were not installed
    monkeypatch.setattr(sys, "stderr", Terminal())
    points = [Point("a", vector=np.ones(8))]
    missing = pytest.raises(ImportError, match=r"pip install 'embedspace\[files\]'")
    with Client(_nothing_listens(), retries=0) as es, missing:  # before any call is made
        es.upsert_many("c", points, progress=True)


def test_the_target_defaults_to_the_environment(
    shared_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMBEDSPACE_TARGET", raising=False)
    assert Client().target == AsyncClient().target == "127.0.0.1:50051"
    monkeypatch.setenv("EMBEDSPACE_TARGET", "")
    assert Client().target == "127.0.0.1:50051"
    monkeypatch.setenv("EMBEDSPACE_TARGET", shared_server.target)
    with Client() as es:
        assert es.target == shared_server.target and es.encoders()
    assert AsyncClient().target == shared_server.target
    assert Client("elsewhere:1").target == "elsewhere:1"  # a target given wins


def test_arguments_are_checked_before_any_call() -> None:
    """Mistakes in the arguments raise ValueError at once, naming the fix, without reaching
    for the (here absent) server."""
    from embedspace import Point, Ref

    with Client(_nothing_listens(), retries=0) as es:
        for call in (
            lambda **space: es.distance(Ref("a"), Ref("b"), **space),
            lambda **space: es.doesnt_match(["a", "b", "c"], **space),
            lambda **space: es.mean_vector(["a"], **space),
        ):
            for space in ({}, {"collection": "c", "encoder": "e"}):
                with pytest.raises(ValueError, match="exactly one of collection= or encoder="):
                    call(**space)
        with pytest.raises(ValueError, match="batch_size must be a whole number"):
            es.upsert_many("c", [Point("a", vector=np.ones(8))], batch_size=0)
        with pytest.raises(ValueError, match="in_flight must be a whole number"):
            es.upsert_many("c", [], in_flight=0)
        with pytest.raises(TypeError, match="iterable of Point"):
            es.upsert_many("c", Point("a", vector=np.ones(8)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one of item= or vector=; got both"):
        Point("a", item="text", vector=np.ones(8))
    with pytest.raises(ValueError, match="got neither"):
        Point("a")


def _nothing_listens() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # closed again before any call


def test_the_client_never_imports_the_server() -> None:
    import embedspace

    root = Path(embedspace.__file__).parent
    for path in root.rglob("*.py"):
        assert "embedspace_server" not in path.read_text(), path


def test_closed_client_raises_a_clear_error(shared_server: Any) -> None:
    es = Client(shared_server.target)
    assert es.encoders()
    es.close()
    with pytest.raises(ClientClosed, match="closed"):
        es.encoders()
    with Client(shared_server.target) as es2:
        pass
    with pytest.raises(ClientClosed):
        es2.collections()


def test_async_client_answers_like_the_sync_client(shared_server: Any) -> None:
    async def main() -> Any:
        async with AsyncClient(shared_server.target) as es:
            vectors, names = await asyncio.gather(
                es.embed("vec8", [np.arange(8, dtype=np.float32)]), es.encoders()
            )
            return vectors, [e.name for e in names]

    vectors, names = asyncio.run(main())
    with Client(shared_server.target) as es:
        assert np.array_equal(vectors, es.embed("vec8", [np.arange(8, dtype=np.float32)]))
        assert names == [e.name for e in es.encoders()]


def test_unreachable_server_is_unavailable_after_retries() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the call: nothing listens
    with Client(f"127.0.0.1:{port}", timeout=5, retries=2) as es, pytest.raises(Unavailable):
        es.encoders()


def test_timeouts_default_and_override(shared_server: Any) -> None:
    from embedspace import USE_CLIENT_DEFAULT, DeadlineExceeded

    with Client(shared_server.target, timeout=10) as es:
        assert es._timeout(USE_CLIENT_DEFAULT) == 10
        assert es._timeout(None) is None
        with pytest.raises(DeadlineExceeded):
            es.embed("minilm", ["x " * 200] * 256, timeout=0.001)


def test_a_local_collection_has_one_shard_one_replica_and_complete_answers(
    client: Client, collection_name: str
) -> None:
    """On a server without Ray: shards 1, replicas 1, no placement, nothing missing."""
    from embedspace import Neighbors, Ref

    created = client.create_collection(collection_name, "vec8", shards=1, replicas=1)
    described = client.describe(collection_name)
    listed = next(c for c in client.collections() if c.name == collection_name)
    for info in (created, described, listed):
        assert (info.shards, info.replicas, info.placement) == (1, 1, ())
    vectors = np.random.default_rng(3).normal(size=(20, 8)).astype(np.float32)
    client.upsert(collection_name, [f"p{i}" for i in range(20)], vectors=vectors)
    hits = client.search(collection_name, vectors[0], k=5)
    assert isinstance(hits, Neighbors) and len(hits) == 5 and hits[0].id == "p0"
    assert hits.missing_shards == () and hits.partial is False
    assert hits == list(hits)  # still compares as the plain list it used to be
    analogy = client.analogy(collection_name, [Ref("p1"), Ref("p2")], [Ref("p3")], k=3)
    assert len(analogy) == 3 and analogy.missing_shards == () and analogy.partial is False
    other = f"{collection_name[:60]}-b"
    client.create_collection(other, "vec8")
    client.upsert(other, ["p0", "p1"], vectors=vectors[:2])
    comparison = client.compare([collection_name, other], Ref("p0"), k=3)
    assert comparison.partial is False
    assert all(n.missing_shards == () for n in comparison.neighbors.values())


def test_answers_name_the_shards_that_did_not_answer(sharded_server: Any) -> None:
    """A collection with a shard down (tests/sharded.py) answers from the other shard, and
    search, analogy and compare say which shard is missing."""
    import zlib

    from embedspace import Ref

    name = "missing-shards"
    ids = [f"p{i}" for i in range(60)]
    vectors = np.random.default_rng(5).normal(size=(60, 8)).astype(np.float32)
    on_shard_0 = {key for key in ids if zlib.crc32(key.encode()) % 2 == 0}
    with Client(sharded_server.target, timeout=60) as es:
        es.create_collection(name, "vec8")
        es.create_collection(name + "-b", "vec8")
        for n in (name, name + "-b"):
            es.upsert(n, ids, vectors=vectors)
        whole = es.search(name, vectors[0], k=10)
        assert whole.missing_shards == () and not whole.partial
        assert {h.id for h in whole} - on_shard_0  # both shards hold some of the best
        sharded_server.server.engine.collection(name).down = {1}
        for query in (vectors[0], Ref("p0")):  # coalesced on the event loop, and on a worker
            hits = es.search(name, query, k=10)
            assert hits.missing_shards == (1,) and hits.partial is True
            assert len(hits) == 10 and {h.id for h in hits} <= on_shard_0
        for method in ("add", "mul"):
            analogy = es.analogy(name, [Ref("p1"), Ref("p2")], [Ref("p3")], k=5, method=method)
            assert analogy.missing_shards == (1,) and analogy.partial is True
            assert {h.id for h in analogy} <= on_shard_0
        comparison = es.compare([name, name + "-b"], Ref("p0"), k=5)
        assert comparison.partial is True
        assert comparison.neighbors[name].missing_shards == (1,)
        assert comparison.neighbors[name + "-b"].missing_shards == ()
        sharded_server.server.engine.collection(name).down = set()
        assert es.search(name, vectors[0], k=10) == whole
        assert es.search(name, vectors[0], k=10).partial is False


def test_shards_and_replicas_need_a_server_on_ray(client: Client, collection_name: str) -> None:
    """The SDK sends shards and replicas; this server keeps collections in its data
    directory, so it refuses more than one of either, names the fix, and keeps nothing."""
    from embedspace import FailedPrecondition, InvalidArgument

    for layout in ({"shards": 2}, {"replicas": 2}, {"shards": 3, "replicas": 2}):
        with pytest.raises(FailedPrecondition, match=r"--ray") as info:
            client.create_collection(collection_name, "vec8", **layout)
        assert collection_name in str(info.value)
    with pytest.raises(InvalidArgument, match="1 to 64 shards"):
        client.create_collection(collection_name, "vec8", shards=100)
    with pytest.raises(InvalidArgument, match="1 to 8"):
        client.create_collection(collection_name, "vec8", replicas=9)
    with pytest.raises(ValueError, match="shards must be a whole number of at least 1"):
        client.create_collection(collection_name, "vec8", shards=0)
    assert collection_name not in [c.name for c in client.collections()]
    assert client.create_collection(collection_name, "vec8").shards == 1  # the name is free

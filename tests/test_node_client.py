"""A Node.js client (@grpc/grpc-js and @grpc/proto-loader from npm, tests/node/client.js)
makes the same calls as the Python stubs against a real server with the real MiniLM
encoder: the same answers, vectors read from `values` lists and from packed bytes, and the
google.rpc.BadRequest details of bad calls decoded from the grpc-status-details-bin
trailer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import google.rpc
import grpc
import numpy as np
import pytest
from embedspace.v1 import embedspace_pb2 as pb
from embedspace.v1 import embedspace_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2, status_pb2

from .conftest import REPO, RunningServer

pytestmark = pytest.mark.slow

# Pinned: a new release of either changes what this test exercises, not the contract.
NODE_PACKAGES = ("@grpc/grpc-js@1.14.7", "@grpc/proto-loader@0.8.1")
NPM_TIMEOUT_S = 300
SCRIPT = Path(__file__).parent / "node" / "client.js"
# The same words as the script's.
WORDS = ["king", "queen", "man", "woman", "prince", "princess", "apple", "banana"]
DIM = 384
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """@grpc/grpc-js and @grpc/proto-loader installed from the npm registry into a temporary
    folder, once per session. Without node, npm or the registry the tests fail: they are
    the proof that a JavaScript client works, so a missing one is not a pass."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("the Node client tests need `node` (v18 or later) and `npm` on PATH")
    prefix = tmp_path_factory.mktemp("node")
    # No install scripts: none of these packages needs one to work.
    argv = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix",
            str(prefix), *NODE_PACKAGES]  # fmt: skip
    where = "the npm registry (`npm config get registry`)"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`npm install {' '.join(NODE_PACKAGES)}` did not finish in "
                    f"{NPM_TIMEOUT_S} s: is {where} reachable?")  # fmt: skip
    if out.returncode != 0:
        pytest.fail(
            f"`npm install {' '.join(NODE_PACKAGES)}` failed (exit {out.returncode}); the Node "
            f"client tests need {where}:\n{out.stderr[-3000:]}"
        )
    return prefix / "node_modules"


def googleapis_dir() -> Path:
    """The folder holding google/rpc/status.proto and error_details.proto: the
    googleapis-common-protos package ships them beside its generated modules."""
    for folder in google.rpc.__path__:
        if (Path(folder) / "status.proto").is_file():
            return Path(folder).parent.parent
    raise AssertionError(f"no google/rpc/status.proto in {list(google.rpc.__path__)}")


def run_node(node_modules: Path, target: str, collection: str) -> dict[str, Any]:
    argv = ["node", str(SCRIPT), target, str(REPO / "proto"), str(googleapis_dir()), collection]
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    answers: dict[str, Any] = json.loads(out.stdout)
    return answers


# ---------------------------------------------------------------- the same calls in Python


def scalar(value: pb.Value) -> Any:
    kind = value.WhichOneof("kind")
    return getattr(value, kind) if kind else None


def neighbors(reply: pb.SearchResponse | pb.MostSimilarResponse) -> list[dict[str, Any]]:
    return [
        {"id": n.id, "score": n.score, "metadata": {k: scalar(v) for k, v in n.metadata.items()}}
        for n in reply.neighbors
    ]


def floats(vector: pb.Vector) -> np.ndarray:
    """A Vector in either form; the form asked for is checked by the caller."""
    if vector.values:
        return np.array(vector.values, np.float32)
    return np.frombuffer(vector.data, "<f4")


def rich_error(err: grpc.RpcError) -> dict[str, Any]:
    """A failed call as the script describes one: code, message, decoded status details."""
    assert isinstance(err, grpc.Call)
    out: dict[str, Any] = {"code": err.code().value[0], "code_name": err.code().name,
                           "message": err.details()}  # fmt: skip
    for key, raw in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(raw)
            details = []
            for any_ in status.details:
                detail: dict[str, Any] = {"type_url": any_.type_url}
                if any_.type_url == BAD_REQUEST:
                    bad = error_details_pb2.BadRequest.FromString(any_.value)
                    detail["field_violations"] = [
                        {"field": v.field, "description": v.description}
                        for v in bad.field_violations
                    ]
                details.append(detail)
            out["status"] = {"code": status.code, "message": status.message, "details": details}
    return out


def text(t: str) -> pb.Query:
    return pb.Query(item=pb.Item(text=t))


def stored(id_: str) -> pb.Query:
    return pb.Query(id=id_)


def packed(vector: np.ndarray) -> pb.Vector:
    return pb.Vector(dim=len(vector), data=vector.astype("<f4").tobytes())


def term(id_: str) -> pb.WeightedQuery:
    return pb.WeightedQuery(query=stored(id_))


def python_answers(target: str, collection: str, node_collection: str) -> dict[str, Any]:
    """The script's calls made with the generated Python stubs on a twin collection, with
    packed vectors where the script sends and asks for `values` (the answers must not depend
    on the form); the bad calls go to the script's collection, so that their messages are the
    same."""
    out: dict[str, Any] = {}
    with grpc.insecure_channel(target) as channel:
        es = pb_grpc.EmbedspaceStub(channel)

        def step(name: str, call: Any) -> None:
            try:
                out[name] = call()
            except grpc.RpcError as err:
                out[name] = {"error": rich_error(err)}

        words = es.Embed(pb.EmbedRequest(encoder="minilm", items=[pb.Item(text=w) for w in WORDS]))
        vectors = np.stack([floats(v) for v in words.vectors])
        king = es.Embed(pb.EmbedRequest(encoder="minilm", items=[pb.Item(text="king")]))
        out["vectors"], out["king"] = vectors, floats(king.vectors[0])

        es.CreateCollection(pb.CreateCollectionRequest(collection=collection, encoder="minilm"))
        points = [
            pb.UpsertPoint(id=w, vector=packed(v), metadata={"letters": pb.Value(int_value=len(w))})
            for w, v in zip(WORDS, vectors, strict=True)
        ]
        es.Upsert(pb.UpsertRequest(collection=collection, points=points))

        def search() -> list[dict[str, Any]]:
            request = pb.SearchRequest(collection=collection, query=text("royal"), k=3)
            return neighbors(es.Search(request))

        def search_batch() -> list[list[dict[str, Any]]]:
            queries = [text("fruit"), stored("queen"), pb.Query(vector=packed(vectors[0]))]
            request = pb.SearchBatchRequest(collection=collection, queries=queries, k=3)
            return [neighbors(r) for r in es.SearchBatch(request).results]

        def distance() -> dict[str, Any]:
            reply = es.Distance(
                pb.DistanceRequest(
                    collection=collection,
                    a=[stored("king"), text("woman")],
                    b=[stored("queen"), stored("apple")],
                )
            )
            return {"distances": list(reply.distances), "rows": reply.rows, "cols": reply.cols,
                    "metric": pb.Metric.Name(reply.metric)}  # fmt: skip

        def most_similar() -> dict[str, Any]:
            reply = es.MostSimilar(
                pb.MostSimilarRequest(
                    collection=collection,
                    positive=[term("king"), term("woman")],
                    negative=[term("man")],
                    k=3,
                    vector_form=pb.VECTOR_FORM_PACKED,
                )
            )
            assert not reply.vector.values, "asked for packed data, got values"
            return {"neighbors": neighbors(reply), "vector": floats(reply.vector)}

        def bad_dimension() -> dict[str, Any]:
            unit = np.eye(1, DIM, dtype=np.float32)[0]
            points = [pb.UpsertPoint(id="fine", vector=packed(unit)),
                      pb.UpsertPoint(id="short", vector=packed(unit[1:]))]  # fmt: skip
            reply = es.Upsert(pb.UpsertRequest(collection=node_collection, points=points))
            return {"unexpected_reply": str(reply)}

        def bad_k() -> dict[str, Any]:
            request = pb.SearchRequest(collection=node_collection, query=stored("king"), k=0)
            return {"unexpected_reply": str(es.Search(request))}

        for call in (search, search_batch, distance, most_similar, bad_dimension, bad_k):
            step(call.__name__, call)
    return out


@pytest.fixture(scope="module")
def answers(
    shared_server: RunningServer, node_modules: Path
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The script's answers, the Python stubs' to the same calls on a twin collection, and
    the name of the script's collection."""
    name = f"node-{uuid.uuid4().hex[:8]}"
    node = run_node(node_modules, shared_server.target, name)
    return node, python_answers(shared_server.target, f"{name}-py", name), name


def ok(answer: Any) -> Any:
    """An answer that must not be an error, with the error shown if it is."""
    assert not (isinstance(answer, dict) and "error" in answer), answer
    return answer


def assert_same_neighbors(node: list[dict[str, Any]], python: list[dict[str, Any]]) -> None:
    assert [n["id"] for n in node] == [n["id"] for n in python]
    assert [n["metadata"] for n in node] == [n["metadata"] for n in python]
    assert np.allclose([n["score"] for n in node], [n["score"] for n in python], atol=1e-6)


# ---------------------------------------------------------------- the checks


def test_node_embeds_to_value_lists_equal_to_the_packed_python_vectors(answers: Any) -> None:
    node, python, _ = answers
    embed = ok(node["embed"])
    assert embed["dims"] == [DIM] * len(WORDS)
    # VECTOR_FORM_VALUES: the floats come as a list and `data` stays empty.
    assert embed["data_lengths"] == [0] * len(WORDS)
    assert np.allclose(np.array(embed["vectors"], np.float32), python["vectors"], atol=1e-6)


def test_node_reads_packed_bytes_at_any_offset(answers: Any) -> None:
    node, python, _ = answers
    packed = ok(node["packed"])
    assert packed["dim"] == DIM and packed["values_length"] == 0
    received, aligned, odd = packed["received"], packed["aligned"], packed["odd"]
    # In place at an offset that is a multiple of 4, through a DataView at any other.
    assert aligned["zero_copy"] and not odd["zero_copy"]
    assert received["zero_copy"] == (received["byte_offset"] % 4 == 0)
    # The view that ignores the offset throws on a misaligned one.
    assert packed["naive_view_at_odd_offset"] == "RangeError"
    assert received["floats"] == aligned["floats"] == odd["floats"]
    assert np.allclose(np.array(received["floats"], np.float32), python["king"], atol=1e-6)
    assert np.allclose(received["floats"], ok(node["embed"])["vectors"][0], atol=1e-6)


def test_node_creates_and_fills_a_collection_with_value_lists(
    answers: Any, shared_server: RunningServer
) -> None:
    node, python, name = answers
    info = ok(node["create"])
    assert (info["name"], info["encoder"], info["dim"]) == (name, "minilm", DIM)
    assert info["metric"] == "METRIC_COSINE"  # enums: String
    # uint64 as a plain number (longs: Number), not a Long object.
    assert info["count"] == 0 and isinstance(info["count"], int)
    assert ok(node["upsert"]) == {"inserted": len(WORDS), "replaced": 0}
    with grpc.insecure_channel(shared_server.target) as channel:
        es = pb_grpc.EmbedspaceStub(channel)
        got = es.Get(pb.GetRequest(collection=name, ids=[*WORDS, "absent"]))
    assert [item.id for item in got.items] == WORDS
    stored = np.stack([floats(item.vector) for item in got.items])
    assert np.allclose(stored, python["vectors"], atol=1e-6)
    assert list(got.missing_ids) == ["absent"]


def test_node_searches_like_python(answers: Any) -> None:
    node, python, _ = answers
    assert len(ok(node["search"])) == 3
    assert_same_neighbors(node["search"], ok(python["search"]))
    batch = ok(node["search_batch"])
    assert len(batch) == 3 and all(len(hits) == 3 for hits in batch)
    for node_hits, python_hits in zip(batch, ok(python["search_batch"]), strict=True):
        assert_same_neighbors(node_hits, python_hits)
    # The third query is king's own vector.
    assert batch[2][0]["id"] == "king"


def test_node_measures_distances_like_python(answers: Any) -> None:
    node, python, _ = answers
    distance, expected = ok(node["distance"]), ok(python["distance"])
    assert (distance["rows"], distance["cols"], distance["metric"]) == (
        expected["rows"], expected["cols"], expected["metric"],
    )  # fmt: skip
    assert len(distance["distances"]) == 2
    assert np.allclose(distance["distances"], expected["distances"], atol=1e-6)


def test_node_solves_the_analogy_like_python(answers: Any) -> None:
    node, python, _ = answers
    analogy, expected = ok(node["most_similar"]), ok(python["most_similar"])
    assert analogy["neighbors"][0]["id"] == "queen"
    assert_same_neighbors(analogy["neighbors"], expected["neighbors"])
    vector = np.array(analogy["vector"], np.float32)
    assert vector.shape == (DIM,)
    assert np.allclose(vector, expected["vector"], atol=1e-6)


@pytest.mark.parametrize(("call", "field"), [("bad_dimension", "points[1].vector"), ("bad_k", "k")])
def test_node_decodes_the_bad_request_of_a_bad_call(answers: Any, call: str, field: str) -> None:
    node, python, _ = answers
    assert "error" in node[call], f"{call} was answered: {node[call]}"
    assert "error" in python[call], f"{call} was answered: {python[call]}"
    error, expected = node[call]["error"], python[call]["error"]
    assert (error["code"], error["code_name"]) == (3, "INVALID_ARGUMENT")
    assert error["message"] == expected["message"]
    assert "status" in error, "no grpc-status-details-bin trailer"
    assert error["status"]["code"] == 3
    (detail,) = [d for d in error["status"]["details"] if d["type_url"] == BAD_REQUEST]
    (violation,) = detail["field_violations"]
    assert violation["field"] == field
    assert violation["description"]
    assert error["status"] == expected["status"]


def test_an_upsert_with_a_bad_point_stores_none_of_its_points(
    answers: Any, shared_server: RunningServer
) -> None:
    """Both clients' bad upserts went to the script's collection; neither stored its good
    point."""
    _, _, name = answers
    with grpc.insecure_channel(shared_server.target) as channel:
        es = pb_grpc.EmbedspaceStub(channel)
        got = es.Get(pb.GetRequest(collection=name, ids=["fine", "short"]))
        count = es.DescribeCollection(pb.DescribeCollectionRequest(collection=name)).count
    assert not got.items and list(got.missing_ids) == ["fine", "short"]
    assert count == len(WORDS)

"""Bulk loading with UpsertStream, over the wire with the generated stubs: each message
applied as it arrives; a point that fails validation left out and reported, the rest of its
message stored; any other error ends the stream, the messages before it staying applied."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from embedspace.v1 import embedspace_pb2 as pb

from .rpc import TIMEOUT, create, point, vec, violation

C = grpc.StatusCode


def _ids(stub: Any, name: str) -> list[str]:
    page = stub.Scan(pb.ScanRequest(collection=name, with_vectors=False), timeout=TIMEOUT)
    return [s.id for s in page.items]


def _rejected(response: Any) -> list[tuple[int, int, str, str]]:
    return [(r.request, r.point, r.id, r.field) for r in response.rejected]


def test_a_bad_point_is_left_out_and_the_rest_of_its_message_stored(
    es_stub: Any, collection_name: str
) -> None:
    name = collection_name
    create(es_stub, name)  # cosine: a zero vector cannot be stored
    rng = np.random.default_rng(0)
    good = rng.normal(size=(20, 8)).astype(np.float32)
    messages = [
        pb.UpsertRequest(collection=name, points=[
            point("a0", good[0]), point("a1", good[1]),
            point("a2", np.ones(7)),  # wrong dimension
            point("a3", good[3], as_values=True), point("a4", good[4]),
        ]),
        pb.UpsertRequest(collection=name, points=[
            point("b0", good[5]),
            point("b1", np.zeros(8)),  # the collection's own check: cosine
            pb.UpsertPoint(id="b2", item=pb.Item(vector=vec(good[6]))),
            pb.UpsertPoint(id="b3", item=pb.Item(vector=vec(np.ones(9)))),  # the encoder's
            pb.UpsertPoint(id="b4"),  # no source
        ]),
        pb.UpsertRequest(collection=name, points=[
            point("", good[7]),  # empty id
            pb.UpsertPoint(id="c1", vector=vec(good[8]), metadata={"bad": pb.Value()}),
            point("c2", good[9], colour="red"),
            point("c2", good[10]),  # the same id twice: the second is left out
            pb.UpsertPoint(id="c4", vector=pb.Vector(dim=8, data=good[11].tobytes(),
                                                     values=good[11].tolist())),
        ]),
    ]  # fmt: skip
    answer = es_stub.UpsertStream(iter(messages), timeout=TIMEOUT)
    assert answer.requests == 3
    assert (answer.inserted, answer.replaced) == (7, 0)
    assert _rejected(answer) == [
        (0, 2, "a2", "points[2].vector"),
        (1, 1, "b1", "points[1].vector"),
        (1, 3, "b3", "points[3].item"),
        (1, 4, "b4", "points[4]"),
        (2, 0, "", "points[0].id"),
        (2, 1, "c1", "points[1].metadata.bad"),
        (2, 3, "c2", "points[3].id"),
        (2, 4, "c4", "points[4].vector"),
    ]
    reasons = [r.reason for r in answer.rejected]
    for reason, words in zip(reasons, ["dimension 8", "all zeros", "dimension 8", "exactly one",
                                       "empty id", "bad", "twice", "both data and values"],
                             strict=True):  # fmt: skip
        assert words in reason, (reason, words)
    assert _ids(es_stub, name) == ["a0", "a1", "a3", "a4", "b0", "b2", "c2"]
    got = es_stub.Get(pb.GetRequest(collection=name, ids=["c2", "a3"]), timeout=TIMEOUT)
    assert got.items[0].metadata["colour"].string_value == "red"  # the first c2, not the second
    a3 = np.frombuffer(got.items[1].vector.data, np.float32)
    np.testing.assert_allclose(a3, good[3] / np.linalg.norm(good[3]), atol=1e-6)


def test_a_stream_of_many_messages(es_stub: Any, collection_name: str) -> None:
    create(es_stub, collection_name, "vec8l2")
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(1000, 8)).astype(np.float32)

    def messages(start: int, stop: int, size: int) -> Any:
        for a in range(start, stop, size):
            yield pb.UpsertRequest(collection=collection_name, points=[
                point(f"p{i:04d}", vectors[i], i=i) for i in range(a, min(a + size, stop))
            ])  # fmt: skip

    answer = es_stub.UpsertStream(messages(0, 1000, 20), timeout=60)
    assert (answer.requests, answer.inserted, answer.replaced, list(answer.rejected)) == (
        50, 1000, 0, [])  # fmt: skip
    again = es_stub.UpsertStream(messages(990, 1000, 3), timeout=60)
    assert (again.requests, again.inserted, again.replaced) == (4, 0, 10)
    count = es_stub.Count(pb.CountRequest(collection=collection_name), timeout=TIMEOUT)
    assert count.count == 1000
    got = es_stub.Get(pb.GetRequest(collection=collection_name, ids=["p0000", "p0999"]),
                      timeout=TIMEOUT)  # fmt: skip
    np.testing.assert_array_equal(
        np.stack([np.frombuffer(s.vector.data, np.float32) for s in got.items]),
        vectors[[0, 999]],
    )


def test_an_unknown_collection_ends_the_stream_after_what_came_before(
    es_stub: Any, collection_name: str
) -> None:
    create(es_stub, collection_name)
    ones = np.ones(8)
    messages = [
        pb.UpsertRequest(collection=collection_name, points=[point("first", ones)]),
        pb.UpsertRequest(collection="no-such-collection", points=[point("x", ones)]),
        pb.UpsertRequest(collection=collection_name, points=[point("never", ones)]),
    ]
    with pytest.raises(grpc.RpcError) as info:
        es_stub.UpsertStream(iter(messages), timeout=TIMEOUT)
    assert info.value.code() == C.NOT_FOUND
    assert "no collection named 'no-such-collection'" in info.value.details()
    assert _ids(es_stub, collection_name) == ["first"]
    # An error of the whole message, not one point's, ends the stream the same way.
    empty = [pb.UpsertRequest(collection=collection_name, points=[point("second", ones)]),
             pb.UpsertRequest(collection=collection_name)]  # fmt: skip
    with pytest.raises(grpc.RpcError) as info:
        es_stub.UpsertStream(iter(empty), timeout=TIMEOUT)
    assert violation(info.value) == ("points", "no points given")
    assert _ids(es_stub, collection_name) == ["first", "second"]


def test_bytes_that_are_not_an_upsert_end_the_stream_as_invalid_argument(
    shared_server: Any, es_stub: Any, collection_name: str
) -> None:
    create(es_stub, collection_name)
    good = pb.UpsertRequest(collection=collection_name, points=[point("ok", np.ones(8))])
    with grpc.insecure_channel(shared_server.target) as channel:
        call = channel.stream_unary("/embedspace.v1.Embedspace/UpsertStream")
        with pytest.raises(grpc.RpcError) as info:
            call(iter([good.SerializeToString(), b"\xff\xff\xff\xff"]), timeout=TIMEOUT)
    err: Any = info.value
    assert err.code() == C.INVALID_ARGUMENT
    assert "not a valid embedspace.v1.UpsertRequest" in err.details()
    assert violation(err)[0] == ""
    assert _ids(es_stub, collection_name) == ["ok"]


def test_items_are_checked_before_they_are_embedded(
    es_stub: Any, shared_server: Any, collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad text is left out before the encoder runs: the good ones of its message are
    embedded once, together."""
    create(es_stub, collection_name, "minilm")
    encoder = shared_server.server.engine.registry.get("minilm")
    calls: list[int] = []
    encode = encoder.encode

    def counting(items: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(items))
        return encode(items, *args, **kwargs)

    monkeypatch.setattr(encoder, "encode", counting)
    texts = ["a cat", " ", "a dog", "x" * 10**5, "a bird"]
    points = [pb.UpsertPoint(id=f"t{i}", item=pb.Item(text=t)) for i, t in enumerate(texts)]
    answer = es_stub.UpsertStream(
        iter([pb.UpsertRequest(collection=collection_name, points=points)]), timeout=60
    )
    assert calls == [3]
    assert _rejected(answer) == [(0, 1, "t1", "points[1].item"), (0, 3, "t3", "points[3].item")]
    assert "empty text" in answer.rejected[0].reason
    assert "max_text_chars" in answer.rejected[1].reason
    assert _ids(es_stub, collection_name) == ["t0", "t2", "t4"]

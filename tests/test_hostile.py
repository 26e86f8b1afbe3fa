"""Property-based hostile input: every RPC is driven with random and malicious messages
(and bytes that are not protobuf at all). The server never answers INTERNAL or UNKNOWN,
never dies, and the data it held before is unchanged after."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from embedspace import Client
from embedspace.v1 import embedspace_pb2 as pb
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .serve_process import BIN, ServeProcess

pytestmark = pytest.mark.slow

SERVICE = pb.DESCRIPTOR.services_by_name["Embedspace"]
EXAMPLES = 200  # per RPC (hypothesis stops early where it runs out of distinct cases)
WRITES = {"Upsert", "UpsertStream", "Delete", "DropCollection", "CreateCollection"}
NAMES = ["ref", "scratch", "scratch-hnsw", "vec8", "minilm", "nope", "", "../etc", "a" * 65,
         "\x00", "Ünïcödé", "🙂", " ref", "ref\n"]  # fmt: skip
SEEN: Counter[str] = Counter()

F = FieldDescriptor
INTS = {F.TYPE_INT32: 31, F.TYPE_INT64: 63, F.TYPE_SINT32: 31, F.TYPE_SINT64: 63,
        F.TYPE_SFIXED32: 31, F.TYPE_SFIXED64: 63}  # fmt: skip
UINTS = {F.TYPE_UINT32: 32, F.TYPE_UINT64: 64, F.TYPE_FIXED32: 32, F.TYPE_FIXED64: 64}
FLOATS = st.one_of(
    st.floats(width=32),  # NaN, inf, subnormals, huge values included
    st.sampled_from([0.0, -0.0, 1e-45, 3.4e38, -3.4e38, float("nan"), float("inf")]),
)
TEXTS = st.one_of(
    st.sampled_from(["", " ", "king", "\x00\x01", "\u202e\u200b", "🙂" * 50, "é" * 3]),
    st.text(max_size=40),
    st.just("long " * 5000),
)


def _vector(data: st.DataObject) -> pb.Vector:
    """Packed, as a list of floats, both at once, or bytes that disagree with dim."""
    dim = data.draw(st.sampled_from([0, 1, 7, 8, 9, 384, 2**31]))
    form = data.draw(st.sampled_from(["packed", "values", "both", "raw"]))
    if form != "raw" and dim <= 384:
        values = data.draw(st.lists(FLOATS, min_size=dim, max_size=dim))
        if form == "values":
            extra = data.draw(st.sampled_from([0, 0, 1]))  # sometimes one more than dim
            return pb.Vector(
                dim=data.draw(st.sampled_from([0, dim])), values=values + [0.0] * extra
            )
        packed = np.asarray(values, "<f4").tobytes()
        return pb.Vector(dim=dim, data=packed, values=values if form == "both" else [])
    return pb.Vector(dim=dim, data=data.draw(st.binary(max_size=64)))


def _scalar(data: st.DataObject, field: FieldDescriptor) -> Any:
    t = field.type
    if t in INTS:
        bits = INTS[t]
        return data.draw(st.one_of(st.integers(-(2**bits), 2**bits - 1), st.integers(-3, 20)))
    if t in UINTS:
        return data.draw(st.one_of(st.integers(0, 2 ** UINTS[t] - 1), st.integers(0, 20)))
    if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        return data.draw(FLOATS)
    if t == F.TYPE_BOOL:
        return data.draw(st.booleans())
    if t == F.TYPE_ENUM:
        return data.draw(st.integers(-3, 8))  # unknown values included
    if t == F.TYPE_BYTES:
        return data.draw(st.binary(max_size=64))
    if field.name in ("collection", "encoder", "backup"):
        return data.draw(st.one_of(st.sampled_from(NAMES), st.text(max_size=10)))
    if field.name == "index":  # factory strings, some of which crash FAISS if let through
        return data.draw(st.one_of(st.sampled_from(
            ["", "Flat", "HNSW0", "HNSW1", "NSG0", "PQ1x0", "IVF0,Flat", "IVF2,Flat", "HNSW8",
             "PQ4x16", "SQ8", "IDMap,Flat", "HNSW8,PQ4", "LSH", "PCA2,Flat"]), TEXTS))  # fmt: skip
    if field.name in ("id", "ids", "exclude"):
        return data.draw(st.one_of(st.sampled_from(["r0", "r1", "ghost", ""]), TEXTS))
    return data.draw(TEXTS)


def _message(data: st.DataObject, desc: Descriptor, depth: int) -> Any:
    cls = getattr(pb, desc.name, None) or _map_entry(desc)
    msg = cls()
    if desc.name == "Vector":
        return _vector(data)
    chosen = {o.name: data.draw(st.sampled_from([None, *o.fields])) for o in desc.oneofs}
    for field in desc.fields:
        oneof = field.containing_oneof
        if oneof is not None and chosen[oneof.name] is not field:
            continue
        if oneof is None and not data.draw(st.booleans()):
            continue
        if field.message_type is not None and depth > 6:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for _ in range(data.draw(st.integers(0, 3))):
                key = data.draw(TEXTS)
                target = getattr(msg, field.name)
                if value_field.message_type is not None:
                    target[key].CopyFrom(_message(data, value_field.message_type, depth + 1))
                else:
                    target[key] = _scalar(data, value_field)
            continue
        if field.is_repeated:
            n = data.draw(st.one_of(st.integers(0, 4), st.just(1100)))
            if field.message_type is not None:
                n = min(n, 4 if depth else 40)
                getattr(msg, field.name).extend(
                    _message(data, field.message_type, depth + 1) for _ in range(n)
                )
            else:
                getattr(msg, field.name).extend(_scalar(data, field) for _ in range(n))
        elif field.message_type is not None:
            getattr(msg, field.name).CopyFrom(_message(data, field.message_type, depth + 1))
        else:
            setattr(msg, field.name, _scalar(data, field))
    return msg


def _map_entry(desc: Descriptor) -> Any:
    raise AssertionError(f"no class for {desc.full_name}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("hostile")
    config = folder / "es.toml"
    config.write_text(
        '[[encoders]]\nname = "minilm"\nkind = "sentence-transformers"\n'
        '[[encoders]]\nname = "vec8"\nkind = "vector"\ndim = 8\n'
    )
    proc = ServeProcess([str(BIN / "embedspace"), "serve", "--config", str(config),
                         "--port", "0", "--data-dir", str(folder / "data")])  # fmt: skip
    try:
        proc.wait_serving()
        with Client(proc.target) as es:
            es.create_collection("ref", "vec8")
            rng = np.random.default_rng(0)
            es.upsert("ref", [f"r{i}" for i in range(50)], vectors=rng.normal(size=(50, 8)),
                      metadata=[{"i": i, "s": "x"} for i in range(50)])  # fmt: skip
            es.create_collection("scratch", "vec8")
            es.create_collection("scratch-hnsw", "vec8", index="HNSW8")
        yield proc
    finally:
        proc.kill()


def _fingerprint(target: str) -> Any:
    with Client(target) as es:
        items = es.get("ref", [f"r{i}" for i in range(50)])
        info = es.describe("ref")
    return info, [(s.id, s.vector.tobytes(), dict(s.metadata)) for s in items]


def _call(channel: grpc.Channel, method: str, payload: bytes) -> None:
    call = channel.unary_unary(f"/{SERVICE.full_name}/{method}")
    try:
        call(payload, timeout=60)
        SEEN["OK"] += 1
    except grpc.RpcError as e:
        code = e.code()  # type: ignore[attr-defined]
        SEEN[code.name] += 1
        # UNAVAILABLE here means the server died: a crash is a failure too.
        bad = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE)
        assert code not in bad, (method, code, e.details())  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
def test_random_messages_never_break_the_server(server: ServeProcess, method: str) -> None:
    rpc = SERVICE.methods_by_name[method]
    with grpc.insecure_channel(server.target) as channel:

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(st.data())
        def run(data: st.DataObject) -> None:
            msg = _message(data, rpc.input_type, 0)
            if method in WRITES and getattr(msg, "collection", None) == "ref":
                msg.collection = "scratch"
            _call(channel, method, msg.SerializeToString())

        run()


def test_bytes_that_are_not_protobuf(server: ServeProcess) -> None:
    with grpc.insecure_channel(server.target) as channel:

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(st.sampled_from([m.name for m in SERVICE.methods if m.name not in WRITES]),
               st.binary(max_size=256))  # fmt: skip
        def run(method: str, payload: bytes) -> None:
            _call(channel, method, payload)

        run()


def test_afterwards_the_server_is_alive_and_its_data_unchanged(
    server: ServeProcess, tmp_path: Path
) -> None:
    assert server.proc.poll() is None
    before = _fingerprint(server.target)
    assert before[0].count == 50
    rng = np.random.default_rng(0)
    expected = rng.normal(size=(50, 8)).astype(np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    for (key, vector, metadata), row in zip(before[1], expected, strict=True):
        assert np.allclose(np.frombuffer(vector, np.float32), row, atol=1e-6)
        assert metadata == {"i": int(key[1:]), "s": "x"}
    total = sum(SEEN.values())
    print(f"\nhostile cases sent: {total}; answers: {dict(SEEN)}")
    assert total >= 2500  # the property tests above ran

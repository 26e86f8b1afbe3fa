"""Helpers for tests that speak the contract with the generated stubs: vectors, points,
collections, and the BadRequest an INVALID_ARGUMENT carries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np
from embedspace.v1 import embedspace_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status

TIMEOUT = 30


def vec(values: Any, *, as_values: bool = False) -> pb.Vector:
    """A Vector message: packed bytes, or (`as_values`) a list of floats."""
    a = np.asarray(values, np.float32)
    if as_values:
        return pb.Vector(dim=a.shape[0], values=a.tolist())
    return pb.Vector(dim=a.shape[0], data=a.tobytes())


def value(v: str | int | float | bool) -> pb.Value:
    if isinstance(v, bool):
        return pb.Value(bool_value=v)
    if isinstance(v, int):
        return pb.Value(int_value=v)
    if isinstance(v, float):
        return pb.Value(double_value=v)
    return pb.Value(string_value=v)


def values(mapping: Mapping[str, str | int | float | bool]) -> dict[str, pb.Value]:
    return {k: value(v) for k, v in mapping.items()}


def point(key: str, vector: Any, *, as_values: bool = False, **metadata: Any) -> pb.UpsertPoint:
    return pb.UpsertPoint(id=key, vector=vec(vector, as_values=as_values),
                          metadata=values(metadata))  # fmt: skip


def create(stub: Any, name: str, encoder: str = "vec8", **fields: Any) -> pb.CollectionInfo:
    request = pb.CreateCollectionRequest(collection=name, encoder=encoder, **fields)
    return stub.CreateCollection(request, timeout=TIMEOUT)


def upsert(
    stub: Any,
    name: str,
    ids: Sequence[str],
    vectors: Any,
    metadata: Sequence[Mapping[str, Any]] | None = None,
) -> pb.UpsertResponse:
    metadata = metadata or [{}] * len(ids)
    points = [point(k, v, **md) for k, v, md in zip(ids, vectors, metadata, strict=True)]
    return stub.Upsert(pb.UpsertRequest(collection=name, points=points), timeout=TIMEOUT)


def rows(vectors: Sequence[pb.Vector]) -> np.ndarray:
    """Vectors of either form as a float32 matrix."""
    return np.stack([np.array(v.values, np.float32) if v.values
                     else np.frombuffer(v.data, np.float32) for v in vectors])  # fmt: skip


def violation(error: grpc.RpcError) -> tuple[str, str]:
    """The one BadRequest field violation of an INVALID_ARGUMENT (its field and description),
    checked to agree with the status it travels with."""
    err: Any = error
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    status = rpc_status.from_call(err)
    assert status is not None, f"no status details with {err.details()!r}"
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message == err.details()
    assert len(status.details) == 1
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    (found,) = bad.field_violations
    assert found.description == err.details()
    return found.field, found.description

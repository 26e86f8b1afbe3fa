"""The wire format of vectors and metadata, shared by the SDK and the server.

Stable: it is part of the v1 contract (proto/embedspace/v1), and changes only with it.

Vectors travel as packed little-endian float32 with their dimension, or as a list of floats
(`Vector`: `data` or `values`, one of the two), tensors as
packed float32 with their shape (`Tensor`), metadata and record fields as `Value`s (str, int,
float or bool). `numpy.frombuffer` reads vectors without a copy or a Python loop. Malformed
messages raise ValueError, values of an unsupported type TypeError; each side maps them to
its own exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from .v1 import embedspace_pb2 as pb

__all__ = [
    "FloatArray",
    "Scalar",
    "from_value",
    "from_values",
    "pack",
    "pack_tensor",
    "to_value",
    "to_values",
    "unpack",
    "unpack_rows",
    "unpack_tensor",
    "uses_values",
]

Scalar: TypeAlias = str | int | float | bool
FloatArray: TypeAlias = npt.NDArray[np.float32]

_F32 = np.dtype("<f4")


def pack(array: npt.ArrayLike, *, values: bool = False) -> pb.Vector:
    """A one-dimensional array as a Vector message: packed bytes, or a list of floats
    (`values`)."""
    vec = np.asarray(array)
    if vec.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional; got shape {vec.shape}")
    if values:
        return pb.Vector(dim=vec.shape[0], values=vec.astype(_F32, copy=False).tolist())
    return pb.Vector(dim=vec.shape[0], data=vec.astype(_F32, copy=False).tobytes())


def uses_values(vector: pb.Vector) -> bool:
    """Whether a Vector message carries its values as a list rather than packed bytes."""
    return len(vector.values) > 0


def unpack(vector: pb.Vector) -> FloatArray:
    """A Vector message as a read-only float32 array (no copy for packed bytes)."""
    if vector.values:
        if vector.data:
            raise ValueError("a vector gives both data and values; give one")
        if vector.dim not in (0, len(vector.values)):
            raise ValueError(
                f"vector says dimension {vector.dim} but carries {len(vector.values)} values"
            )
        out: FloatArray = np.array(vector.values, _F32)
        out.flags.writeable = False
        return out
    if len(vector.data) != 4 * vector.dim:
        raise ValueError(
            f"vector says dimension {vector.dim} but carries {len(vector.data)} bytes "
            f"(expected {4 * vector.dim})"
        )
    packed: FloatArray = np.frombuffer(vector.data, _F32)
    return packed


def unpack_rows(vectors: list[pb.Vector] | tuple[pb.Vector, ...]) -> FloatArray:
    """Vectors of one dimension stacked into a (n, dim) float32 matrix."""
    if not vectors:
        return np.zeros((0, 0), np.float32)
    if any(uses_values(v) for v in vectors):
        rows = [unpack(v) for v in vectors]
        lengths = sorted({len(r) for r in rows})
        if len(lengths) != 1:
            raise ValueError(f"vectors of different dimensions: {lengths}")
        return np.stack(rows)
    dims = {v.dim for v in vectors}
    if len(dims) != 1:
        raise ValueError(f"vectors of different dimensions: {sorted(dims)}")
    for v in vectors:
        unpack(v)  # validates the byte length
    out: FloatArray = np.frombuffer(b"".join(v.data for v in vectors), _F32).reshape(
        len(vectors), dims.pop()
    )
    return out


def pack_tensor(array: npt.ArrayLike) -> pb.Tensor:
    """An array of any shape as a Tensor message."""
    arr = np.ascontiguousarray(array, dtype=_F32)
    return pb.Tensor(shape=list(arr.shape), data=arr.tobytes())


def unpack_tensor(tensor: pb.Tensor) -> FloatArray:
    """A Tensor message as a read-only float32 array of its shape (no copy)."""
    shape = tuple(int(s) for s in tensor.shape)
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(tensor.data) != 4 * size:
        raise ValueError(f"tensor of shape {shape} needs {4 * size} bytes; got {len(tensor.data)}")
    out: FloatArray = np.frombuffer(tensor.data, _F32).reshape(shape)
    return out


def to_value(value: Scalar) -> pb.Value:
    """A str, int, float or bool (numpy scalars too) as a Value message."""
    # bool before int: True is an int in Python.
    if isinstance(value, bool | np.bool_):
        return pb.Value(bool_value=bool(value))
    if isinstance(value, int | np.integer):
        return pb.Value(int_value=int(value))
    if isinstance(value, float | np.floating):
        return pb.Value(double_value=float(value))
    if isinstance(value, str):
        return pb.Value(string_value=value)
    raise TypeError(
        f"metadata and record values must be str, int, float or bool; got {type(value).__name__}"
    )


def from_value(value: pb.Value) -> Scalar:
    """The Python value a Value message holds."""
    kind = value.WhichOneof("kind")
    if kind is None:
        raise ValueError("a value has none of string_value, int_value, double_value, bool_value")
    out: Scalar = getattr(value, kind)
    return out


def to_values(mapping: Mapping[str, Scalar]) -> dict[str, pb.Value]:
    """Metadata (or a record) as a map of Value messages."""
    return {str(k): to_value(v) for k, v in mapping.items()}


def from_values(mapping: Mapping[str, pb.Value]) -> dict[str, Scalar]:
    """A map of Value messages as metadata; a bad value is named by its key."""
    out = {}
    for key, value in mapping.items():
        try:
            out[key] = from_value(value)
        except ValueError as e:
            raise ValueError(f"field {key!r}: {e}") from None
    return out

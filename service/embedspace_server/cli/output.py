"""What the command line prints: one JSON value per line on stdout, and one line per error
on stderr.

Vectors are written as the float64 repr of each float32 value, which reads back to the same
float32 bit for bit; metadata keeps its JSON type (string, integer, float, boolean).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import numpy as np


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types: dataclasses as objects, arrays as lists of floats,
    times as ISO 8601 strings, enums by name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.name.lower()
    return value


def dumps(value: Any) -> str:
    """One line of JSON; NaN and infinities are refused rather than written as invalid
    JSON."""
    return json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False)


def emit(value: Any, out: TextIO | None = None) -> None:
    print(dumps(value), file=out or sys.stdout)


def emit_all(values: Iterable[Any]) -> None:
    for value in values:
        emit(value)


def warn(message: str) -> None:
    print(f"embedspace: {message}", file=sys.stderr)


def vector_list(vector: Any) -> list[float]:
    """A float32 vector as a list of Python floats that JSON writes exactly."""
    values: list[float] = np.asarray(vector, dtype=np.float32).astype(np.float64).tolist()
    return values

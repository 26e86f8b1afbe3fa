"""One row of an input file as one point to upsert: which field is the id, the item (text,
vector or record) and the metadata.

A row gives exactly one of a text, a vector or a record. Metadata is the row's metadata
field when it has one (a JSON object, or a JSON string of one), else every other field.
Cells of a CSV file are text: a vector is a JSON array, and a metadata or record cell is
typed as JSON when it parses as a number, a boolean (true, or True as pandas writes it) or
a quoted string, else kept as the string it is; empty cells are left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from embedspace import Point

Scalar = str | int | float | bool

_F32_MAX = float(np.finfo(np.float32).max)


class BadRow(ValueError):
    """A row that cannot become a point; `field` names the offending field, if one."""

    def __init__(self, reason: str, field: str = "", id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.id = id


@dataclass(frozen=True)
class Fields:
    """Which fields of a row are what."""

    id: str = "id"
    text: str = "text"
    vector: str = "vector"
    metadata: str = "metadata"
    record: tuple[str, ...] = ()


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def typed(cell: str) -> Scalar:
    """A text cell as the scalar it spells in JSON (42, 4.5, true, "quoted"; also True and
    False, as pandas writes them), else as itself."""
    if cell in ("True", "False"):
        return cell == "True"
    try:
        value = json.loads(cell, parse_constant=_refuse_constant)
    except ValueError:
        return cell
    if isinstance(value, float) and not math.isfinite(value):
        return cell
    if isinstance(value, str | int | float | bool):
        return value
    return cell


def _scalar(name: str, value: Any, cells: bool, what: str) -> Scalar:
    if cells and isinstance(value, str):
        return typed(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRow(f"{what} {name!r} is {value}; numbers must be finite", name)
    if isinstance(value, str | int | float | bool):
        return value
    raise BadRow(
        f"{what} {name!r} is {type(value).__name__} {json.dumps(value, default=str)[:40]}; "
        "values are strings, numbers or booleans",
        name,
    )


def vector(name: str, value: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A vector field: a list of numbers, a JSON string of one, or a numpy array of them
    (as Parquet columns of numbers come)."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "fiu":
        return _array(name, value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise BadRow(f"vector {name!r} is not a JSON array of numbers: {e}", name) from None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list) or not value:
        raise BadRow(f"vector {name!r} must be a non-empty array of numbers", name)
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        raise BadRow(f"vector {name!r} must hold only numbers", name)
    return _array(name, np.asarray(value, dtype=np.float64))


def _array(name: str, array: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A one-dimensional array of numbers as float32, if each is a finite float32."""
    if not array.size:
        raise BadRow(f"vector {name!r} must be a non-empty array of numbers", name)
    if array.dtype != np.float32:  # a float32 is within range if finite; others may not be
        wide = array.astype(np.float64, copy=False)
        if not np.isfinite(wide).all() or np.abs(wide).max() > _F32_MAX:
            raise BadRow(f"vector {name!r} holds a value that is not a finite float32", name)
        return wide.astype(np.float32)
    # A float64 sum of float32 values cannot overflow: it is finite if and only if they are.
    if not np.isfinite(array.sum(dtype=np.float64)):
        raise BadRow(f"vector {name!r} holds a value that is not a finite float32", name)
    return array


def _metadata(name: str, value: Any) -> dict[str, Scalar]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise BadRow(f"metadata {name!r} is not a JSON object: {e}", name) from None
    if not isinstance(value, Mapping):
        raise BadRow(f"metadata {name!r} must be an object", name)
    return {
        str(k): _scalar(str(k), v, False, "metadata value")
        for k, v in value.items()
        if v is not None
    }


def _id(fields: Fields, row: dict[str, Any]) -> str:
    value = row.pop(fields.id, None)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise BadRow(f"no id (field {fields.id!r})", fields.id)
    return value


def to_point(row: dict[str, Any], fields: Fields, cells: bool = False) -> Point:
    """The point a row describes; `cells`: the row's values are CSV text. Raises BadRow."""
    row = {k: v for k, v in row.items() if v is not None and not (cells and v == "")}
    id = _id(fields, row)
    try:
        return _point(id, row, fields, cells)
    except BadRow as e:
        e.id = id
        raise


def _point(id: str, row: dict[str, Any], fields: Fields, cells: bool) -> Point:
    from embedspace import Point

    given: dict[str, Any] = {}
    if fields.record:
        missing = [f for f in fields.record if f not in row]
        if len(missing) < len(fields.record):
            if missing:
                raise BadRow(f"the record lacks field(s) {', '.join(missing)}", missing[0])
            given["record"] = {
                f: _scalar(f, row.pop(f), cells, "record field") for f in fields.record
            }
    for kind in ("text", "vector"):
        name = getattr(fields, kind)
        if name in row:
            given[kind] = row.pop(name)
    if len(given) != 1:
        names = [repr(fields.text), repr(fields.vector)]
        if fields.record:
            names.append(f"record fields {','.join(fields.record)}")
        if not given:
            raise BadRow(f"gives no item: give one of {', '.join(names)}")
        raise BadRow(f"gives both {' and '.join(given)}: give one")
    if fields.metadata in row:
        metadata = _metadata(fields.metadata, row[fields.metadata])
    else:
        metadata = {k: _scalar(k, v, cells, "metadata") for k, v in row.items()}
    if "vector" in given:
        return Point(id, vector=vector(fields.vector, given["vector"]), metadata=metadata)
    if "text" in given:
        text = given["text"]
        if not isinstance(text, str):
            raise BadRow(f"text {fields.text!r} must be a string", fields.text)
        return Point(id, item=text, metadata=metadata)
    return Point(id, item=given["record"], metadata=metadata)

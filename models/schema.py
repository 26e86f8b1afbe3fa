"""Record schemas: which named fields a record encoder takes, how each is checked, and how a
record becomes the feature vector the network sees. Numpy only; stored in the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FIELD_TYPES = ("category", "integer", "number")


@dataclass(frozen=True)
class Field:
    """One named field.

    "category": a string from `values`, one-hot encoded. "integer": an int from `low` to
    `high`; "number": an int or a float. Integers and numbers enter the network
    standardised, `(value - mean) / std`.
    """

    name: str
    type: str
    values: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name!r}: type must be one of {FIELD_TYPES}")
        if self.type == "category" and not self.values:
            raise ValueError(f"field {self.name!r}: a category needs values")

    @property
    def width(self) -> int:
        return len(self.values) if self.type == "category" else 1

    def describe(self) -> str:
        """What a valid value looks like, for error messages."""
        if self.type == "category":
            return "one of " + ", ".join(repr(v) for v in self.values)
        if self.type == "integer":
            return f"an integer from {self.low} to {self.high}"
        return "a number"

    def problem(self, value: Any) -> str | None:
        """Why `value` is not valid for this field, or None."""
        if self.type == "category":
            ok = isinstance(value, str) and value in self.values
        elif self.type == "integer":
            ok = (
                isinstance(value, int)
                and not isinstance(value, bool)
                and (self.low is None or value >= self.low)
                and (self.high is None or value <= self.high)
            )
        else:
            ok = (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
        if ok:
            return None
        return f"field {self.name!r} must be {self.describe()}; got {value!r}"

    def encode(self, values: Sequence[Any]) -> npt.NDArray[np.float32]:
        """(n, width) features for valid values."""
        if self.type == "category":
            index = {v: i for i, v in enumerate(self.values)}
            out = np.zeros((len(values), len(self.values)), dtype=np.float32)
            out[np.arange(len(values)), [index[v] for v in values]] = 1.0
            return out
        column = (np.asarray(values, dtype=np.float64) - self.mean) / self.std
        return column.astype(np.float32)[:, None]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "category":
            out["values"] = list(self.values)
        else:
            if self.type == "integer":
                out |= {"low": self.low, "high": self.high}
            out |= {"mean": self.mean, "std": self.std}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Field:
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            values=tuple(str(v) for v in data.get("values", ())),
            low=data.get("low"),
            high=data.get("high"),
            mean=float(data.get("mean", 0.0)),
            std=float(data.get("std", 1.0)),
        )


@dataclass(frozen=True)
class RecordSchema:
    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def width(self) -> int:
        return sum(f.width for f in self.fields)

    def describe(self) -> str:
        return "; ".join(f"{f.name!r} ({f.describe()})" for f in self.fields)

    def problem(self, record: Mapping[str, Any]) -> str | None:
        """Why `record` does not fit the schema (missing, unknown or ill-typed fields)."""
        missing = [n for n in self.names if n not in record]
        unknown = sorted(set(record) - set(self.names))
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"lacks field(s) {missing}")
            if unknown:
                parts.append(f"has unknown field(s) {unknown}")
            return " and ".join(parts) + f"; expected exactly the fields {self.describe()}"
        for f in self.fields:
            reason = f.problem(record[f.name])
            if reason:
                return reason
        return None

    def encode(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float32]:
        """(n, width) float32 features for records that passed `problem`."""
        columns = [f.encode([r[f.name] for r in records]) for f in self.fields]
        return np.concatenate(columns, axis=1)

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.fields]

    @classmethod
    def from_json(cls, data: Sequence[Mapping[str, Any]]) -> RecordSchema:
        return cls(tuple(Field.from_json(d) for d in data))

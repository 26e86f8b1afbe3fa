"""Generated houses after the classic housing example: area code, tax bracket, school
district, house colour and size, and a price that depends on all of them but the colour.
Numpy only; deterministic in the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..schema import Field, RecordSchema

RECIPE = "houses-v1"

# Thousands of dollars per square metre, by area code.
AREA_CODES: dict[str, float] = {
    "201": 2.4,
    "212": 5.5,
    "305": 3.0,
    "415": 6.0,
    "512": 2.2,
    "617": 4.2,
}
# Thousands of dollars a school district adds to (or takes from) the price.
SCHOOL_DISTRICTS: dict[str, float] = {
    "Ashford": 120.0,
    "Brookline": 50.0,
    "Cedarwood": 0.0,
    "Dunmore": -60.0,
}
TAX_BRACKETS = (1, 2, 3, 4, 5)  # each bracket up adds 8% to the price
HOUSE_COLOURS = ("white", "grey", "blue", "red", "green", "yellow")  # no effect on price
SIZE_RANGE = (40.0, 250.0)  # square metres

PRICE_RELEVANT = ("area_code", "tax_bracket", "school_district", "size")


@dataclass(frozen=True)
class HousesData:
    records: list[dict[str, Any]]
    price: npt.NDArray[np.float64]  # thousands of dollars

    def __len__(self) -> int:
        return len(self.records)

    def column(self, name: str) -> list[Any]:
        return [r[name] for r in self.records]


def price_of(area_code: str, tax_bracket: int, school_district: str, size: float) -> float:
    """The noiseless price (thousands of dollars); house colour plays no part."""
    return (
        size * AREA_CODES[area_code] * (1.0 + 0.08 * (tax_bracket - 3))
        + SCHOOL_DISTRICTS[school_district]
    )


def generate(n: int, seed: int, stream: int = 0) -> HousesData:
    """`n` houses with independent, uniformly drawn fields and a noisy price.

    Training draws from stream 0, evaluation from stream 1 (see `shapes.generate`).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4085E, stream]))
    areas = list(AREA_CODES)
    schools = list(SCHOOL_DISTRICTS)
    records: list[dict[str, Any]] = []
    prices = np.empty(n)
    for i in range(n):
        record: dict[str, Any] = {
            "area_code": areas[rng.integers(len(areas))],
            "tax_bracket": int(rng.choice(TAX_BRACKETS)),
            "school_district": schools[rng.integers(len(schools))],
            "colour": HOUSE_COLOURS[rng.integers(len(HOUSE_COLOURS))],
            "size": round(float(rng.uniform(*SIZE_RANGE)), 1),
        }
        clean = price_of(
            record["area_code"], record["tax_bracket"], record["school_district"], record["size"]
        )
        prices[i] = max(clean * (1.0 + rng.normal(0.0, 0.04)), 20.0)
        records.append(record)
    return HousesData(records=records, price=prices)


def schema() -> RecordSchema:
    """The record fields a houses encoder takes, with the standardisation it was trained on."""
    low, high = SIZE_RANGE
    size_std = (high - low) / np.sqrt(12.0)  # of a uniform distribution
    return RecordSchema(
        (
            Field("area_code", "category", values=tuple(AREA_CODES)),
            Field(
                "tax_bracket",
                "integer",
                low=TAX_BRACKETS[0],
                high=TAX_BRACKETS[-1],
                mean=float(np.mean(TAX_BRACKETS)),
                std=float(np.std(TAX_BRACKETS)),
            ),
            Field("school_district", "category", values=tuple(SCHOOL_DISTRICTS)),
            Field("colour", "category", values=HOUSE_COLOURS),
            Field("size", "number", mean=(low + high) / 2, std=float(size_std)),
        )
    )

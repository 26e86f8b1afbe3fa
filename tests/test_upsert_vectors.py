"""The vectors of an upsert: a vector exported from a cosine collection and upserted again
is stored bit for bit (normalising a unit vector again could change its last bits), other
vectors are normalised; a bad point is refused naming its field (`points[i].id`,
`points[i].vector`, i its position in the upsert), which a bulk upsert uses to leave out
only that point, and nothing of the upsert is written."""

from __future__ import annotations

import numpy as np
import pytest
from embedspace_server.errors import InvalidInput
from embedspace_server.index.base import Spec, VectorCollection
from embedspace_server.index.collection import Collection
from embedspace_server.types import Metric

from .sharded import ShardedBackend


def cosine(name: str, dim: int, sharded: bool = False) -> VectorCollection:
    if sharded:
        return ShardedBackend().new(Spec(name, "v", "Flat", Metric.COSINE, dim))
    return Collection.create(name, "v", "Flat", Metric.COSINE, dim)


@pytest.mark.parametrize("dim", [3, 8, 384])
@pytest.mark.parametrize("sharded", [False, True], ids=["faiss", "two-shards"])
def test_an_exported_vector_upserted_again_is_stored_bit_for_bit(dim: int, sharded: bool) -> None:
    rng = np.random.default_rng(dim)
    keys = [f"v{i}" for i in range(400)]
    raw = (rng.normal(size=(400, dim)) * rng.uniform(1e-3, 1e3, size=(400, 1))).astype(np.float32)
    first = cosine("first", dim, sharded)
    first.upsert(keys, raw, [{}] * 400)
    exported = np.stack([item.vector for item in first.get(keys)])
    second = cosine("second", dim, sharded)
    second.upsert(keys, exported, [{}] * 400)
    again = np.stack([item.vector for item in second.get(keys)])
    assert np.array_equal(again, exported)
    # And the other way in, through a scan, then upserted into the first one again.
    scanned = {item.id: item.vector for item in second.scan("", 1000)[0]}
    first.upsert(keys, np.stack([scanned[k] for k in keys]), [{}] * 400)
    assert np.array_equal(np.stack([item.vector for item in first.get(keys)]), exported)


def test_unit_vectors_are_kept_bit_for_bit_and_the_others_normalised() -> None:
    from embedspace_server.vecmath import unit_rows

    rng = np.random.default_rng(4)
    unit = unit_rows(rng.normal(size=(400, 4)).astype(np.float32))
    unit = unit[(unit_rows(unit) != unit).any(axis=1)]  # those normalising again would change
    assert len(unit) >= 3
    nearly = np.array([1 + 1e-5, 0, 0, 0], np.float32)  # beyond a couple of ulps of 1
    others = np.array([[3, 4, 0, 0], nearly, [0, 0, 0, 1e-30], [2e38, 2e38, 0, 0]], np.float32)
    rows = np.concatenate([unit[:3], others])
    c = cosine("c", 4)
    c.upsert(list("abcdefg"), rows, [{}] * 7)
    got = np.stack([item.vector for item in c.get(list("abcdefg"))])
    assert np.array_equal(got[:3], unit[:3])
    want = [[0.6, 0.8, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [2**-0.5] * 2 + [0, 0]]
    assert np.allclose(got[3:], want) and got[4, 0] == np.float32(1)
    # Dot and L2 collections store vectors as given.
    dot = Collection.create("d", "v", "Flat", Metric.DOT, 4)
    dot.upsert(["a"], others[:1], [{}])
    assert np.array_equal(dot.get(["a"])[0].vector, others[0])


@pytest.mark.parametrize("sharded", [False, True], ids=["faiss", "two-shards"])
@pytest.mark.parametrize(
    ("keys", "change", "field"),
    [
        (["a", "b", "c", "b"], None, "points[3].id"),
        (["a", "b", "c", "d"], (2, 0.0), "points[2].vector"),
        (["a", "b", "c", "d"], (1, np.nan), "points[1].vector"),
        (["a", "b", "c", "d"], (3, np.inf), "points[3].vector"),
    ],
)
def test_a_bad_point_is_refused_by_its_field_and_nothing_is_written(
    keys: list[str], change: tuple[int, float] | None, field: str, sharded: bool
) -> None:
    c = cosine("c", 4, sharded)
    c.upsert(["a"], np.ones((1, 4), np.float32), [{"kept": True}])
    rows = np.random.default_rng(1).normal(size=(4, 4)).astype(np.float32)
    if change is not None:
        rows[change[0]] = change[1]
    with pytest.raises(InvalidInput) as raised:
        c.upsert(keys, rows, [{}] * 4)
    assert raised.value.field == field
    assert repr(keys[int(field[7])]) in str(raised.value)
    assert c.count() == 1 and c.get(["a"])[0].metadata == {"kept": True}


def test_vectors_of_another_dimension_are_refused_naming_the_first_point() -> None:
    c = cosine("c", 4)
    with pytest.raises(InvalidInput, match=r"dimension 3.*dimension 4") as raised:
        c.upsert(["a", "b"], np.ones((2, 3), np.float32), [{}, {}])
    assert raised.value.field == "points[0].vector"
    with pytest.raises(InvalidInput, match="needs 2 vectors") as raised:
        c.upsert(["a", "b"], np.ones((3, 4), np.float32), [{}, {}, {}])
    assert raised.value.field == "points"
    assert c.count() == 0

"""IdMap checked against a dict id -> label and a list label -> id, with a hash so weak that
most ids share their hash with others: lookups must confirm each match by the id itself;
and its ids in id order, from any id on, against a sorted list."""

from __future__ import annotations

import numpy as np
import pytest
from embedspace_server.index import idmap
from embedspace_server.index.idmap import IdMap


def check(ids: IdMap, labels: dict[str, int], by_label: list[str | None]) -> None:
    assert ids.by_label == by_label and len(ids) == len(labels)
    assert list(ids) == [k for k in by_label if k is not None]
    assert ids.labels().tolist() == [i for i, k in enumerate(by_label) if k is not None]
    asked = [*labels, "absent", "x999", *(f"x{i}" for i in range(0, 300, 7))]
    assert ids.find(asked) == [labels.get(k) for k in asked]
    ordered = sorted(labels)
    assert ids.after("", len(labels) + 1) == ordered
    for after in ["x1", "x5", "x50", "y", *ordered[::5]]:
        assert ids.after(after, 4) == [k for k in ordered if k > after][:4]


@pytest.mark.parametrize("weak_hash", [True, False])
def test_the_id_map_follows_a_dict(weak_hash: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idmap, "FOLD_MIN", 8)
    if weak_hash:
        monkeypatch.setattr(idmap, "hash", lambda key: len(key) % 3, raising=False)
    rng = np.random.default_rng(5)
    ids = IdMap(["x0", None, "x2"])
    labels = {"x0": 0, "x2": 2}
    by_label: list[str | None] = ["x0", None, "x2"]
    check(ids, labels, by_label)
    fresh = iter(range(3, 10**6))
    for _ in range(60):
        op = rng.integers(3)
        if op == 0:  # append new ids, some of them held before
            keys = list(dict.fromkeys(f"x{rng.integers(300)}" for _ in range(rng.integers(1, 20))))
            keys = [k for k in keys if k not in labels] or [f"y{next(fresh)}"]
            ids.append(keys)
            for key in keys:
                labels[key] = len(by_label)
                by_label.append(key)
        elif labels:
            chosen = list({k: None for k in rng.choice(list(labels), rng.integers(1, 6))})
            if op == 1:  # tombstones
                for key in chosen:
                    ids.bury(labels[key])
                    by_label[labels.pop(key)] = None
            else:  # removal, closing the gaps
                gone = {labels[k] for k in chosen}
                ids.remove(sorted(gone, reverse=True))
                by_label = [k for i, k in enumerate(by_label) if i not in gone]
                labels = {k: i for i, k in enumerate(by_label) if k is not None}
        check(ids, labels, by_label)
    check(IdMap(list(by_label)), labels, by_label)

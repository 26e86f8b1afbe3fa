"""Two geometries from one architecture, served side by side, measured through the service:
the colour-loss encoder keeps colour and drops shape, the shape-loss encoder the reverse;
the house encoder keeps what sets the price and drops the colour; red + blue is purple."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import Client, Ref
from embedspace_models.evaluation import geometry
from embedspace_server.config import DEFAULT_ENCODERS, Settings
from embedspace_server.encoders import build_encoder

from .conftest import RunningServer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    encoders = [build_encoder(c) for c in DEFAULT_ENCODERS if c.name != "minilm"]
    running = RunningServer(
        Settings(port=0, data_dir=tmp_path_factory.mktemp("geometries")), encoders
    )
    yield running
    running.stop()


def _agreement(es: Client, names: list[str], fields: list[str], queries: int) -> Any:
    ids, _, metadata = geometry.scan_all(es, names[0])
    by_id = dict(zip(ids, metadata, strict=True))
    share = {(c, f): [] for c in names for f in fields}
    for key in ids[:queries]:
        result = es.compare(names, Ref(key), k=10)
        for c in names:
            for f in fields:
                share[c, f].append(np.mean([by_id[n.id][f] == by_id[key][f]
                                            for n in result.neighbors[c]]))  # fmt: skip
    return {k: float(np.mean(v)) for k, v in share.items()}


def test_colour_loss_keeps_colour_and_shape_loss_keeps_shape(served: RunningServer) -> None:
    with Client(served.target) as es:
        names = geometry.load_shapes(es, n=600)
        got = _agreement(es, names, ["colour", "shape"], queries=150)
    colour_chance, shape_chance = 1 / 6, 1 / 5
    assert got["shapes-colour", "colour"] >= 0.95
    assert got["shapes-colour", "shape"] <= shape_chance + 0.10
    assert got["shapes-shape", "shape"] >= 0.95
    assert got["shapes-shape", "colour"] <= colour_chance + 0.10


def test_house_neighbours_agree_on_price_fields_not_on_colour(served: RunningServer) -> None:
    with Client(served.target) as es:
        geometry.load_houses(es, n=600)
        ids, _, metadata = geometry.scan_all(es, "houses-price")
        by_id = dict(zip(ids, metadata, strict=True))
        price_gap, colour_same = [], []
        for key in ids[:150]:
            hits = es.search("houses-price", Ref(key), k=10, exclude=[key])
            price_gap.append(
                np.mean([abs(by_id[h.id]["price"] - by_id[key]["price"]) for h in hits])
            )
            colour_same.append(
                np.mean([by_id[h.id]["colour"] == by_id[key]["colour"] for h in hits])
            )
    prices = np.array([m["price"] for m in metadata])
    random_gap = np.mean(np.abs(prices[:, None] - prices[None, :]))
    assert np.mean(price_gap) < 0.2 * random_gap  # neighbours cost about the same
    assert np.mean(colour_same) < 1 / 6 + 0.08  # and their colour is chance


def test_red_plus_blue_is_a_purple_in_rgb(served: RunningServer) -> None:
    with Client(served.target) as es:
        mean = es.mean_vector([Ref("red"), Ref("blue")], collection="xkcd-rgb")
        nearest = es.search("xkcd-rgb", mean, k=1)[0].id
    assert "purple" in nearest or "violet" in nearest


def test_plot_renders_the_two_geometries(served: RunningServer, tmp_path: Path) -> None:
    with Client(served.target) as es:
        geometry.load_shapes(es, n=120)
        out = geometry.plot(es, list(geometry.SHAPES), "colour", tmp_path / "g.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000

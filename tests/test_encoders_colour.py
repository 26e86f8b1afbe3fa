"""Colour encoders: sRGB and CIELAB points of hex codes, XKCD names and (3,) tensors."""

from __future__ import annotations

import numpy as np
import pytest
from embedspace_server.config import EncoderConfig
from embedspace_server.encoders import build_encoder
from embedspace_server.encoders.colour import ColourEncoder, srgb_to_lab, xkcd_colours
from embedspace_server.errors import InvalidInput, NotFound
from embedspace_server.types import Metric, Record, Tensor, Text


def _nearest(point: np.ndarray, space: str) -> str:
    names = [n for n, _ in xkcd_colours()]
    points = ColourEncoder("c", space).encode([Text(n) for n in names])
    return names[int(np.argmin(np.linalg.norm(points - point, axis=1)))]


def test_xkcd_colours_are_the_949_survey_names() -> None:
    colours = xkcd_colours()
    assert len(colours) == 949 == len({n for n, _ in colours})
    table = dict(colours)
    assert table["purple"] == pytest.approx((0x7E / 255, 0x1E / 255, 0x9C / 255))
    assert all(0 <= c <= 1 for _, rgb in colours for c in rgb)
    assert not any(n.startswith("xkcd:") for n in table)


def test_rgb_encoder_reads_hex_names_and_tensors() -> None:
    encoder = build_encoder(EncoderConfig(name="rgb", kind="colour", options={"space": "rgb"}))
    assert (encoder.info.dim, encoder.info.metric, encoder.info.tensor_shape) == (
        3,
        Metric.L2,
        (3,),
    )
    points = encoder.encode(
        [
            Text("#FF8000"),
            Text("purple"),
            Text("xkcd:Purple"),
            Text(" dark  pastel green "),
            Tensor(np.array([0.1, 0.2, 0.3], dtype=np.float32)),
        ]
    )
    assert points.dtype == np.float32 and points.shape == (5, 3)
    assert points[0] == pytest.approx([1.0, 128 / 255, 0.0])
    assert points[1] == pytest.approx(points[2]) and points[1] == pytest.approx(
        [0x7E / 255, 0x1E / 255, 0x9C / 255]
    )
    assert points[3] == pytest.approx([0x56 / 255, 0xAE / 255, 0x57 / 255])
    assert points[4] == pytest.approx([0.1, 0.2, 0.3])


def test_lab_matches_the_published_values() -> None:
    # CIELAB (D65) of sRGB white, red, green, blue and mid grey, as colour tables give them.
    lab = srgb_to_lab([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5], [0, 0, 0]])
    expected = [
        [100.0, 0.0, 0.0],
        [53.24, 80.09, 67.20],
        [87.73, -86.18, 83.18],
        [32.30, 79.19, -107.86],
        [53.39, 0.0, 0.0],
        [0.0, 0.0, 0.0],
    ]
    assert lab == pytest.approx(np.array(expected), abs=0.02)
    encoder = build_encoder(EncoderConfig(name="lab", kind="colour", options={"space": "lab"}))
    assert encoder.encode([Text("#ff0000")])[0] == pytest.approx(expected[1], abs=0.02)


def test_bad_colours_say_what_was_expected() -> None:
    encoder = ColourEncoder("rgb")
    with pytest.raises(InvalidInput, match=r"item 0 must be a tensor of shape \(3,\)"):
        encoder.encode([Tensor(np.zeros(4, dtype=np.float32))])
    with pytest.raises(InvalidInput, match=r"sRGB values in \[0, 1\]"):
        encoder.encode([Tensor(np.array([255, 0, 0], dtype=np.float32))])
    with pytest.raises(InvalidInput, match="'#ff00' is not a colour in the form '#rrggbb'"):
        encoder.encode([Text("#ff00")])
    with pytest.raises(NotFound, match="item 1: no XKCD colour named 'purpel'; did you mean"):
        encoder.encode([Text("red"), Text("purpel")])
    with pytest.raises(InvalidInput, match=r"expects text items .* or tensors of shape"):
        encoder.encode([Record({"r": 1})])
    with pytest.raises(NotFound, match="point 3: no XKCD colour named 'purpel'"):
        encoder.check("point 3", Text("purpel"))  # the per-item check batching relies on
    with pytest.raises(InvalidInput, match="no items"):
        encoder.encode([])
    # The labels the engine passes are the items' paths in the request: the field to blame.
    labels = ["points[0].item", "points[1].item"]
    for bad in (Text("#ff00"), Tensor(np.full(3, 2, np.float32)), Tensor(np.zeros(2, np.float32)),
                Record({"r": 1})):  # fmt: skip
        with pytest.raises(InvalidInput, match=r"points\[1\]\.item") as info:
            encoder.encode([Text("red"), bad], labels)
        assert info.value.field == "points[1].item"
    with pytest.raises(InvalidInput, match="option 'space' must be one of"):
        build_encoder(EncoderConfig(name="c", kind="colour", options={"space": "hsv"}))
    with pytest.raises(InvalidInput, match=r"unknown options \['gamma'\]; known: \['space'\]"):
        build_encoder(EncoderConfig(name="c", kind="colour", options={"gamma": 2.2}))


def test_mean_of_red_and_blue_is_a_purple_in_rgb() -> None:
    """The mean is taken in the encoder's space, so the space changes the answer."""
    rgb = ColourEncoder("rgb", space="rgb").encode([Text("red"), Text("blue")]).mean(axis=0)
    assert "purple" in _nearest(rgb, "rgb") or "violet" in _nearest(rgb, "rgb")
    assert _nearest(rgb, "rgb") == "darkish purple"
    lab = ColourEncoder("lab", space="lab").encode([Text("red"), Text("blue")]).mean(axis=0)
    assert _nearest(lab, "lab") == "red violet"

"""Generated shapes: RGB images of one coloured shape on a grey background, from a seed.

Numpy only. Every image is drawn from its own random stream, so the same seed always gives
the same images, whatever the batch sizes around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RECIPE = "shapes-v1"
SIZE = 32  # images are SIZE x SIZE x 3, float32 in [0, 1]
SUPERSAMPLE = 4  # edges are anti-aliased by drawing at 4x and averaging

# Pure-ish colours, far enough apart that jitter and noise never make one look like another.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.75, 0.15),
    "blue": (0.10, 0.25, 0.95),
    "yellow": (0.95, 0.90, 0.10),
    "magenta": (0.90, 0.15, 0.85),
    "cyan": (0.10, 0.85, 0.90),
}
SHAPES = ("circle", "square", "triangle", "cross", "star")

COLOUR_NAMES = tuple(COLOURS)
_RGB = np.array(list(COLOURS.values()), dtype=np.float32)


@dataclass(frozen=True)
class ShapesData:
    """Images (n, 32, 32, 3) float32 in [0, 1] and their integer labels."""

    images: npt.NDArray[np.float32]
    colour: npt.NDArray[np.int64]  # index into COLOUR_NAMES
    shape: npt.NDArray[np.int64]  # index into SHAPES

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def colour_names(self) -> list[str]:
        return [COLOUR_NAMES[i] for i in self.colour]

    def shape_names(self) -> list[str]:
        return [SHAPES[i] for i in self.shape]


def _polygon(kind: str) -> npt.NDArray[np.float64]:
    """Vertices of a unit-sized outline, centred on the origin."""
    if kind == "square":
        a = 0.8
        return np.array([[-a, -a], [a, -a], [a, a], [-a, a]])
    if kind == "triangle":
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if kind == "star":
        angles = np.pi / 2 + np.pi * np.arange(10) / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    if kind == "cross":
        w, r = 0.32, 0.95
        return np.array(
            [
                [-w, -r], [w, -r], [w, -w], [r, -w], [r, w], [w, w],
                [w, r], [-w, r], [-w, w], [-r, w], [-r, -w], [-w, -w],
            ]
        )  # fmt: skip
    raise ValueError(f"no outline for {kind!r}")


# Every shape covers the same area at a given radius, so how much of the image is coloured
# says nothing about the shape (otherwise a colour encoder could tell shapes by their area).
AREA = 1.5


def _area(verts: npt.NDArray[np.float64]) -> float:
    x, y = verts[:, 0], verts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


_OUTLINES = {
    kind: _polygon(kind) * np.sqrt(AREA / _area(_polygon(kind)))
    for kind in SHAPES
    if kind != "circle"
}
_CIRCLE_R2 = AREA / np.pi
# How far each shape reaches from its centre, in radii: positions keep shapes in frame.
EXTENT = max(1.0, *(float(np.hypot(*v.T).max()) for v in _OUTLINES.values()))


def _inside(
    kind: str, u: npt.NDArray[np.float64], v: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Whether points (u, v), in the shape's own unit frame, fall inside it (even-odd rule)."""
    if kind == "circle":
        out: npt.NDArray[np.bool_] = u * u + v * v <= _CIRCLE_R2
        return out
    verts = _OUTLINES[kind]
    inside = np.zeros(u.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(verts, np.roll(verts, -1, axis=0), strict=True):
        crosses = (y0 > v) != (y1 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (u < x_at)
    return inside


_GRID = (np.arange(SIZE * SUPERSAMPLE) + 0.5) / SUPERSAMPLE  # pixel-space sample positions


def render(colour: int, shape: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """One image: random radius, position, rotation, background grey, colour jitter, noise."""
    radius = rng.uniform(7.0, 13.0)
    cx, cy = rng.uniform(radius * EXTENT, SIZE - radius * EXTENT, size=2)
    angle = rng.uniform(0.0, 2 * np.pi)
    background = rng.uniform(0.05, 0.45)
    rgb = np.clip(_RGB[colour] + rng.uniform(-0.06, 0.06, size=3), 0.0, 1.0)

    x, y = np.meshgrid(_GRID - cx, _GRID - cy)
    cos, sin = np.cos(angle), np.sin(angle)
    u = (cos * x + sin * y) / radius
    v = (-sin * x + cos * y) / radius
    mask = _inside(SHAPES[shape], u, v).astype(np.float32)
    cover = mask.reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE).mean(axis=(1, 3))[..., None]
    image = cover * rgb + (1.0 - cover) * background
    image += rng.normal(0.0, 0.03, size=image.shape)
    out: npt.NDArray[np.float32] = np.clip(image, 0.0, 1.0).astype(np.float32)
    return out


def generate(n: int, seed: int, stream: int = 0) -> ShapesData:
    """`n` images with colours and shapes drawn uniformly, deterministic in `seed`.

    Streams never share images: training draws from stream 0, evaluation from stream 1, so
    held-out images are new whatever seed either used.
    """
    root = np.random.SeedSequence([seed, 0x5EA7, stream])
    labels = np.random.default_rng(root.spawn(1)[0])
    colour = labels.integers(0, len(COLOURS), size=n)
    shape = labels.integers(0, len(SHAPES), size=n)
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.float32)
    for i, child in enumerate(root.spawn(n)):
        images[i] = render(int(colour[i]), int(shape[i]), np.random.default_rng(child))
    return ShapesData(images=images, colour=colour.astype(np.int64), shape=shape.astype(np.int64))

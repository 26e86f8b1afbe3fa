"""Colours as points: a colour's sRGB coordinates, or its CIELAB coordinates.

RGB is already an embedding, just not a perceptually even one; CIELAB (D65 white) is built
so that Euclidean distance roughly follows perceived difference (ΔE*ab, 1976). Both use the
Euclidean metric. Items are texts (`#rrggbb`, or an XKCD colour name as matplotlib ships
them: "purple" or "xkcd:purple") or tensors of shape (3,) holding sRGB values in [0, 1].

The conversion is written out here (sRGB companding, the sRGB/D65 matrix, the CIE 1976 Lab
formulas) rather than taken from a colour library: it is twenty lines, and the service then
needs none.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInput, NotFound
from ..types import EncoderInfo, FloatArray, Item, ItemKind, Metric, Provenance, Tensor, Text
from .base import Encoder, describe_item

SPACES = ("rgb", "lab")
_HEX = re.compile(r"#[0-9a-fA-F]{6}")

# Linear sRGB -> CIE XYZ for the D65 white point (IEC 61966-2-1).
_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_D65 = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0


def srgb_to_lab(rgb: npt.ArrayLike) -> FloatArray:
    """CIELAB (L* in [0, 100]) of sRGB colours in [0, 1], shape (..., 3), D65 white."""
    c = np.asarray(rgb, dtype=np.float64)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (linear @ _SRGB_TO_XYZ.T) / _D65
    f = np.where(t > _DELTA**3, np.cbrt(t), t / (3 * _DELTA**2) + 4.0 / 29.0)
    lab = np.stack(
        [
            116.0 * f[..., 1] - 16.0,
            500.0 * (f[..., 0] - f[..., 1]),
            200.0 * (f[..., 1] - f[..., 2]),
        ],
        axis=-1,
    )
    return lab.astype(np.float32)


def hex_to_rgb(code: str) -> tuple[float, float, float]:
    value = int(code[1:], 16)
    return ((value >> 16) / 255.0, ((value >> 8) & 0xFF) / 255.0, (value & 0xFF) / 255.0)


@functools.cache
def _xkcd() -> dict[str, tuple[float, float, float]]:
    from matplotlib.colors import XKCD_COLORS

    return {name.removeprefix("xkcd:"): hex_to_rgb(str(code)) for name, code in XKCD_COLORS.items()}


def xkcd_colours() -> list[tuple[str, tuple[float, float, float]]]:
    """The 949 XKCD colour-survey names (without the "xkcd:" prefix) and their sRGB points
    in [0, 1], in matplotlib's order."""
    return list(_xkcd().items())


def parse_colour(text: str) -> tuple[float, float, float]:
    """The sRGB point of `#rrggbb` or an XKCD colour name (case and the "xkcd:" prefix
    ignored). Raises InvalidInput for a malformed hex, NotFound for an unknown name."""
    text = text.strip()
    if text.startswith("#"):
        if not _HEX.fullmatch(text):
            raise InvalidInput(f"{text!r} is not a colour in the form '#rrggbb'")
        return hex_to_rgb(text)
    name = " ".join(text.lower().removeprefix("xkcd:").split())
    try:
        return _xkcd()[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_xkcd()), n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise NotFound(f"no XKCD colour named {text!r}{hint}") from None


class ColourEncoder(Encoder):
    """An encoder of colours into sRGB ("rgb") or CIELAB ("lab") coordinates.

    Unlike other encoders it takes two item kinds, texts and (3,)-tensors (`ITEM_KINDS`), so
    it overrides `encode`; `info.item_kind` says text and `info.tensor_shape` (3,) says
    tensors too. `check` validates one item of either kind, `_encode` only converts.
    """

    ITEM_KINDS = (ItemKind.TEXT, ItemKind.TENSOR)

    def __init__(self, name: str, space: str = "rgb", metric: Metric | None = None) -> None:
        if space not in SPACES:
            raise InvalidInput(
                f"encoder {name!r} of kind 'colour': option 'space' must be one of {SPACES}; "
                f"got {space!r}"
            )
        self.space = space
        self.info = EncoderInfo(
            name=name,
            dim=3,
            metric=metric or Metric.L2,
            item_kind=ItemKind.TEXT,
            provenance=Provenance(
                kind="colour",
                details={
                    "space": space,
                    "items": "'#rrggbb', an XKCD colour name, or a (3,) tensor of sRGB in [0, 1]",
                    "conversion": "sRGB (IEC 61966-2-1) -> XYZ (D65) -> CIE 1976 L*a*b*"
                    if space == "lab"
                    else "identity: the sRGB point in [0, 1]^3",
                },
            ),
            tensor_shape=(3,),
        )

    def _rgb(self, label: str, item: Item) -> tuple[float, float, float]:
        where = f"encoder {self.info.name!r}: {label}"
        if isinstance(item, Text):
            try:
                return parse_colour(item.text)
            except InvalidInput as e:
                raise InvalidInput(f"{where}: {e}", field=label) from None
            except NotFound as e:
                raise NotFound(f"{where}: {e}") from None
        if isinstance(item, Tensor):
            a = item.array
            if a.shape != (3,):
                raise InvalidInput(
                    f"{where} must be a tensor of shape (3,) (sRGB in [0, 1]); "
                    f"got shape {tuple(a.shape)}",
                    field=label,
                )
            if not np.isfinite(a).all() or a.min() < 0.0 or a.max() > 1.0:
                raise InvalidInput(
                    f"{where} must hold sRGB values in [0, 1]; got {a.tolist()}", field=label
                )
            return (float(a[0]), float(a[1]), float(a[2]))
        raise InvalidInput(
            f"encoder {self.info.name!r} expects text items (a '#rrggbb' hex or an XKCD colour "
            f"name) or tensors of shape (3,); {label} is {describe_item(item)}",
            field=label,
        )

    def check(self, label: str, item: Item) -> None:
        self._rgb(label, item)

    def encode(self, items: Sequence[Item], labels: Sequence[str] | None = None) -> FloatArray:
        """Validates every item (a text or a tensor), then returns (len(items), 3) float32
        points; `Encoder.encode` would refuse tensors, since `info` names one item kind."""
        if not items:
            raise InvalidInput(f"encoder {self.info.name!r}: no items to embed", field="items")
        for i, item in enumerate(items):
            self.check(labels[i] if labels else f"item {i}", item)
        return self.forward(items)

    def _encode(self, items: Sequence[Item]) -> FloatArray:
        rgb = np.array([self._rgb("", item) for item in items], dtype=np.float64)
        return srgb_to_lab(rgb) if self.space == "lab" else rgb.astype(np.float32)

    def warmup(self) -> None:
        self.encode([Text("purple")])

"""Vector helpers shared by encoders, collections and the engine."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .errors import InvalidInput
from .types import FloatArray

A = TypeVar("A", bound=npt.NDArray[Any])


def check_vector(array: FloatArray, dim: int, what: str, field: str | None = None) -> None:
    """Raises InvalidInput unless `array` is a finite vector of `dim` values. `what` names
    it in messages and, unless `field` is given, is its field path in the request."""
    field = what if field is None else field
    if array.ndim != 1 or array.shape[0] != dim:
        raise InvalidInput(
            f"{what} must have dimension {dim}; got shape {tuple(array.shape)}", field=field
        )
    if not np.isfinite(array).all():
        raise InvalidInput(f"{what} contains NaN or infinite values", field=field)


def unit_rows(matrix: A) -> A:
    """Each row scaled to unit L2 norm, in the input's dtype; zero rows stay zero (as
    gensim's unitvec). Norms are taken in float64, where float32 values near its limit
    (3e38) do not overflow to infinity and so do not turn into zeros."""
    wide = matrix.astype(np.float64, copy=False)
    norms = np.linalg.norm(wide, axis=-1, keepdims=True)
    out: A = np.divide(wide, norms, out=np.zeros_like(wide), where=norms > 0).astype(
        matrix.dtype, copy=False
    )
    return out

"""Search parameters of approximate indexes (efSearch for HNSW, nprobe for IVF): the
collection's defaults and per-query overrides, checked before FAISS sees them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInput
from .base import Spec
from .factory import faiss_module

SEARCH_PARAMS = {"efSearch": "HNSW", "nprobe": "IVF"}


def apply_params(index: Any, spec: Spec) -> None:
    """The collection's default search parameters, set on the index."""
    space = faiss_module().ParameterSpace()
    for name, value in spec.search_params:
        check_param(index, spec, name, value)
        space.set_index_parameter(index, name, value)


def check_param(index: Any, spec: Spec, name: str, value: float) -> None:
    faiss = faiss_module()
    inner = faiss.downcast_index(index)
    kind = SEARCH_PARAMS.get(name)
    fits = (kind == "HNSW" and isinstance(inner, faiss.IndexHNSW)) or (
        kind == "IVF" and faiss.try_extract_index_ivf(inner) is not None
    )
    if not fits:
        raise InvalidInput(
            f"search parameter {name!r} does not apply to index {spec.index!r}; "
            f"known: efSearch (HNSW), nprobe (IVF)",
            field=f"search_params.{name}",
        )
    if not (1 <= value <= 1_000_000) or value != int(value):
        raise InvalidInput(
            f"search parameter {name!r} must be a whole number from 1 to 1000000",
            field=f"search_params.{name}",
        )


def search_parameters(index: Any, spec: Spec, params: Mapping[str, float]) -> Any:
    """FAISS SearchParameters for one query's overrides (None when there are none)."""
    if not params:
        return None
    faiss = faiss_module()
    for name, value in params.items():
        check_param(index, spec, name, value)
    if "efSearch" in params:
        return faiss.SearchParametersHNSW(efSearch=int(params["efSearch"]))
    return faiss.SearchParametersIVF(nprobe=int(params["nprobe"]))

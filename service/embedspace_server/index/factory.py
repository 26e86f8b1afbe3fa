"""FAISS index-factory strings: the forms the service accepts, and building an index."""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidInput
from ..types import Metric
from .base import Spec


def configure_faiss(threads: int, blas_threshold: int) -> None:
    """OpenMP threads for FAISS calls made on this thread (0 leaves FAISS's default), and the
    batch size from which FAISS answers with one matrix product (process-wide)."""
    faiss = faiss_module()
    if threads > 0:
        faiss.omp_set_num_threads(threads)
    faiss.cvar.distance_compute_blas_threshold = blas_threshold


def faiss_module() -> Any:
    """faiss, imported when first needed (its loose SWIG typing stays out of mypy's way)."""
    import faiss

    return faiss


def first_line(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    # FAISS messages look like "Error in ... at file.cpp:123: the actual reason".
    return lines[-1] if lines else type(error).__name__


# FAISS trusts its factory strings: some parameters crash the process instead of raising
# (HNSW0, NSG, PQ1x0, ...). Only these forms, with their parameters in range, are accepted.
FACTORY_FORMS = "Flat, SQ4|6|8|fp16, PQ<m>[x<b>][np], HNSW<M>[,Flat|SQ8|...], IVF<lists>,<codes>"
_SQ = re.compile(r"^SQ(?:4|6|8|fp16)$")
_PQ = re.compile(r"^PQ(\d{1,4})(?:x(\d{1,2}))?(?:np)?$")
_HNSW = re.compile(r"^HNSW(\d{1,3})$")
_IVF = re.compile(r"^IVF(\d{1,6})$")


def _codes_ok(part: str, dim: int) -> bool:
    """Flat, a scalar quantizer, or a product quantizer whose m divides dim."""
    if part == "Flat" or _SQ.match(part):
        return True
    pq = _PQ.match(part)
    if pq is None:
        return False
    m, bits = int(pq.group(1)), int(pq.group(2) or 8)
    return 1 <= m <= dim and dim % m == 0 and 4 <= bits <= 12


def check_factory(index: str, dim: int) -> None:
    """Raises InvalidInput unless `index` is a factory string of a form FAISS handles safely."""
    if "IDMap" in index:
        raise InvalidInput(f"index {index!r}: leave out IDMap; every collection already maps ids")
    parts = index.split(",")
    hnsw, ivf = _HNSW.match(parts[0]), _IVF.match(parts[0])
    if hnsw is not None:
        ok = 4 <= int(hnsw.group(1)) <= 128 and (
            len(parts) == 1
            or (len(parts) == 2 and (parts[1] == "Flat" or bool(_SQ.match(parts[1]))))
        )
    elif ivf is not None:
        ok = 1 <= int(ivf.group(1)) <= 65536 and len(parts) == 2 and _codes_ok(parts[1], dim)
    else:
        ok = len(parts) == 1 and _codes_ok(parts[0], dim)
    if not ok:
        raise InvalidInput(
            f"index {index!r} is not supported for dimension {dim}: use one of {FACTORY_FORMS} "
            "(PQ m divides the dimension and 4 <= b <= 12; 4 <= M <= 128; 1 <= lists <= 65536)"
        )


def build_index(spec: Spec) -> Any:
    """A FAISS index from the factory string."""
    import faiss

    check_factory(spec.index, spec.dim)
    metric = faiss.METRIC_L2 if spec.metric is Metric.L2 else faiss.METRIC_INNER_PRODUCT
    try:
        inner = faiss.index_factory(spec.dim, spec.index, metric)
    except RuntimeError as e:
        raise InvalidInput(
            f"index {spec.index!r} is not a valid FAISS index-factory string for "
            f"dimension {spec.dim}: {first_line(e)}"
        ) from None
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is not None:
        ivf.make_direct_map()  # so stored vectors can be reconstructed
    return inner


def removable(index: Any) -> bool:
    """Whether the index removes entries keeping the others in order, as labels that are
    positions need: the flat-codes family (Flat, SQ, PQ, ...) does; IVF, HNSW and Refine
    keep deleted vectors as tombstones until a rebuild."""
    import faiss

    return isinstance(faiss.downcast_index(index), faiss.IndexFlatCodes)

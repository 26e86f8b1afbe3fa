"""What the trained encoders keep: the measures (`measures`), the evaluation tables on
held-out generated data (`tables`), plots (`plots`), and the same through a running server,
over the SDK (`geometry`, for `embedspace demo|evaluate|plot`).

Numpy only on import; scikit-learn, torch and matplotlib are imported where they are used,
and `geometry` (which imports the SDK) only when asked for.
"""

from __future__ import annotations

from .measures import (
    Embedder,
    Table,
    agreement,
    chance_agreement,
    linear_probe,
    majority,
    neighbours,
    ridge_probe,
)
from .plots import plot_embedding, plot_embeddings
from .tables import (
    EVAL_SEED,
    EVAL_STREAM,
    artifact_embedder,
    evaluate_artifacts,
    houses_table,
    shapes_table,
)

__all__ = [
    "EVAL_SEED",
    "EVAL_STREAM",
    "Embedder",
    "Table",
    "agreement",
    "artifact_embedder",
    "chance_agreement",
    "evaluate_artifacts",
    "houses_table",
    "linear_probe",
    "majority",
    "neighbours",
    "plot_embedding",
    "plot_embeddings",
    "ridge_probe",
    "shapes_table",
]

"""Training for embedspace's trained encoders: generated data (`shapes`, `houses`),
`architectures`, `losses`, the training loop (`train`), artifacts and `evaluate`.

Data, schemas and manifests need only numpy; torch, tqdm, scikit-learn and matplotlib are
imported where they are used, so importing this package is cheap.
"""

from __future__ import annotations

from .train import RECIPES, train

__all__ = ["RECIPES", "train"]

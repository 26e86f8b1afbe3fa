"""How embedspace's trained encoders are trained: generated data (`shapes`, `houses`),
`losses`, and the recipes with the training loop (`train`), which writes an artifact.

The architectures and the artifact format sit one level up, beside the artifacts, because
the service needs them to load what was trained; it needs nothing from here. Data needs only
numpy; torch and tqdm are imported where they are used, so importing this package is cheap.
"""

from __future__ import annotations

from .train import RECIPES, train

__all__ = ["RECIPES", "train"]

"""The losses recipes train with, by name. The loss is what decides what an embedding keeps.

Imports torch: import this module only where torch is wanted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Classification over one attribute: the embedding keeps what tells its classes apart."""
    return F.cross_entropy(logits, labels)


def mse(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Regression on one standardised number: the embedding keeps what predicts it."""
    return F.mse_loss(predicted[:, 0], target)


LOSSES: dict[str, Loss] = {"cross-entropy": cross_entropy, "mse": mse}

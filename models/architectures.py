"""The architectures trained encoders use. Each maps inputs to an embedding (`embed`) and the
embedding through a head to what the loss sees (`forward`); the service calls only `embed`.
A manifest names one of them and its constructor arguments (`build`).

Imports torch: import this module only where torch is wanted.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class CosineHead(nn.Module):
    """Logits are scaled cosines between the embedding and one learned vector per class.

    With this head, cross-entropy shapes the embedding's *angles* (the geometry a cosine
    index sees) and nothing else: a class is a direction, its length is irrelevant.
    """

    def __init__(self, dim: int, classes: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) / dim**0.5)
        self.scale = scale

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(embedding, dim=1) @ F.normalize(self.weight, dim=1).T


class ShapesCNN(nn.Module):
    """A small CNN over (n, height, width, channels) images in [0, 1].

    Three 3x3 conv blocks (each halving the resolution), a linear layer to the embedding,
    and a cosine classification head over `classes`.
    """

    def __init__(
        self,
        height: int = 32,
        width: int = 32,
        channels: int = 3,
        widths: tuple[int, ...] | list[int] = (16, 32, 64),
        embed_dim: int = 32,
        classes: int = 6,
        scale: float = 16.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = channels
        for w in widths:
            layers += [nn.Conv2d(previous, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            previous = w
        self.features = nn.Sequential(*layers, nn.Flatten())
        cells = (height >> len(widths)) * (width >> len(widths))
        self.embedding = nn.Linear(previous * cells, embed_dim)
        self.head = CosineHead(embed_dim, classes, scale)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.embedding(self.features(images.permute(0, 3, 1, 2)))
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.embed(images))
        return out


class MLP(nn.Module):
    """Feature vector -> hidden ReLU layers -> linear embedding -> linear head."""

    def __init__(
        self,
        in_features: int,
        hidden: tuple[int, ...] | list[int] = (64, 64),
        embed_dim: int = 8,
        outputs: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_features
        for h in hidden:
            layers += [nn.Linear(previous, h), nn.ReLU()]
            previous = h
        self.body = nn.Sequential(*layers, nn.Linear(previous, embed_dim))
        self.head = nn.Linear(embed_dim, outputs)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(features)
        return out

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.embed(features))
        return out


ARCHITECTURES: dict[str, type[ShapesCNN] | type[MLP]] = {"shapes-cnn": ShapesCNN, "mlp": MLP}


def build(name: str, args: dict[str, Any]) -> ShapesCNN | MLP:
    """The architecture `name` built with constructor `args` (as a manifest records them)."""
    try:
        cls = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}") from None
    return cls(**args)

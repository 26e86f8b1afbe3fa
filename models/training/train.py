"""Recipes and the training loop: `train(recipe, out, seed)` writes an artifact folder.

Training is deterministic: a fixed number of torch threads, deterministic algorithms, and
every random draw (data, initial weights, batch order) derived from the seed. The same seed
on the same torch build reproduces the same metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import houses, shapes

THREADS = 2  # torch intra-op threads while training, whatever the machine has


@dataclass(frozen=True)
class Recipe:
    """Everything a training run depends on besides the seed."""

    name: str
    data: str  # the data recipe (shapes.RECIPE or houses.RECIPE)
    target: str  # the attribute the loss sees
    loss: str  # a key of losses.LOSSES
    loss_text: str  # the loss in words, for the manifest and the service's encoder list
    architecture: str
    args: dict[str, Any]
    train: int  # training examples
    validation: int  # validation examples, drawn after the training ones
    epochs: int
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    metric: str = "cosine"
    tiny: dict[str, Any] = field(default_factory=dict)  # overrides for a seconds-long run


_SHAPES_CNN = {"height": shapes.SIZE, "width": shapes.SIZE, "channels": 3}
_SHAPES_COMMON: dict[str, Any] = {
    "data": shapes.RECIPE,
    "loss": "cross-entropy",
    "architecture": "shapes-cnn",
    "train": 8000,
    "validation": 1000,
    "epochs": 12,
    "weight_decay": 0.05,
    "tiny": {"train": 384, "validation": 128, "epochs": 2},
}
# Both shapes encoders share images, architecture, seed and schedule; only the target differs.
RECIPES: dict[str, Recipe] = {
    "shapes-by-colour": Recipe(
        name="shapes-by-colour",
        target="colour",
        loss_text=(
            f"cross-entropy over the shape's colour ({len(shapes.COLOURS)} classes), "
            "through a cosine-softmax head (scale 6)"
        ),
        args={**_SHAPES_CNN, "embed_dim": 16, "classes": len(shapes.COLOURS), "scale": 6.0},
        **_SHAPES_COMMON,
    ),
    "shapes-by-shape": Recipe(
        name="shapes-by-shape",
        target="shape",
        loss_text=(
            f"cross-entropy over the shape's kind ({len(shapes.SHAPES)} classes), "
            "through a cosine-softmax head (scale 6)"
        ),
        args={**_SHAPES_CNN, "embed_dim": 16, "classes": len(shapes.SHAPES), "scale": 6.0},
        **_SHAPES_COMMON,
    ),
    "houses-by-price": Recipe(
        name="houses-by-price",
        data=houses.RECIPE,
        target="price",
        loss="mse",
        loss_text=(
            "mean squared error on the standardised price, with decoupled weight decay 0.2 "
            "(AdamW) so that weights from inputs the loss ignores (colour) decay away"
        ),
        architecture="mlp",
        args={"in_features": houses.schema().width, "hidden": [64, 64], "embed_dim": 8},
        train=10000,
        validation=1000,
        epochs=30,
        weight_decay=0.2,
        metric="l2",
        tiny={"train": 512, "validation": 128, "epochs": 3},
    ),
}


@contextmanager
def deterministic(seed: int, threads: int = THREADS) -> Iterator[None]:
    """Seeds torch, pins its thread count and turns on deterministic algorithms; restores
    the process's previous settings and random state afterwards."""
    import torch

    previous = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])


@dataclass(frozen=True)
class _Data:
    x: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any]
    description: dict[str, Any]
    input: dict[str, Any]


def _data(recipe: Recipe, n: int, seed: int) -> _Data:
    if recipe.data == shapes.RECIPE:
        images = shapes.generate(n, seed)
        return _Data(
            x=images.images,
            y=getattr(images, recipe.target),
            description={
                "colours": list(shapes.COLOURS),
                "shapes": list(shapes.SHAPES),
                "classes": list(shapes.COLOURS if recipe.target == "colour" else shapes.SHAPES),
            },
            input={
                "kind": "tensor",
                "shape": [shapes.SIZE, shapes.SIZE, 3],
                "layout": "height, width, RGB",
                "range": [0, 1],
            },
        )
    schema = houses.schema()
    rows = houses.generate(n, seed)
    return _Data(
        x=schema.encode(rows.records),
        y=rows.price.astype(np.float32),
        description={"price_relevant": list(houses.PRICE_RELEVANT), "price_unit": "k$"},
        input={"kind": "record", "fields": schema.to_json()},
    )


def train(
    recipe: str, out: Path, seed: int = 0, progress: bool = True, tiny: bool = False
) -> dict[str, float]:
    """Trains `recipe` with `seed` and writes the artifact to `out`; returns the metrics.

    `tiny` trains a small version in seconds (for tests); its artifact says so.
    """
    import torch
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    from ..architectures import build
    from ..artifacts import save
    from .losses import LOSSES

    try:
        r = RECIPES[recipe]
    except KeyError:
        raise ValueError(f"unknown recipe {recipe!r}; known: {sorted(RECIPES)}") from None
    sizes = {"train": r.train, "validation": r.validation, "epochs": r.epochs}
    if tiny:
        sizes |= r.tiny
    n_train, n_val, epochs = sizes["train"], sizes["validation"], sizes["epochs"]
    started = time.perf_counter()

    data = _data(r, n_train + n_val, seed)
    x = torch.from_numpy(data.x)
    if r.loss == "mse":
        # Standardise the target on the training split only.
        mean, std = float(data.y[:n_train].mean()), float(data.y[:n_train].std())
        y = torch.from_numpy(((data.y - mean) / std).astype(np.float32))
    else:
        mean, std = 0.0, 1.0
        y = torch.from_numpy(data.y)
    x_train, y_train, x_val, y_val = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    loss_fn = LOSSES[r.loss]
    steps_per_epoch = n_train // r.batch_size

    with deterministic(seed):
        model = build(r.architecture, r.args)
        optimiser = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=r.lr, total_steps=epochs * steps_per_epoch
        )
        order = torch.Generator().manual_seed(seed)
        bar = tqdm(total=epochs * steps_per_epoch, desc=recipe, unit="batch", disable=not progress)
        epoch_loss = 0.0
        for epoch in range(epochs):
            model.train()
            permutation = torch.randperm(n_train, generator=order)
            total = 0.0
            for step in range(steps_per_epoch):
                batch = permutation[step * r.batch_size : (step + 1) * r.batch_size]
                loss = loss_fn(model(x_train[batch]), y_train[batch])
                optimiser.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                schedule.step()
                total += float(loss.item())
                bar.update(1)
            epoch_loss = total / steps_per_epoch
            bar.set_postfix(epoch=epoch + 1, loss=f"{epoch_loss:.4f}")
        bar.close()

        model.eval()
        with torch.inference_mode():
            output = model(x_val)
            val_loss = float(loss_fn(output, y_val).item())
    metrics = {"train_loss": epoch_loss, "validation_loss": val_loss}
    if r.loss == "cross-entropy":
        metrics["validation_accuracy"] = float((output.argmax(1) == y_val).float().mean())
    else:
        predicted = output[:, 0].numpy() * std + mean
        actual = data.y[n_train:]
        residual = predicted - actual
        metrics["validation_rmse"] = float(np.sqrt(np.mean(residual**2)))
        metrics["validation_r2"] = float(1.0 - np.mean(residual**2) / np.var(actual))
    seconds = time.perf_counter() - started

    save(
        Path(out),
        model,
        {
            "name": recipe,
            "architecture": {"name": r.architecture, "args": r.args},
            "input": data.input,
            "embedding": {
                "dim": int(r.args["embed_dim"]),
                "metric": r.metric,
                "layer": "the linear layer before the head",
            },
            "loss": r.loss_text,
            "target": {"name": r.target, **({"mean": mean, "std": std} if std != 1.0 else {})},
            "data": {
                "recipe": r.data,
                "seed": seed,
                "train": n_train,
                "validation": n_val,
                **data.description,
            },
            "training": {
                "recipe": recipe,
                "tiny": tiny,
                "epochs": epochs,
                "batch_size": r.batch_size,
                "optimizer": "AdamW + one-cycle learning rate",
                "lr": r.lr,
                "weight_decay": r.weight_decay,
                "torch": torch.__version__,
                "threads": THREADS,
                "seconds": round(seconds, 1),
            },
            "metrics": metrics,
        },
    )
    return metrics

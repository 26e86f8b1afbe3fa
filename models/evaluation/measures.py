"""The measures: how well an embedding keeps one attribute and drops another.

Every measure takes vectors and the items' labels, whoever embedded them; an `Embedder` is a
callable from a batch of inputs (images, or house records) to vectors, with the metric to
search them under, so the same tables come from an artifact in-process or from a server.

- Neighbour agreement@k: for each item, the share of its k nearest neighbours (itself left
  out) with the same value of an attribute. Chance is the share of all other items that have
  the query's value.
- Linear probe: a logistic regression (or, for price, a ridge regression) from the standardised
  embedding to an attribute, fitted on the first half of the held-out items and scored on the
  second. It shows what a linear read-out can still recover, i.e. what the loss did not discard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
Embed = Callable[[Any], Vectors]  # a batch of images (n, 32, 32, 3) or a list of records


@dataclass(frozen=True)
class Embedder:
    embed: Embed
    metric: str = "cosine"  # "cosine", "dot" or "l2", as the encoder's


@dataclass(frozen=True)
class Table:
    """Rows keyed by the space measured; `chance` is the row a space without information
    about any attribute would score."""

    title: str
    columns: tuple[str, ...]
    rows: dict[str, dict[str, float]]
    notes: str = ""

    def markdown(self) -> str:
        head = "| space | " + " | ".join(self.columns) + " |"
        rule = "| --- |" + " ---: |" * len(self.columns)
        lines = [head, rule]
        for space, row in self.rows.items():
            cells = [_cell(row.get(c)) for c in self.columns]
            lines.append(f"| {space} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + (f"\n\n{self.notes}" if self.notes else "")


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def neighbours(vectors: npt.ArrayLike, k: int, metric: str = "cosine") -> npt.NDArray[np.intp]:
    """(n, k) indices of each row's k nearest other rows under `metric`, exact."""
    v = np.asarray(vectors, dtype=np.float64)
    if metric == "cosine":
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    if metric in ("cosine", "dot"):
        score = v @ v.T
    elif metric == "l2":
        squared = (v * v).sum(axis=1)
        score = -(squared[:, None] + squared[None, :] - 2.0 * v @ v.T)
    else:
        raise ValueError(f"metric must be 'cosine', 'dot' or 'l2'; got {metric!r}")
    np.fill_diagonal(score, -np.inf)
    top = np.argpartition(-score, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(score, top, axis=1), axis=1, kind="stable")
    out: npt.NDArray[np.intp] = np.take_along_axis(top, order, axis=1)
    return out


def agreement(neighbour_ids: npt.NDArray[np.intp], labels: npt.ArrayLike) -> float:
    """The share of neighbours that have their query's label."""
    values = np.asarray(labels)
    return float((values[neighbour_ids] == values[:, None]).mean())


def chance_agreement(labels: npt.ArrayLike) -> float:
    """The agreement of neighbours drawn at random from the other items."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    n = counts.sum()
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))


def _halves(n: int) -> tuple[slice, slice]:
    return slice(0, n // 2), slice(n // 2, n)


def linear_probe(vectors: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Held-out accuracy of a logistic regression from the standardised vectors to `labels`."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.pipeline import make_pipeline  # type: ignore[import-untyped]
    from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

    x, y = np.asarray(vectors, dtype=np.float64), np.asarray(labels)
    fit, test = _halves(len(y))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    probe.fit(x[fit], y[fit])
    return float(probe.score(x[test], y[test]))


def majority(labels: npt.ArrayLike) -> float:
    """The accuracy of always guessing the most common label, on the probes' test half."""
    values = np.asarray(labels)
    _, counts = np.unique(values[_halves(len(values))[1]], return_counts=True)
    return float(counts.max() / counts.sum())


def ridge_probe(vectors: npt.ArrayLike, target: npt.ArrayLike) -> float:
    """Held-out R² of a ridge regression from the standardised vectors to `target`."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = np.asarray(vectors, dtype=np.float64), np.asarray(target, dtype=np.float64)
    fit, test = _halves(len(y))
    probe = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    probe.fit(x[fit], y[fit])
    return float(probe.score(x[test], y[test]))

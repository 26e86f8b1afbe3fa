"""How well an embedding keeps one attribute and drops another, on held-out generated data.

Every function here takes *embedders*: a callable from a batch of inputs (images, or house
records) to vectors, with the metric to search them under. In-process they wrap an encoder
(`encoder_embedder`); through the service they wrap a client's `embed` call. So the same
tables come from either.

- Neighbour agreement@k: for each item, the share of its k nearest neighbours (itself left
  out) with the same value of an attribute. Chance is the share of all other items that have
  the query's value.
- Linear probe: a logistic regression (or, for price, a ridge regression) from the standardised
  embedding to an attribute, fitted on the first half of the held-out items and scored on the
  second. It shows what a linear read-out can still recover, i.e. what the loss did not discard.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import houses, shapes

if TYPE_CHECKING:
    from ..encoders.base import Encoder

EVAL_SEED = 2024  # held-out data: this seed, stream 1 (training uses stream 0)
EVAL_STREAM = 1

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


def shapes_table(
    embedders: Mapping[str, Embedder],
    n: int = 2000,
    seed: int = EVAL_SEED,
    k: int = 10,
    pixels: bool = True,
) -> Table:
    """Colour and shape agreement@k and linear probes on `n` held-out images.

    With `pixels`, a row for the raw pixels (3072 values, cosine) shows what the input
    itself holds before any loss has chosen.
    """
    data = shapes.generate(n, seed, stream=EVAL_STREAM)
    spaces = dict(embedders)
    if pixels:
        spaces["pixels"] = Embedder(lambda images: images.reshape(len(images), -1), "cosine")
    rows: dict[str, dict[str, float]] = {}
    for name, embedder in spaces.items():
        vectors = np.asarray(embedder.embed(data.images))
        ids = neighbours(vectors, k, embedder.metric)
        rows[name] = {
            f"colour@{k}": agreement(ids, data.colour),
            f"shape@{k}": agreement(ids, data.shape),
            "colour probe": linear_probe(vectors, data.colour),
            "shape probe": linear_probe(vectors, data.shape),
        }
    rows["chance"] = {
        f"colour@{k}": chance_agreement(data.colour),
        f"shape@{k}": chance_agreement(data.shape),
        "colour probe": majority(data.colour),
        "shape probe": majority(data.shape),
    }
    return Table(
        title=f"shapes: {n} held-out images (seed {seed}), k={k}",
        columns=(f"colour@{k}", f"shape@{k}", "colour probe", "shape probe"),
        rows=rows,
        notes=(
            f"attribute@{k}: share of the {k} nearest neighbours with the query's colour or "
            "shape. probe: held-out accuracy of a logistic regression from the embedding "
            "(fitted on half the images, scored on the other half)."
        ),
    )


def houses_table(
    embedders: Mapping[str, Embedder],
    n: int = 2000,
    seed: int = EVAL_SEED,
    k: int = 10,
    features: bool = True,
) -> Table:
    """Field agreement@k, price and size gaps@k, and colour and price probes on `n` held-out
    houses. With `features`, a row for the network's input features (l2) shows what the
    record itself holds."""
    data = houses.generate(n, seed, stream=EVAL_STREAM)
    spaces = dict(embedders)
    if features:
        schema = houses.schema()
        spaces["input features"] = Embedder(schema.encode, "l2")
    categorical = ("area_code", "tax_bracket", "school_district", "colour")
    size = np.asarray(data.column("size"))
    rows: dict[str, dict[str, float]] = {}
    for name, embedder in spaces.items():
        vectors = np.asarray(embedder.embed(data.records))
        ids = neighbours(vectors, k, embedder.metric)
        row = {f"{f}@{k}": agreement(ids, data.column(f)) for f in categorical}
        row[f"|Δsize|@{k}"] = float(np.abs(size[ids] - size[:, None]).mean())
        row[f"|Δprice|@{k}"] = float(np.abs(data.price[ids] - data.price[:, None]).mean())
        row["colour probe"] = linear_probe(vectors, data.column("colour"))
        row["price probe R²"] = ridge_probe(vectors, data.price)
        rows[name] = row
    chance = {f"{f}@{k}": chance_agreement(data.column(f)) for f in categorical}
    chance[f"|Δsize|@{k}"] = float(np.abs(size[:, None] - size[None, :]).sum() / (n * (n - 1)))
    chance[f"|Δprice|@{k}"] = float(
        np.abs(data.price[:, None] - data.price[None, :]).sum() / (n * (n - 1))
    )
    chance["colour probe"] = majority(data.column("colour"))
    chance["price probe R²"] = 0.0
    rows["chance"] = chance
    return Table(
        title=f"houses: {n} held-out houses (seed {seed}), k={k}",
        columns=(
            *(f"{f}@{k}" for f in categorical),
            f"|Δsize|@{k}",
            f"|Δprice|@{k}",
            "colour probe",
            "price probe R²",
        ),
        rows=rows,
        notes=(
            f"field@{k}: share of the {k} nearest neighbours with the query's value; "
            f"|Δsize| (m²) and |Δprice| (k$): mean gap to the {k} neighbours (chance: to any "
            "other house). colour probe: held-out accuracy of a logistic regression; price "
            "probe: held-out R² of a ridge regression (each fitted on half the houses)."
        ),
    )


def encoder_embedder(encoder: Encoder, batch: int = 512) -> Embedder:
    """An Embedder over an in-process encoder of images (tensor items) or records."""
    from ..types import Item, ItemKind, Record, Tensor

    def embed(inputs: Any) -> Vectors:
        items: list[Item]
        if encoder.info.item_kind is ItemKind.RECORD:
            items = [Record(dict(r)) for r in inputs]
        else:
            items = [Tensor(np.asarray(a, dtype=np.float32)) for a in inputs]
        parts = [encoder.encode(items[i : i + batch]) for i in range(0, len(items), batch)]
        return np.concatenate(parts)

    return Embedder(embed, encoder.info.metric.value)


def default_models_dir() -> Path:
    """The committed artifacts (the `embedspace_models` package)."""
    try:
        models = importlib.import_module("embedspace_models")
    except ImportError:
        raise FileNotFoundError(
            "the embedspace_models package is not installed; "
            "pass the artifacts folder (--models DIR)"
        ) from None
    return Path(models.ARTIFACTS_DIR)


def evaluate_artifacts(
    models_dir: Path | None = None, seed: int = EVAL_SEED, n: int = 2000, k: int = 10
) -> dict[str, Table]:
    """The shapes and houses tables for the artifacts in `models_dir`, in-process."""
    from ..encoders.trained import TrainedEncoder

    folder = Path(models_dir) if models_dir else default_models_dir()
    by_colour = TrainedEncoder("shapes-by-colour", str(folder / "shapes-by-colour"))
    by_shape = TrainedEncoder("shapes-by-shape", str(folder / "shapes-by-shape"))
    by_price = TrainedEncoder("houses-by-price", str(folder / "houses-by-price"))
    return {
        "shapes": shapes_table(
            {
                "shapes-by-colour": encoder_embedder(by_colour),
                "shapes-by-shape": encoder_embedder(by_shape),
            },
            n=n,
            seed=seed,
            k=k,
        ),
        "houses": houses_table(
            {"houses-by-price": encoder_embedder(by_price)}, n=n, seed=seed, k=k
        ),
    }


def _pca2(vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    out: npt.NDArray[np.float64] = x @ vt[:2].T
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def plot_embeddings(
    panels: Sequence[tuple[npt.ArrayLike, Sequence[Any], str]],
    out_png: str | Path,
    title: str = "",
) -> Path:
    """Side by side, each (vectors, labels, title) projected on its first two principal
    components and coloured by label; labels that are all colour names are drawn in that
    colour. Writes a PNG with the Agg backend (no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import is_color_like
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0 * len(panels), 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (vectors, labels, panel_title) in zip(axes, panels, strict=True):
        xy = _pca2(vectors)
        values = list(labels)
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric and len(set(values)) > 12:
            points = ax.scatter(xy[:, 0], xy[:, 1], s=8, c=values, cmap="viridis", alpha=0.8)
            figure.colorbar(points, ax=ax)
        else:
            names = [str(v) for v in values]
            classes = sorted(set(names))
            # Colour names draw in their colour; "0.5" would too (a grey), but is no name.
            named = all(
                isinstance(v, str) and not _is_number(v) and is_color_like(v) for v in values
            )
            for i, c in enumerate(classes):
                mask = np.array([v == c for v in names])
                ax.scatter(
                    xy[mask, 0], xy[mask, 1], s=8, c=c if named else f"C{i % 10}", label=c,
                    alpha=0.75, edgecolors="0.3" if named else "none", linewidths=0.2,
                )  # fmt: skip
            if len(classes) <= 12:
                ax.legend(fontsize="small", markerscale=2, loc="best")
        ax.set_title(panel_title)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    if title:
        figure.suptitle(title)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    return out


def plot_embedding(
    vectors: npt.ArrayLike, labels: Sequence[Any], out_png: str | Path, title: str = ""
) -> Path:
    """One embedding's 2-D PCA projection coloured by `labels`, written to `out_png`."""
    return plot_embeddings([(vectors, labels, title)], out_png)

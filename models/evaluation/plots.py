"""Plots of embeddings: each space projected on its first two principal components,
coloured by an attribute. Matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


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

"""Geometries through the service: load generated held-out data into one collection per
trained encoder, measure what each geometry keeps (neighbour agreement via `compare`,
linear probes on the stored vectors), and plot them. Used by `embedspace demo`,
`embedspace evaluate` and `embedspace plot`; it talks to a server only through the SDK.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedspace import Client, NotFound, Ref, Tensor

from ..training import houses, shapes
from .measures import chance_agreement, linear_probe, ridge_probe
from .plots import plot_embeddings
from .tables import EVAL_SEED, EVAL_STREAM

SHAPES = {"shapes-colour": "shapes-by-colour", "shapes-shape": "shapes-by-shape"}
HOUSES = {"houses-price": "houses-by-price"}


def _fresh(es: Client, name: str, encoder: str) -> None:
    with contextlib.suppress(NotFound):
        es.drop_collection(name)
    es.create_collection(name, encoder)


def load_shapes(es: Client, n: int = 1000, seed: int | None = None) -> list[str]:
    """Held-out generated images into one collection per shapes encoder, with their colour
    and shape as metadata; returns the collection names."""
    data = shapes.generate(n, EVAL_SEED if seed is None else seed, stream=EVAL_STREAM)
    ids = [f"img{i}" for i in range(n)]
    meta = [{"colour": shapes.COLOUR_NAMES[c], "shape": shapes.SHAPES[s]}
            for c, s in zip(data.colour, data.shape, strict=True)]  # fmt: skip
    for name, encoder in SHAPES.items():
        _fresh(es, name, encoder)
        for i in range(0, n, 500):
            items = [Tensor(img) for img in data.images[i : i + 500]]
            es.upsert(name, ids[i : i + 500], items=items, metadata=meta[i : i + 500])
    return list(SHAPES)


def load_houses(es: Client, n: int = 1000, seed: int | None = None) -> list[str]:
    data = houses.generate(n, EVAL_SEED if seed is None else seed, stream=EVAL_STREAM)
    ids = [f"house{i}" for i in range(n)]
    meta = [{**r, "price": float(p)} for r, p in zip(data.records, data.price, strict=True)]
    for name, encoder in HOUSES.items():
        _fresh(es, name, encoder)
        for i in range(0, n, 500):
            es.upsert(name, ids[i : i + 500], items=data.records[i : i + 500],
                      metadata=meta[i : i + 500])  # fmt: skip
    return list(HOUSES)


def scan_all(es: Client, collection: str) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """Every item of a collection, in id order: the ids, the stacked vectors, the metadata."""
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    metadata: list[dict[str, Any]] = []
    for s in es.scan_all(collection):
        assert s.vector is not None  # scan_all sends vectors unless told not to
        ids.append(s.id)
        vectors.append(s.vector)
        metadata.append(dict(s.metadata))
    return ids, np.stack(vectors), metadata


def agreement_table(
    es: Client, collections: Sequence[str], fields: Sequence[str], k: int = 10, queries: int = 300
) -> str:
    """For each collection: the share of a query's k neighbours that share each field with
    it (through `compare`, so every collection answers the same queries), a linear probe
    from the stored vectors to each field, and the mean Jaccard@k between collections."""
    ids, _, metadata = scan_all(es, collections[0])
    by_id = dict(zip(ids, metadata, strict=True))
    share: dict[str, dict[str, list[float]]] = {c: {f: [] for f in fields} for c in collections}
    overlap = []
    for key in ids[:queries]:
        if len(collections) > 1:
            result = es.compare(list(collections), Ref(key), k=k)
            overlap.append(result.jaccard)
            answers = result.neighbors
        else:
            answers = {collections[0]: es.search(collections[0], Ref(key), k, exclude=[key])}
        for c in collections:
            for f in fields:
                same = [by_id[n.id][f] == by_id[key][f] for n in answers[c]]
                share[c][f].append(float(np.mean(same)))
    head = ["collection", *(f"{f}@{k}" for f in fields), *(f"{f} probe" for f in fields)]
    rows: list[list[Any]] = []
    for c in collections:
        _, vectors, meta = scan_all(es, c)
        probes = [linear_probe(vectors, [m[f] for m in meta]) for f in fields]
        rows.append([c, *(np.mean(share[c][f]) for f in fields), *probes])
    chance = [chance_agreement([m[f] for m in metadata]) for f in fields]
    rows.append(["chance", *chance, *([None] * len(fields))])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row[0]), *("" if v is None else f"{v:.3f}" for v in row[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    if overlap:
        jaccard = np.mean(overlap, axis=0)
        lines.append("")
        lines.append(f"mean Jaccard@{k} between {list(collections)}: {jaccard[0, 1]:.3f}")
    return "\n".join(lines)


def price_probe(es: Client, collection: str) -> float:
    """Held-out R² of a ridge regression from the stored house vectors to the price."""
    _, vectors, metadata = scan_all(es, collection)
    return ridge_probe(vectors, [m["price"] for m in metadata])


def plot(es: Client, collections: Sequence[str], color_by: str, out: Path) -> Path:
    """Each collection's stored vectors projected on two principal components, side by
    side, coloured by a metadata field."""
    panels = []
    for c in collections:
        _, vectors, metadata = scan_all(es, c)
        if any(color_by not in m for m in metadata):
            raise ValueError(f"collection {c!r} has items without metadata field {color_by!r}")
        panels.append((vectors, [m[color_by] for m in metadata], c))
    return plot_embeddings(panels, out, title=f"coloured by {color_by}")

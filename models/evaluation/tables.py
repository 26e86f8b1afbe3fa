"""The evaluation tables of the trained encoders on held-out generated data: what the
shapes encoders keep of colour and shape, what the houses encoder keeps of each field and of
the price. In-process, each space is an artifact's model (`artifact_embedder`), run as the
service runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import ARTIFACTS_DIR
from ..artifacts import embed, load
from ..schema import RecordSchema
from ..training import houses, shapes
from .measures import (
    Embedder,
    Table,
    Vectors,
    agreement,
    chance_agreement,
    linear_probe,
    majority,
    neighbours,
    ridge_probe,
)

EVAL_SEED = 2024  # held-out data: this seed, stream 1 (training uses stream 0)
EVAL_STREAM = 1


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


def artifact_embedder(folder: Path, batch: int = 512) -> Embedder:
    """An Embedder over the artifact in `folder`: images, or house records (which its record
    schema encodes), through the model's `embed`, under the manifest's metric."""
    model, manifest = load(Path(folder))
    spec = manifest["input"]
    schema = RecordSchema.from_json(spec["fields"]) if spec["kind"] == "record" else None

    def embed_inputs(inputs: Any) -> Vectors:
        features = schema.encode(inputs) if schema is not None else inputs
        return embed(model, features, batch)

    return Embedder(embed_inputs, str(manifest["embedding"]["metric"]))


def evaluate_artifacts(
    models_dir: Path | None = None, seed: int = EVAL_SEED, n: int = 2000, k: int = 10
) -> dict[str, Table]:
    """The shapes and houses tables for the artifacts in `models_dir` (default: the
    committed ones), in-process."""
    folder = Path(models_dir) if models_dir else ARTIFACTS_DIR
    return {
        "shapes": shapes_table(
            {
                name: artifact_embedder(folder / name)
                for name in ("shapes-by-colour", "shapes-by-shape")
            },
            n=n,
            seed=seed,
            k=k,
        ),
        "houses": houses_table(
            {"houses-by-price": artifact_embedder(folder / "houses-by-price")},
            n=n,
            seed=seed,
            k=k,
        ),
    }

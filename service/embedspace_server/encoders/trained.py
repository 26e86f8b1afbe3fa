"""Trained encoders: a model from an artifact folder (manifest + safetensors, see
`embedspace_models.artifacts`). Takes tensors of the trained shape, or records with the
trained fields, and returns the layer before the head. Serving needs only the artifact
reader, the architectures and the record schema; nothing of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from embedspace_models.artifacts import ArtifactError, embed, load
from embedspace_models.schema import RecordSchema

from ..errors import InvalidInput
from ..types import EncoderInfo, FloatArray, Item, ItemKind, Metric, Provenance, Record, Tensor
from .base import Encoder


def _details(manifest: dict[str, Any]) -> dict[str, str]:
    """The manifest's provenance, flattened into the strings an encoder listing shows."""
    data = manifest["data"]
    training = manifest.get("training", {})
    details = {
        "architecture": manifest["architecture"]["name"],
        "architecture_args": ", ".join(
            f"{k}={v}" for k, v in manifest["architecture"]["args"].items()
        ),
        "data": f"{data['recipe']} seed={data['seed']} train={data['train']} "
        f"validation={data['validation']}",
        "target": str(manifest.get("target", {}).get("name", "")),
        "embedding_layer": str(manifest["embedding"].get("layer", "")),
    }
    for key in ("recipe", "epochs", "optimizer", "weight_decay", "torch", "seconds", "tiny"):
        if key in training:
            details[f"training_{key}"] = str(training[key])
    for key, value in manifest["metrics"].items():
        details[f"metric_{key}"] = f"{value:.6g}" if isinstance(value, float) else str(value)
    return details


class TrainedEncoder(Encoder):
    def __init__(
        self,
        name: str,
        path: str,
        *,
        metric: Metric | None = None,
        batch_size: int = 256,
    ) -> None:
        folder = Path(path)
        try:
            model, manifest = load(folder)
        except ArtifactError as e:
            raise InvalidInput(f"encoder {name!r}: {e}") from None
        self._model = model
        self._batch_size = max(1, batch_size)
        self.manifest = manifest
        spec = manifest["input"]
        self._shape: tuple[int, ...] = ()
        self._range: tuple[float | None, float | None] = (None, None)
        self._layout = ""
        self._schema: RecordSchema | None = None
        if spec["kind"] == "tensor":
            kind = ItemKind.TENSOR
            self._shape = tuple(int(d) for d in spec["shape"])
            low, high = spec.get("range", (None, None))
            self._range = (low, high)
            self._layout = f" ({spec['layout']})" if spec.get("layout") else ""
        elif spec["kind"] == "record":
            kind = ItemKind.RECORD
            self._schema = RecordSchema.from_json(spec["fields"])
        else:
            raise InvalidInput(
                f"encoder {name!r}: artifact input kind must be 'tensor' or 'record'; "
                f"got {spec['kind']!r}"
            )
        self.info = EncoderInfo(
            name=name,
            dim=int(manifest["embedding"]["dim"]),
            metric=metric or Metric(manifest["embedding"]["metric"]),
            item_kind=kind,
            provenance=Provenance(
                kind="trained",
                path=str(folder.resolve()),
                sha256=manifest["weights"]["sha256"],
                loss=manifest["loss"],
                details=_details(manifest),
            ),
            tensor_shape=self._shape,
            record_fields=self._schema.names if self._schema else (),
        )

    def check(self, label: str, item: Item) -> None:
        where = f"encoder {self.info.name!r}: {label}"
        if isinstance(item, Tensor):
            array = item.array
            if tuple(array.shape) != self._shape:
                raise InvalidInput(
                    f"{where} must be a tensor of shape {self._shape}{self._layout}; "
                    f"got shape {tuple(array.shape)}",
                    field=label,
                )
            if not np.isfinite(array).all():
                raise InvalidInput(f"{where} contains NaN or infinite values", field=label)
            low, high = self._range
            if (low is not None and array.min() < low) or (high is not None and array.max() > high):
                raise InvalidInput(
                    f"{where} must hold values in [{low}, {high}]; "
                    f"got values from {float(array.min())} to {float(array.max())}",
                    field=label,
                )
        elif isinstance(item, Record) and self._schema is not None:
            reason = self._schema.problem(item.fields)
            if reason:
                raise InvalidInput(f"{where}: {reason}", field=label)

    def _inputs(self, items: Sequence[Item]) -> FloatArray:
        if self._schema is not None:
            out: FloatArray = self._schema.encode(
                [item.fields for item in items if isinstance(item, Record)]
            )
            return out
        return np.stack([item.array for item in items if isinstance(item, Tensor)])

    def _encode(self, items: Sequence[Item]) -> FloatArray:
        out: FloatArray = embed(self._model, self._inputs(items), self._batch_size)
        return out

    def warmup(self) -> None:
        if self._schema is not None:
            example: dict[str, Any] = {}
            for f in self._schema.fields:
                example[f.name] = f.values[0] if f.type == "category" else (f.low or 0)
            self._encode([Record(example)])
        else:
            self._encode([Tensor(np.zeros(self._shape, dtype=np.float32))])

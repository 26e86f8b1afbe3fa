"""Trained-encoder artifacts: a folder with `model.safetensors` and `manifest.json`.

The manifest says everything needed to rebuild and trust the model: the architecture and its
constructor arguments, the input (tensor shape or record fields), the embedding dimension and
metric, the loss, the data recipe with seed and sizes, the training metrics, and the sha256 of
the weights file. Reading a manifest needs no torch; loading the model does.

Training writes artifacts (`save`); the service and the evaluation read them (`load`, `embed`).
Not to be confused with `embedspace_models.artifact(NAME)`, the folder of a shipped artifact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

    from .architectures import MLP, ShapesCNN

FORMAT = "embedspace-artifact/1"
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"


class ArtifactError(ValueError):
    """An artifact folder that is missing, malformed, or whose weights do not match."""


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, as a manifest records its weights'."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the artifact in `folder`, checked for the keys the service relies on."""
    path = Path(folder) / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{str(folder)!r} is not an artifact folder: no {MANIFEST}") from None
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{str(path)!r} is not valid JSON: {e}") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{str(path)!r}: format must be {FORMAT!r}")
    for key in ("architecture", "input", "embedding", "loss", "data", "metrics", "weights"):
        if key not in manifest:
            raise ArtifactError(f"{str(path)!r} lacks {key!r}")
    return manifest


def verify_weights(folder: Path, manifest: dict[str, Any]) -> Path:
    """The weights file, after checking its sha256 against the manifest's."""
    weights = Path(folder) / str(manifest["weights"]["file"])
    if not weights.is_file():
        raise ArtifactError(f"artifact {str(folder)!r}: weights file {weights.name!r} is missing")
    actual = sha256_file(weights)
    if actual != manifest["weights"]["sha256"]:
        raise ArtifactError(
            f"artifact {str(folder)!r}: {weights.name} has sha256 {actual}, but the manifest "
            f"says {manifest['weights']['sha256']}; the weights were changed or corrupted"
        )
    return weights


def save(folder: Path, model: torch.nn.Module, manifest: dict[str, Any]) -> dict[str, Any]:
    """Writes the weights and the manifest (with the weights' sha256 and size) to `folder`."""
    from safetensors.torch import save as serialise

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    weights.write_bytes(serialise(state))  # (save_file would leave it readable by owner only)
    manifest = {
        "format": FORMAT,
        **manifest,
        "weights": {
            "file": WEIGHTS,
            "sha256": sha256_file(weights),
            "bytes": weights.stat().st_size,
        },
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load(folder: Path) -> tuple[ShapesCNN | MLP, dict[str, Any]]:
    """The model in eval mode and its manifest; the weights' sha256 is verified first."""
    from safetensors.torch import load_file

    from .architectures import build

    manifest = read_manifest(folder)
    weights = verify_weights(folder, manifest)
    arch = manifest["architecture"]
    try:
        model = build(arch["name"], dict(arch["args"]))
        model.load_state_dict(load_file(str(weights)))
    except (ValueError, TypeError, RuntimeError) as e:
        raise ArtifactError(f"artifact {str(folder)!r}: cannot build the model: {e}") from None
    model.eval()
    return model, manifest


def embed(
    model: ShapesCNN | MLP, features: npt.ArrayLike, batch_size: int = 256
) -> npt.NDArray[np.float32]:
    """(n, dim) float32 embeddings of `features`, the network's input rows (images, or
    records already encoded by their schema), in batches and without autograd."""
    import torch

    inputs = np.ascontiguousarray(features, dtype=np.float32)
    step = max(1, batch_size)
    with torch.inference_mode():
        parts = [
            model.embed(torch.from_numpy(inputs[start : start + step])).numpy()
            for start in range(0, max(1, len(inputs)), step)
        ]
    return np.concatenate(parts).astype(np.float32, copy=False)

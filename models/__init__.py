"""embedspace's trained encoders, shipped as the `embedspace_models` package: what was
trained (the artifact folders), how to load it (`artifacts`, `architectures`, `schema`: all
the service imports from here), how it was trained (`training`) and what it keeps
(`evaluation`).

Each artifact is a folder `ARTIFACTS_DIR / NAME` with `model.safetensors` and `manifest.json`;
README.md beside this file says how each was trained and how to retrain it. This package never
imports the server (`embedspace_server`); the server imports it.
"""

from __future__ import annotations

from pathlib import Path

ARTIFACTS_DIR = Path(__file__).resolve().parent
NAMES = ("shapes-by-colour", "shapes-by-shape", "houses-by-price")


def artifact(name: str) -> Path:
    """The folder of the shipped artifact `name` (one of NAMES)."""
    folder = ARTIFACTS_DIR / name
    if name not in NAMES or not (folder / "manifest.json").is_file():
        raise FileNotFoundError(f"no shipped artifact named {name!r}; shipped: {list(NAMES)}")
    return folder


__all__ = ["ARTIFACTS_DIR", "NAMES", "artifact"]

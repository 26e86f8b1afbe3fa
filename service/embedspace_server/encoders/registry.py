"""The encoder registry: builds encoders from config and looks them up by name."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..config import EncoderConfig
from ..errors import EncoderNotFound, InvalidInput
from ..types import EncoderInfo, Metric
from .base import Encoder

KINDS = ("sentence-transformers", "vector", "trained", "colour", "word-vectors")
# The `options` each kind takes, with their defaults; any other option is an error.
OPTIONS: dict[str, dict[str, Any]] = {
    "colour": {"space": "rgb"},
    "word-vectors": {"format": "word2vec-text"},
    "sentence-transformers": {"backend": "torch"},
}


def _options(config: EncoderConfig) -> dict[str, Any]:
    known = OPTIONS.get(config.kind, {})
    unknown = sorted(set(config.options) - set(known))
    if unknown:
        raise InvalidInput(
            f"encoder {config.name!r} of kind {config.kind!r}: unknown options {unknown}; "
            f"known: {sorted(known) or 'none'}"
        )
    return {**known, **config.options}


def _path(config: EncoderConfig, what: str) -> str:
    if not config.path:
        raise InvalidInput(
            f"encoder {config.name!r} of kind {config.kind!r} needs a 'path' ({what})"
        )
    return config.path


def build_encoder(
    config: EncoderConfig, *, threads: int = 0, cache_dir: Path | None = None
) -> Encoder:
    """`threads`: per forward pass where the backend takes it (0: its default);
    `cache_dir`: where backends that need a build step keep their builds (None: rebuild
    on every load)."""
    options = _options(config)
    if config.kind == "trained":
        from .trained import TrainedEncoder

        return TrainedEncoder(
            config.name,
            _path(config, "an artifact folder with manifest.json and model.safetensors"),
            metric=config.metric,
            batch_size=config.batch_size,
        )
    if config.kind == "colour":
        from .colour import ColourEncoder

        return ColourEncoder(config.name, str(options["space"]), metric=config.metric)
    if config.kind == "word-vectors":
        from .word_vectors import WordVectorEncoder

        return WordVectorEncoder(
            config.name,
            _path(config, "a word2vec or GloVe file"),
            fmt=str(options["format"]),
            metric=config.metric,
        )
    if config.kind == "sentence-transformers":
        from .sentence_transformers import SentenceTransformerEncoder

        return SentenceTransformerEncoder(
            config.name,
            config.path,
            metric=config.metric,
            batch_size=config.batch_size,
            backend=str(options["backend"]),
            threads=threads,
            cache_dir=cache_dir,
        )
    if config.kind == "vector":
        from .vector import VectorEncoder

        if not config.dim or config.dim <= 0:
            raise InvalidInput(f"encoder {config.name!r} of kind 'vector' needs a positive 'dim'")
        return VectorEncoder(config.name, config.dim, config.metric or Metric.COSINE)
    raise InvalidInput(f"encoder {config.name!r}: unknown kind {config.kind!r}; known: {KINDS}")


class EncoderRegistry:
    def __init__(self, encoders: Iterable[Encoder] = ()) -> None:
        self._encoders: dict[str, Encoder] = {}
        for encoder in encoders:
            self.add(encoder)

    def add(self, encoder: Encoder) -> None:
        self._encoders[encoder.info.name] = encoder

    def get(self, name: str) -> Encoder:
        try:
            return self._encoders[name]
        except KeyError:
            raise EncoderNotFound(
                f"no encoder named {name!r}; loaded: {sorted(self._encoders)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._encoders

    def infos(self) -> list[EncoderInfo]:
        return [e.info for e in self._encoders.values()]

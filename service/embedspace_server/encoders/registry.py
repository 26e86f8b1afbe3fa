"""The encoder registry: builds encoders from config and looks them up by name."""

from __future__ import annotations

from collections.abc import Iterable

from ..config import EncoderConfig
from ..errors import EncoderNotFound, InvalidInput
from ..types import EncoderInfo, Metric
from .base import Encoder

KINDS = ("sentence-transformers", "vector")


def build_encoder(config: EncoderConfig) -> Encoder:
    if config.kind == "sentence-transformers":
        from .sentence_transformers import SentenceTransformerEncoder

        return SentenceTransformerEncoder(
            config.name, config.path, metric=config.metric, batch_size=config.batch_size
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

"""Encoders whose forward passes run on a pool of Ray actors (`encoder_actors` per encoder).

The front end keeps the encoder's description and its checks of each item, so a bad item
is refused before it joins a batch; batches still form across callers in the front end
(BatchedEncoder), and each forward pass goes to the next actor of the pool. The actors
belong to the front end: they end with it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import ray

from ..config import EncoderConfig
from ..encoders import Encoder, build_encoder
from ..types import FloatArray, Item

# What one encoder actor reserves: a forward pass keeps a core busy.
ACTOR_CPUS = 1.0


class EncoderActor:
    """One copy of an encoder on a Ray node."""

    def __init__(self, config: EncoderConfig, threads: int) -> None:
        self.encoder = build_encoder(config, threads=threads)
        self.encoder.warmup()

    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def encode(self, items: Sequence[Item]) -> FloatArray:
        return self.encoder._encode(items)


class PooledEncoder(Encoder):
    def __init__(self, local: Encoder, config: EncoderConfig, actors: int, threads: int) -> None:
        self._local = local
        remote = ray.remote(EncoderActor).options(num_cpus=ACTOR_CPUS, scheduling_strategy="SPREAD")
        self._actors: list[Any] = [remote.remote(config, threads) for _ in range(actors)]
        self._turn = itertools.count()
        details = {**local.info.provenance.details, "ray_actors": str(actors)}
        self.info = replace(local.info, provenance=replace(local.info.provenance, details=details))

    def check(self, label: str, item: Item) -> None:
        self._local.check(label, item)

    def _encode(self, items: Sequence[Item]) -> FloatArray:
        actor = self._actors[next(self._turn) % len(self._actors)]
        out: FloatArray = ray.get(actor.encode.remote(list(items)))
        return out

    def warmup(self) -> None:
        """Waits until every actor has loaded its encoder."""
        ray.get([a.node.remote() for a in self._actors])

    def nodes(self) -> list[Any]:
        return list(ray.get([a.node.remote() for a in self._actors]))


__all__ = ["PooledEncoder"]

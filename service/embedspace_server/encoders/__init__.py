"""Encoders turn items into vectors behind one small interface (`Encoder`)."""

from __future__ import annotations

from .base import Encoder
from .registry import EncoderRegistry, build_encoder

__all__ = ["Encoder", "EncoderRegistry", "build_encoder"]

"""The embedspace server: encoders, FAISS collections and the gRPC surface over them."""

from __future__ import annotations

__version__ = "0.1.0"

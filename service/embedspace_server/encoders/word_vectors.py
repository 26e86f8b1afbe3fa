"""Static word vectors from a file: word2vec text or binary, or GloVe text (word2vec text
without the header line), loaded with gensim's `KeyedVectors.load_word2vec_format`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput, NotFound
from ..types import EncoderInfo, FloatArray, Item, ItemKind, Metric, Provenance, Text
from .base import Encoder, sha256_file

FORMATS = ("word2vec-text", "word2vec-binary", "glove")


class WordNotFound(NotFound):
    """A word the vectors file has no vector for."""


class WordVectorEncoder(Encoder):
    def __init__(
        self, name: str, path: str, fmt: str = "word2vec-text", metric: Metric | None = None
    ) -> None:
        if fmt not in FORMATS:
            raise InvalidInput(
                f"encoder {name!r} of kind 'word-vectors': option 'format' must be one of "
                f"{FORMATS}; got {fmt!r}"
            )
        file = Path(path)
        if not file.is_file():
            raise InvalidInput(f"encoder {name!r}: word vectors file {str(file)!r} does not exist")
        from gensim.models import KeyedVectors

        try:
            with warnings.catch_warnings():
                # gensim 4.x reopens a header-less file for its second pass and never closes
                # it; the file is released (with a ResourceWarning) as the call returns.
                warnings.simplefilter("ignore", ResourceWarning)
                vectors = KeyedVectors.load_word2vec_format(
                    str(file), binary=fmt == "word2vec-binary", no_header=fmt == "glove"
                )
        except (ValueError, UnicodeDecodeError, EOFError) as e:
            raise InvalidInput(
                f"encoder {name!r}: cannot read {str(file)!r} as {fmt} word vectors: {e}"
            ) from None
        self.vectors: Any = vectors  # gensim KeyedVectors, for callers that want them
        self._matrix = np.ascontiguousarray(vectors.vectors, dtype=np.float32)
        self.info = EncoderInfo(
            name=name,
            dim=int(vectors.vector_size),
            metric=metric or Metric.COSINE,
            item_kind=ItemKind.TEXT,
            provenance=Provenance(
                kind="word-vectors",
                path=str(file.resolve()),
                sha256=sha256_file(file),
                details={"format": fmt, "words": str(len(vectors.index_to_key))},
            ),
        )

    def check(self, label: str, item: Item) -> None:
        assert isinstance(item, Text)
        if not item.text:
            raise InvalidInput(f"encoder {self.info.name!r}: {label} is an empty word", field=label)
        if item.text not in self.vectors.key_to_index:
            raise WordNotFound(
                f"encoder {self.info.name!r}: no vector for the word {item.text!r} ({label}); "
                f"the file has {len(self.vectors.key_to_index)} words"
            )

    def _encode(self, items: Sequence[Item]) -> FloatArray:
        rows = [self.vectors.key_to_index[item.text] for item in items if isinstance(item, Text)]
        out: FloatArray = self._matrix[rows]
        return out

    def warmup(self) -> None:
        """Nothing to warm: the vectors are in memory once loaded."""

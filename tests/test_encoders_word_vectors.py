"""Word vectors from a file: word2vec text and binary and GloVe load; unknown words are
NOT_FOUND naming the word."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from embedspace_server.config import EncoderConfig
from embedspace_server.encoders import build_encoder
from embedspace_server.encoders.word_vectors import WordNotFound
from embedspace_server.errors import InvalidInput, NotFound
from embedspace_server.types import Metric, Tensor, Text
from gensim.models import KeyedVectors

WORDS = ["king", "queen", "man", "woman", "apple", "Paris"]


@pytest.fixture
def vectors() -> KeyedVectors:
    kv = KeyedVectors(vector_size=4)
    rng = np.random.default_rng(0)
    kv.add_vectors(WORDS, rng.normal(size=(len(WORDS), 4)).astype(np.float32))
    return kv


def _write(kv: KeyedVectors, folder: Path, fmt: str) -> Path:
    path = folder / f"vectors.{fmt}"
    if fmt == "glove":
        rows = [w + " " + " ".join(repr(float(x)) for x in kv[w]) for w in kv.index_to_key]
        path.write_text("\n".join(rows) + "\n")
    else:
        kv.save_word2vec_format(str(path), binary=fmt == "word2vec-binary")
    return path


@pytest.mark.parametrize("fmt", ["word2vec-text", "word2vec-binary", "glove"])
def test_each_format_loads_the_same_vectors(vectors, tmp_path: Path, fmt: str) -> None:
    path = _write(vectors, tmp_path, fmt)
    encoder = build_encoder(
        EncoderConfig(name="w", kind="word-vectors", path=str(path), options={"format": fmt})
    )
    assert (encoder.info.dim, encoder.info.metric) == (4, Metric.COSINE)
    assert encoder.info.provenance.details == {"format": fmt, "words": str(len(WORDS))}
    out = encoder.encode([Text("queen"), Text("Paris")])
    assert out.dtype == np.float32
    assert out == pytest.approx(np.stack([vectors["queen"], vectors["Paris"]]), abs=1e-6)

    with pytest.raises(WordNotFound, match="no vector for the word 'paris' \\(item 1\\)") as info:
        encoder.encode([Text("king"), Text("paris")])
    assert isinstance(info.value, NotFound)
    with pytest.raises(InvalidInput, match="expects text items"):
        encoder.encode([Tensor(np.zeros(4, dtype=np.float32))])


def test_default_format_is_word2vec_text(vectors, tmp_path: Path) -> None:
    path = _write(vectors, tmp_path, "word2vec-text")
    encoder = build_encoder(EncoderConfig(name="w", kind="word-vectors", path=str(path)))
    assert encoder.encode([Text("man")])[0] == pytest.approx(vectors["man"], abs=1e-6)


def test_bad_files_and_options_are_refused(vectors, tmp_path: Path) -> None:
    glove = _write(vectors, tmp_path, "glove")
    with pytest.raises(InvalidInput, match=r"cannot read .* as word2vec-text word vectors"):
        build_encoder(EncoderConfig(name="w", kind="word-vectors", path=str(glove)))
    with pytest.raises(InvalidInput, match="does not exist"):
        build_encoder(EncoderConfig(name="w", kind="word-vectors", path=str(tmp_path / "no")))
    with pytest.raises(InvalidInput, match="option 'format' must be one of"):
        build_encoder(
            EncoderConfig(
                name="w", kind="word-vectors", path=str(glove), options={"format": "fasttext"}
            )
        )
    with pytest.raises(InvalidInput, match="needs a 'path'"):
        build_encoder(EncoderConfig(name="w", kind="word-vectors"))

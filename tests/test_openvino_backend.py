"""The OpenVINO text backends: built offline from the bundled model, quality measured and
stated, cached, and served with batching that never changes a caller's vector."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedspace import Client
from embedspace_server.config import EncoderConfig, Settings
from embedspace_server.encoders import Encoder, build_encoder
from embedspace_server.encoders.base import sha256_file
from embedspace_server.errors import InvalidInput
from embedspace_server.types import Text

from .conftest import RunningServer
from .words import analogy_words

pytestmark = pytest.mark.slow  # builds and quantizes the model (about 30 s)


def _config(backend: str) -> EncoderConfig:
    return EncoderConfig(
        name=f"minilm-{backend}", kind="sentence-transformers", options={"backend": backend}
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(scope="module")
def int8(cache: Path) -> Encoder:
    encoder = build_encoder(_config("openvino-int8"), cache_dir=cache)
    encoder.warmup()
    return encoder


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _sentences() -> list[str]:
    """Real sentences neither the calibration nor the build's own check used: gensim's
    'head500' Wikipedia corpus, cut into 12-word pieces."""
    import gensim

    corpus = Path(gensim.__file__).parent / "test" / "test_data" / "head500.noblanks.cor"
    words = corpus.read_text(encoding="latin-1").split()[:3000]
    return [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]


def test_the_int8_build_states_its_quality(int8: Encoder) -> None:
    details = int8.info.provenance.details
    assert details["backend"] == "openvino-int8"
    assert {"openvino", "nncf", "calibration", "held_out"} <= set(details)
    assert float(details["cosine_mean_sentences"]) >= 0.995
    assert float(details["cosine_min_sentences"]) >= 0.98
    assert float(details["batch_invariance_min"]) >= 0.9995
    # Google analogy set over the 905 words: int8 answers as well as fp32 PyTorch.
    accuracy, reference = (
        float(details[k]) for k in ("analogy_accuracy", "analogy_accuracy_torch")
    )
    assert reference > 0.6 and abs(accuracy - reference) <= 0.01


def test_int8_vectors_stay_close_to_pytorch_on_unseen_text(int8: Encoder, minilm: Any) -> None:
    texts = _sentences() + analogy_words()[:200]
    items = [Text(t) for t in texts]
    cos = (_unit(int8.encode(items)) * _unit(minilm.encode(items))).sum(1)
    assert cos.mean() >= 0.995, cos.mean()
    assert cos.min() >= 0.95, cos.min()


def test_the_fp32_openvino_backend_matches_pytorch(cache: Path, minilm: Any) -> None:
    encoder = build_encoder(_config("openvino"), cache_dir=cache)
    items = [Text(t) for t in [*_sentences()[:64], "queen", "a"]]
    cos = (_unit(encoder.encode(items)) * _unit(minilm.encode(items))).sum(1)
    assert cos.min() >= 0.9999, cos.min()


def test_a_cached_build_is_reused(int8: Encoder, cache: Path) -> None:
    (folder,) = [p for p in cache.iterdir() if "int8" in p.name]
    assert {"model.xml", "model.bin", "quality.json"} <= {p.name for p in folder.iterdir()}
    built = (folder / "model.bin").stat().st_mtime_ns
    again = build_encoder(_config("openvino-int8"), cache_dir=cache)
    assert (folder / "model.bin").stat().st_mtime_ns == built
    stated = json.loads((folder / "quality.json").read_text())
    assert stated.items() <= again.info.provenance.details.items()
    items = [Text(t) for t in _sentences()[:40]]
    np.testing.assert_array_equal(again.encode(items), int8.encode(items))


def test_a_damaged_cached_build_is_rebuilt_not_served(int8: Encoder, cache: Path) -> None:
    """Weights with one byte changed would load and serve wrong vectors: the checksum
    written with them refuses them, and the build is made again."""
    (folder,) = [p for p in cache.iterdir() if "int8" in p.name]
    weights = folder / "model.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    again = build_encoder(_config("openvino-int8"), cache_dir=cache)
    items = [Text(t) for t in _sentences()[:40]]
    np.testing.assert_allclose(again.encode(items), int8.encode(items), atol=1e-5)
    assert weights.read_bytes() != bytes(data)  # repaired
    assert sha256_file(weights) == (folder / "model.bin.sha256").read_text()


def test_a_cache_that_cannot_be_written_costs_only_a_rebuild(
    tmp_path: Path, minilm: Any, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    encoder = build_encoder(_config("openvino"), cache_dir=blocker / "cache")
    assert "cannot cache the openvino build" in caplog.text
    items = [Text("queen"), Text("a red apple")]
    cos = (_unit(encoder.encode(items)) * _unit(minilm.encode(items))).sum(1)
    assert cos.min() >= 0.9999


def test_a_text_gets_the_same_vector_alone_and_in_any_batch(int8: Encoder, tmp_path: Path) -> None:
    """Static quantization: with dynamic batching, strangers' texts in the same forward
    pass never change a caller's vector."""
    texts = _sentences()[:48] + analogy_words()[:48]
    alone = _unit(np.concatenate([int8.encode([Text(t)]) for t in texts]))
    settings = Settings(
        host="127.0.0.1", port=0, data_dir=tmp_path, embed_batch=32, embed_wait_ms=20
    )
    server = RunningServer(settings, [int8])
    try:
        (batched,) = server.server._batched

        def one(text: str) -> np.ndarray:
            with Client(server.target) as es:
                return es.embed(int8.info.name, [text])[0]

        with ThreadPoolExecutor(16) as pool:
            served = _unit(np.stack(list(pool.map(one, texts))))
        assert batched.batcher.batches < len(texts)  # calls shared forward passes
    finally:
        server.stop()
    assert (served * alone).sum(1).min() >= 0.9995


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"unknown backend 'onnx'.*openvino-int8"):
        build_encoder(_config("onnx"))

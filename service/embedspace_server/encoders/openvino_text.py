"""An OpenVINO backend for sentence-transformers text encoders.

The model's transformer is converted from the local model folder with
`openvino.convert_model` (no hub, no optimum), and for `openvino-int8` quantized with NNCF's
*static* post-training quantization: activation scales are fixed at build time from a
calibration set, so a text's vector never depends on the other texts in its batch (dynamic
int8, as ONNX Runtime does it, quantizes per batch, and a caller's vector would change
with strangers' texts). Pooling and normalisation run in numpy, as the model's own modules
describe them.

Weights are quantized to 7 bits (NNCF's overflow fix on every layer). On x86 CPUs without
VNNI (AVX2 only), OpenVINO's int8 matmuls add pairs of u8 x s8 products in 16 bits, which
saturate with 8-bit weights: the same build kept less of PyTorch's vectors there than on a
CPU with VNNI. With 7-bit weights the sums fit and the kernels compute what the quantized
model means, so the quality a build states holds on whichever CPU serves it. The 7 bits
cost accuracy, won back by keeping the feed-forward down-projections in fp32: their input,
the activation's output, carries the outliers that int8 handles worst.

A build measures its quality against the PyTorch model it came from, on held-out real
text (gensim's test corpora and the Google analogy words, never the calibration text):
cosine to the fp32 vectors, the same text alone against inside a batch, and analogy
accuracy. The figures go into the encoder's provenance; a build whose sentences fall
below `MIN_COSINE` is refused. Builds are cached by model, backend and library versions.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FailedPrecondition, InvalidInput
from ..types import FloatArray
from .base import sha256_file

log = logging.getLogger(__name__)

BACKENDS = ("torch", "openvino", "openvino-int8")
# Bump when the way a build is made changes, so cached builds are rebuilt.
# 2: 7-bit weights, feed-forward down-projections in fp32.
RECIPE = 2
# A build whose held-out sentences fall below this cosine to PyTorch is refused (a broken
# build, not a judgement of quality: a good int8 build keeps about 0.99 at worst and
# 0.997 on average; the figures are in the provenance).
MIN_COSINE = 0.98
_POOLING = ("mean", "cls")
# The feed-forward activations whose output feeds a down-projection kept in fp32.
_FFN_ACTIVATIONS = ("Gelu", "Swish", "Relu")
_CALIBRATION_SENTENCES = 200
_CALIBRATION_WORDS = 100


def _gensim_data(name: str) -> Path:
    """A file from the test data gensim ships (importing gensim.test.utils would build
    a demo corpus and log it)."""
    import gensim

    return Path(gensim.__file__).parent / "test" / "test_data" / name


def _gensim_text(name: str) -> str:
    return _gensim_data(name).read_text(encoding="latin-1")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) > 3]


def calibration_texts() -> list[str]:
    """Sentences and single words from gensim's Lee background corpus (news text)."""
    sentences = _sentences(_gensim_text("lee_background.cor"))[:_CALIBRATION_SENTENCES]
    words = sorted({w.strip(".,;:'\"()").lower() for s in sentences for w in s.split()} - {""})
    step = max(1, len(words) // _CALIBRATION_WORDS)
    return sentences + words[::step][:_CALIBRATION_WORDS]


def held_out_texts() -> tuple[list[str], list[str]]:
    """Sentences (film reviews and the Lee corpus) and the analogy set's words."""
    reviews = [
        line.split(" ", 1)[1].strip()
        for line in _gensim_text("pang_lee_polarity.cor").splitlines()
        if " " in line
    ]
    sentences = reviews + _sentences(_gensim_text("lee.cor"))
    return sentences, analogy_words()


def analogy_words() -> list[str]:
    lines = _gensim_text("questions-words.txt").splitlines()
    return sorted({w for line in lines if not line.startswith(":") for w in line.split()})


def analogy_accuracy(words: Sequence[str], vectors: FloatArray) -> float:
    """gensim's 3CosAdd accuracy on the Google analogy set, over these words' vectors."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(list(words), vectors)
    logging.getLogger("gensim").setLevel(logging.WARNING)  # it logs every section
    score, _ = kv.evaluate_word_analogies(
        _gensim_data("questions-words.txt"), restrict_vocab=len(words)
    )
    return float(score)


def _ffn_down_projections(model: Any) -> list[str]:
    """The matmuls fed by a feed-forward activation: found by the graph's shape, not by
    the layer names one architecture gives them."""
    return [
        op.get_friendly_name()
        for op in model.get_ops()
        if op.get_type_name() == "MatMul"
        and op.input_value(0).get_node().get_type_name() in _FFN_ACTIVATIONS
    ]


def _load(folder: Path) -> tuple[Any, dict[str, str]] | None:
    """A cached build and its measured quality, or None (absent or unreadable)."""
    import openvino as ov

    if not (folder / "quality.json").exists():
        return None
    try:
        if sha256_file(folder / "model.bin") != (folder / "model.bin.sha256").read_text():
            raise ValueError("model.bin does not match the checksum written with it")
        quality = json.loads((folder / "quality.json").read_text())
        model = ov.Core().read_model(folder / "model.xml")
    except Exception as e:  # a damaged cache is rebuilt, never served
        log.warning("ignoring the cached build in %s (%s); building again", folder, e)
        return None
    log.info("openvino build loaded from %s", folder)
    return model, quality


def _save(folder: Path, model: Any, quality: dict[str, str]) -> None:
    """Writes the whole build beside `folder`, then renames it into place: a cache entry
    is complete or absent. A cache that cannot be written costs a rebuild next start."""
    import openvino as ov

    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=False)
        (tmp / "model.bin.sha256").write_text(sha256_file(tmp / "model.bin"))
        (tmp / "quality.json").write_text(json.dumps(quality, indent=1))
        if folder.exists():  # a damaged entry, or another server's build
            shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        log.info("openvino build saved in %s", folder)
    except OSError as e:
        log.warning("cannot cache the openvino build in %s: %s", folder, e)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


class OpenVinoText:
    """Embeds texts with an OpenVINO build of a SentenceTransformer's transformer."""

    def __init__(
        self,
        model: Any,
        *,
        weights_sha256: str,
        int8: bool,
        threads: int = 0,
        cache_dir: Path | None = None,
    ) -> None:
        import nncf
        import openvino as ov

        self._model = model
        modules = [type(m).__name__ for m in model]
        pooling = model[1].get_config_dict().get("pooling_mode") if len(modules) > 1 else None
        if (
            modules[:2] != ["Transformer", "Pooling"]
            or modules[2:] not in ([], ["Normalize"])
            or pooling not in _POOLING
        ):
            raise InvalidInput(
                "the openvino backends take a Transformer, a Pooling (mean or cls) and an "
                f"optional Normalize; this model has {modules} with pooling {pooling!r}"
            )
        self._pooling = str(pooling)
        self._normalize = modules[2:] == ["Normalize"]
        self.backend = "openvino-int8" if int8 else "openvino"
        versions = {"openvino": ov.__version__.split("-")[0], "nncf": nncf.__version__}
        key = "-".join([weights_sha256[:16], self.backend, *versions.values(), f"r{RECIPE}"])
        folder = cache_dir / key if cache_dir else None
        config = {"INFERENCE_PRECISION_HINT": "f32"}  # else bf16 where the CPU has it
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        self._lock = threading.Lock()  # one inference request, used by one caller at a time
        cached = _load(folder) if folder else None
        if cached is not None:
            model, quality = cached
            self._compiled = ov.Core().compile_model(model, "CPU", config)
        else:
            model = self._build(int8)
            self._compiled = ov.Core().compile_model(model, "CPU", config)
            quality = self.measure_quality()
            if folder:
                _save(folder, model, quality)
        if float(quality["cosine_min_sentences"]) < MIN_COSINE:
            raise FailedPrecondition(
                f"the {self.backend} build keeps a cosine of only "
                f"{quality['cosine_min_sentences']} to the PyTorch vectors on held-out "
                f"sentences (at least {MIN_COSINE} is required); use backend 'torch' or "
                "'openvino'"
            )
        self.details = {"backend": self.backend, **versions, **quality}

    # ------------------------------------------------------------------ build

    def _build(self, int8: bool) -> Any:
        import openvino as ov
        import torch

        log.info(
            "converting the transformer to OpenVINO%s", " and quantizing it to int8" if int8 else ""
        )
        transformer = self._model[0].auto_model
        example = self._features(["an example sentence", "two"])
        # Conversion traces the model, and torch warns about tracing itself (deprecated,
        # tracer warnings): nothing a caller can act on.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ov.convert_model(
                transformer, example_input={k: torch.from_numpy(v) for k, v in example.items()}
            )
        if not int8:
            return model
        import nncf

        calibration = [self._features([t]) for t in calibration_texts()]
        return nncf.quantize(
            model,
            nncf.Dataset(calibration),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calibration),
            ignored_scope=nncf.IgnoredScope(names=_ffn_down_projections(model)),
            advanced_parameters=nncf.AdvancedQuantizationParameters(
                overflow_fix=nncf.OverflowFix.ENABLE  # 7-bit weights: see the module docstring
            ),
        )

    def measure_quality(self) -> dict[str, str]:
        """This build against the PyTorch model, on held-out real text."""
        sentences, words = held_out_texts()

        def reference(texts: list[str]) -> FloatArray:
            out: FloatArray = self._model.encode(
                texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False
            )
            return out

        def unit(v: FloatArray) -> FloatArray:
            out: FloatArray = v / np.linalg.norm(v, axis=1, keepdims=True)
            return out

        cos_s = (unit(self.encode(sentences)) * unit(reference(sentences))).sum(1)
        ours_w, ref_w = self.encode(words), reference(words)
        cos_w = (unit(ours_w) * unit(ref_w)).sum(1)
        sample = sentences[:32] + words[:32]
        in_batch = unit(self.encode(sample))
        alone = unit(np.concatenate([self.encode([t]) for t in sample]))
        log.info("measuring analogy accuracy of the build against PyTorch")
        return {
            "held_out": f"{len(sentences)} sentences (gensim pang_lee_polarity.cor, lee.cor), "
            f"{len(words)} analogy words",
            "calibration": "gensim lee_background.cor" if self.backend.endswith("int8") else "none",
            "cosine_min_sentences": f"{cos_s.min():.4f}",
            "cosine_mean_sentences": f"{cos_s.mean():.4f}",
            "cosine_min_words": f"{cos_w.min():.4f}",
            "cosine_mean_words": f"{cos_w.mean():.4f}",
            "batch_invariance_min": f"{(alone * in_batch).sum(1).min():.5f}",
            "analogy_accuracy": f"{analogy_accuracy(words, ours_w):.4f}",
            "analogy_accuracy_torch": f"{analogy_accuracy(words, ref_w):.4f}",
        }

    # ------------------------------------------------------------------ encode

    def _features(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        features: Mapping[str, Any] = self._model.preprocess(list(texts))
        return {k: np.asarray(v) for k, v in features.items() if k != "modality"}

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> FloatArray:
        """Longest first, in batches of `batch_size`, so padding stays small."""
        out = np.empty((len(texts), self._model.get_embedding_dimension()), np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = self._features([texts[i] for i in rows])
            with self._lock:
                hidden = self._compiled(features)[0]
            mask = features["attention_mask"][..., None].astype(np.float32)
            if self._pooling == "mean":
                pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
            else:
                pooled = hidden[:, 0]
            if self._normalize:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[rows] = pooled
        return out

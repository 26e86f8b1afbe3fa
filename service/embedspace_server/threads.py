"""Settings that hold per thread, applied on the threads that do the work: every worker,
every batch thread. FAISS's OpenMP thread count is per thread, so set on the event loop
it would never reach the threads that call FAISS."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from .config import Settings
from .index.factory import configure_faiss


def configure_thread(settings: Settings) -> None:
    """Applies FAISS's threads and BLAS threshold, and torch's threads, to this thread."""
    configure_faiss(settings.faiss_threads, settings.faiss_blas_threshold)
    if settings.encoder_threads > 0 and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(settings.encoder_threads)


def thread_initializer(settings: Settings) -> Callable[[], None]:
    """`configure_thread` for a thread pool's or a batcher's initializer."""
    return functools.partial(configure_thread, settings)

"""How `upsert_many(progress=True)` reports: a tqdm bar when stderr is a terminal (tqdm comes
with the `files` extra), otherwise a plain line to stderr every few seconds, for logs."""

from __future__ import annotations

import sys
import time
from typing import Any

# Seconds between plain lines.
INTERVAL = 5.0

MISSING_TQDM = (
    "upsert_many(progress=True) draws its bar on a terminal with tqdm, which is not "
    "installed: pip install 'embedspace[files]' (or pass progress=False)"
)


class Progress:
    """Reports points done (acknowledged, or refused) out of `total`, if known."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self._bar: Any = None
        self._plain = False
        self._start = time.monotonic()
        self._next = self._start + INTERVAL
        if not enabled:
            return
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm  # type: ignore[import-untyped]
            except ImportError:
                raise ImportError(MISSING_TQDM) from None
            self._bar = tqdm(total=total, unit=" points", file=sys.stderr, dynamic_ncols=True)
        else:
            self._plain = True

    def wait(self) -> float | None:
        """How long the caller may wait for news before `update` is due (None: no limit)."""
        if not self._plain:
            return None
        return max(0.01, self._next - time.monotonic())

    def update(self, done: int, upserted: int, rejected: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            self._bar.set_postfix(rejected=rejected, refresh=False)
        elif self._plain and time.monotonic() >= self._next:
            self._line(upserted, rejected)
            self._next = time.monotonic() + INTERVAL

    def close(self, done: int, upserted: int, rejected: int) -> None:
        if self._bar is not None:
            self.update(done, upserted, rejected)
            self._bar.close()
        elif self._plain:
            self._line(upserted, rejected)

    def _line(self, upserted: int, rejected: int) -> None:
        rate = upserted / max(time.monotonic() - self._start, 1e-9)
        print(f"upserted {upserted} points ({rate:.0f}/s), {rejected} rejected",
              file=sys.stderr, flush=True)  # fmt: skip

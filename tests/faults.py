"""A file-system fault injector: a module's `os`, with one function failing on purpose."""

from __future__ import annotations

import os
from typing import Any


class FaultyOS:
    """The `os` module, but `name` fails with `code` `times` times while `failing` is set
    (a write first writes 5 bytes, as a write to a disk that fills up does)."""

    def __init__(self, name: str, code: int, times: int = 1) -> None:
        self.name, self.code, self.times, self.failing = name, code, times, True
        self.calls = 0

    def __getattr__(self, attr: str) -> Any:
        real = getattr(os, attr)
        if attr != self.name:
            return real

        def fail(*args: Any) -> Any:
            self.calls += 1
            if self.failing and self.calls <= self.times:
                if attr == "write" and self.calls == 1:
                    return real(args[0], bytes(args[1])[:5])
                raise OSError(self.code, os.strerror(self.code))
            return real(*args)

        return fail

"""The server-process helper the tests share with the bench, and where the binaries are."""

from __future__ import annotations

import sys
from pathlib import Path

from embedspace_server.process import ServeProcess

BIN = Path(sys.executable).parent  # embedspace, grpcurl: installed beside this interpreter

__all__ = ["BIN", "ServeProcess"]

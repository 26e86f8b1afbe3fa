"""The server-process helper the tests share with the bench, and where the binaries are."""

from __future__ import annotations

import sys
from pathlib import Path

from embedspace_server.process import ServeProcess

BIN = Path(sys.executable).parent  # embedspace, grpcurl: installed beside this interpreter


def serve_with_config(
    folder: Path, config: str, env: dict[str, str] | None = None, timeout: float = 120
) -> ServeProcess:
    """`embedspace serve` on a free port with `config` (TOML text) and a data directory in
    `folder`, once it answers SERVING; `env` adds to the environment."""
    path = folder / "es.toml"
    path.write_text(config)
    argv = [str(BIN / "embedspace"), "serve", "--port", "0", "--data-dir",
            str(folder / "data"), "--config", str(path)]  # fmt: skip
    proc = ServeProcess(argv, env=env)
    proc.wait_serving(timeout)
    return proc


__all__ = ["BIN", "ServeProcess", "serve_with_config"]

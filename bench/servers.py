"""The servers under test: their config files and settings (threads set on purpose), started
as separate processes (so the load generator and the server do not share a GIL) through the
helper the tests use, `embedspace_server.process.ServeProcess`."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedspace_server.process import ServeProcess
from harness import NCPU, Meter, say

BIN = Path(sys.executable).parent
# The same model through the quantized backend (E8 and X); its build is cached in the data
# directory of the main server, so X reuses it.
INT8_BACKEND = "openvino-int8"
INT8_ENCODER = {"name": "minilm-int8", "kind": "sentence-transformers"}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def write_config(path: Path, settings: dict[str, Any], encoders: list[dict[str, Any]]) -> Path:
    lines = [f"{k} = {_toml(v)}" for k, v in settings.items()]
    for e in encoders:
        lines += ["", "[[encoders]]", *(f"{k} = {_toml(v)}" for k, v in e.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


class Servers:
    """Starts and stops the benchmark's servers in a temporary folder, and tells the meter
    their pids (their CPU time is not foreign load). Servers die with the benchmark."""

    def __init__(
        self, meter: Meter, *, clients: int, overrides: Sequence[str], env: dict[str, str]
    ) -> None:
        self.meter = meter
        self.clients = clients
        self.overrides = overrides  # `--set KEY=VALUE`
        self.env = env  # `--server-env KEY=VALUE`
        self.tmp = Path(tempfile.mkdtemp(prefix="embedspace-bench-"))
        self.started: list[ServeProcess] = []
        self._effective: dict[str, Any] | None = None

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The servers' settings: the defaults, with threads set on purpose (as many as the
        raw references use), no snapshot timer in the middle of a block, and `--set`."""
        s: dict[str, Any] = {
            "host": "127.0.0.1",
            "snapshot_interval_s": 3600.0,
            "encoder_threads": NCPU,
            "faiss_threads": NCPU,
            "log_level": "INFO",
        }
        if 2 * self.clients > 64:
            s["max_pending"] = 2 * self.clients  # room for every client (default 64)
        s.update(extra)
        for item in self.overrides:
            key, _, raw = item.partition("=")
            s[key] = json.loads(raw) if re.fullmatch(r"[-0-9.eE]+|true|false", raw) else raw
        return s

    def effective(self) -> dict[str, Any]:
        """What the main server runs with: its config read the way the server reads it."""
        from embedspace_server.config import load_settings

        if self._effective is None:
            with tempfile.TemporaryDirectory() as tmp:
                path = write_config(Path(tmp) / "c.toml", self.settings(), [])
                self._effective = dict(load_settings(path).__dict__)
        return self._effective

    def data_dir(self, name: str) -> Path:
        return self.tmp / f"data-{name}"

    def start(
        self,
        name: str,
        settings: dict[str, Any],
        encoders: list[dict[str, Any]],
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> ServeProcess:
        """`env`: environment variables for this server, over `--server-env`."""
        config = write_config(self.tmp / f"{name}.toml", settings, encoders)
        argv = [str(BIN / "embedspace"), "serve", "--config", str(config), "--port", "0",
                "--data-dir", str(data_dir or self.data_dir(name))]  # fmt: skip
        server = ServeProcess(argv, env={**self.env, **(env or {})}, die_with_parent=True)
        self.started.append(server)
        self.meter.pids.append(server.proc.pid)
        took = server.wait_serving(240)
        say(f"server {name} SERVING on {server.target} after {took:.1f}s")
        return server

    def stop(self, server: ServeProcess, *, save: bool = False) -> None:
        """With `save`, SIGTERM (the server saves its collections; SIGKILL if that takes
        more than a minute); without, SIGKILL: its data is thrown away."""
        if save:
            try:
                server.terminate(60)
            except subprocess.TimeoutExpired:
                server.kill()
        else:
            server.kill()
        with contextlib.suppress(ValueError):
            self.meter.pids.remove(server.proc.pid)

    def close(self) -> None:
        for s in self.started:
            with contextlib.suppress(Exception):
                s.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

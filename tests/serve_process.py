"""Runs `embedspace serve` as a real subprocess and learns its port from its log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

BIN = Path(sys.executable).parent


class ServeProcess:
    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self._port: int | None = None
        self._seen = threading.Event()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r"listening on [^ ]+:(\d+)", line)
            if m and self._port is None:
                self._port = int(m.group(1))
                self._seen.set()
        self._seen.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @property
    def port(self) -> int:
        if not self._seen.wait(120) or self._port is None:
            raise AssertionError(f"server did not report its port:\n{self.log}")
        return self._port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_serving(self, timeout: float = 180) -> float:
        """Polls `embedspace health` until SERVING; returns the seconds it took."""
        start = time.monotonic()
        target = self.target
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log}")
            probe = subprocess.run(
                [str(BIN / "embedspace"), "health", "--target", target, "--timeout", "2"],
                capture_output=True, text=True,
            )  # fmt: skip
            if probe.returncode == 0 and "SERVING" in probe.stdout:
                return time.monotonic() - start
            time.sleep(0.3)
        raise AssertionError(f"not SERVING after {timeout}s:\n{self.log}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM; returns the exit code (raises if it does not exit in time)."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

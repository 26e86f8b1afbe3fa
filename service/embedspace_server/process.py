"""`embedspace serve` as a child process, for tests and benchmarks: the port comes from the
port file (`--port-file`), readiness from the gRPC health service, never from the log."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING


class ServeProcess:
    """Starts `argv` (the whole command, `.../embedspace serve ...`) with `--port-file` added,
    and collects its output (stdout and stderr) in `.log`.

    `env` is added to this process's environment. `die_with_parent` has the kernel kill the
    server when the thread that started it ends (PR_SET_PDEATHSIG, Linux), so a benchmark
    that is killed leaves no server behind.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        folder = tempfile.mkdtemp(prefix="embedspace-serve-")
        self._remove_folder = weakref.finalize(self, shutil.rmtree, folder, True)
        self.port_file = Path(folder) / "ports.json"
        self.argv = [*argv, "--port-file", str(self.port_file)]
        self.lines: list[str] = []
        self._ports: dict[str, int] | None = None
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def ports(self, timeout: float = 120) -> dict[str, int]:
        """The port file's `{"port": N, "health_port": M, "metrics_port": P}`, once the
        server has bound."""
        deadline = time.monotonic() + timeout
        while self._ports is None:
            exited = self.proc.poll() is not None  # before reading: it may write, then exit
            with contextlib.suppress(FileNotFoundError):
                self._ports = json.loads(self.port_file.read_text())
                break
            if exited:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not bind within {timeout}s:\n{self.log}")
            time.sleep(0.05)
        return self._ports

    @property
    def port(self) -> int:
        return self.ports()["port"]

    @property
    def health_port(self) -> int:
        """The plaintext health-only port; -1 when there is none."""
        return self.ports()["health_port"]

    @property
    def metrics_port(self) -> int:
        """The Prometheus metrics port; -1 when there is none."""
        return self.ports()["metrics_port"]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_serving(self, timeout: float = 180) -> float:
        """Polls the health service (`Check("")`, plaintext: on the health port where there
        is one, else on the main port) until SERVING; returns the seconds it took."""
        start = time.monotonic()
        ports = self.ports(timeout)
        probe = ports["health_port"] if ports["health_port"] >= 0 else ports["port"]
        request = health_pb2.HealthCheckRequest(service="")
        with grpc.insecure_channel(f"127.0.0.1:{probe}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log}")
                with contextlib.suppress(grpc.RpcError):
                    if health.Check(request, timeout=2).status == SERVING:
                        return time.monotonic() - start
                if time.monotonic() - start > timeout:
                    raise RuntimeError(f"not SERVING after {timeout}s:\n{self.log}")
                time.sleep(0.1)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM; returns the exit code (raises TimeoutExpired if it does not exit in time)."""
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
        self._remove_folder()


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


__all__ = ["ServeProcess"]

"""`embedspace` commands run the way a user runs them: each a process of its own, timed from
its start to its exit, with its own CPU time and peak memory from the kernel."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness import Meter
from servers import BIN


class CliFailed(RuntimeError):
    """A command exited other than 0; the message ends with the end of its output."""

    def __init__(self, argv: tuple[str, ...], status: int, tail: str) -> None:
        super().__init__(f"{' '.join(argv)} exited {status}:\n{tail}")
        self.status = status
        self.last = (tail.strip().splitlines() or ["(no output)"])[-1]


@dataclass(frozen=True)
class Ran:
    """A finished command: wall seconds (start to exit), CPU seconds, peak RSS in bytes."""

    argv: tuple[str, ...]
    wall: float
    cpu: float
    peak: int


class Cli:
    """Runs `embedspace` commands against one server, output to a log file.

    While a command runs, its pid is among the meter's, so its CPU counts as the service's
    and not as foreign load. It is reaped only after the block (`settle`): an exited,
    unreaped process keeps its CPU times in /proc/PID/stat, which the meter reads when the
    block ends, and reaping it with wait4 gives its CPU time.

    Its peak RSS is VmHWM of /proc/PID/status, read every 10 ms while it runs (VmHWM only
    grows; it is gone once the process exits). Not rusage's ru_maxrss: Linux folds the
    RSS of the image a process replaces at exec into it, and that image is this process
    (subprocess starts children with vfork), which holds the model and the vectors:
    `ingest --help` measured 50 MB by VmHWM and 249 MB by ru_maxrss from a parent holding
    200 MB."""

    def __init__(self, meter: Meter, target: str, folder: Path) -> None:
        self.meter = meter
        self.target = target
        self.folder = folder
        self._exited: list[tuple[subprocess.Popen[bytes], tuple[str, ...], float, int]] = []

    def run(self, *args: str) -> float:
        """Runs `embedspace ARGS --target ...` to its exit; its wall seconds. Raises, with the
        end of its output, when it exits other than 0."""
        argv = (str(BIN / "embedspace"), *args, "--target", self.target)
        log = self.folder / "cli.log"
        with open(log, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            self.meter.pids.append(proc.pid)
            peak = _PeakWatch(proc.pid)
            try:
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            except BaseException:  # SIGTERM or ^C: no ingest outlives the benchmark
                proc.kill()
                proc.wait()
                raise
            finally:
                peak.stop()
            wall = time.perf_counter() - start
        self._exited.append((proc, argv, wall, peak.value))
        if info is not None and (info.si_code != os.CLD_EXITED or info.si_status != 0):
            self.settle()
            tail = log.read_text(errors="replace")[-2000:]
            raise CliFailed(argv, info.si_status, tail)
        return wall

    def settle(self) -> list[Ran]:
        """Reaps the commands that have exited since the last call: what each took."""
        done = []
        for proc, argv, wall, peak in self._exited:
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(ValueError):
                self.meter.pids.remove(proc.pid)
            done.append(Ran(argv, wall, ru.ru_utime + ru.ru_stime, peak))
        self._exited = []
        return done

    def floor(self, times: int = 3) -> Ran:
        """`embedspace ingest --help`: what starting the command costs before it reads a row
        (the interpreter and imports); the run of median wall time of `times`."""
        for _ in range(times):
            self.run("ingest", "--help")
        runs = sorted(self.settle(), key=lambda r: r.wall)
        return runs[len(runs) // 2]


class _PeakWatch:
    """Reads VmHWM of a process every `every` seconds on a thread until stopped."""

    def __init__(self, pid: int, every: float = 0.01) -> None:
        self.value = 0
        self._path = f"/proc/{pid}/status"
        self._every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            try:
                with open(self._path) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.value = max(self.value, int(line.split()[1]) * 1024)
            except OSError:
                return
            if self._done.wait(self._every):
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

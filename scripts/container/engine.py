"""A private Docker engine that builds and runs the embedspace image on this machine.

No Docker daemon runs here and no image registry can be reached, so this starts Debian's
`dockerd` (package docker.io) in the background with its data root, exec root, socket and pid
file under one temporary folder, imports a local stand-in for `debian:bookworm-slim` made by
debootstrap, and builds the Dockerfile unchanged from a wheelhouse made on the host (the
pinned CPU torch included), so the build installs with `--no-index`. Stopping the engine
removes every container, volume and image with its data root, and puts back the network
state the daemon changed (the docker0 bridge, iptables rules, IP forwarding).

That folder is a tmpfs (a RAM disk, a few GB while an image is built): this machine's disk
discards every freed block as a file is deleted, so deleting a data root of some 50,000
files on it takes minutes, while unmounting a tmpfs takes none.

Used by tests/test_container.py, and from a shell (as root, after install-engine.sh):

    .venv/bin/python scripts/container/engine.py build          # build, print the figures
    .venv/bin/python scripts/container/engine.py serve --port 50051   # ...and run it; Ctrl-C

Every wait is bounded; an EngineError carries the tail of the daemon's or the build's log.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
DOCKERD = "/usr/sbin/dockerd"
# Debian's client, which builds with BuildKit; another `docker` on the PATH may lack it.
DOCKER = "/usr/bin/docker"
DEBOOTSTRAP = "/usr/sbin/debootstrap"
BASE_IMAGE = "debian:bookworm-slim"
BASE_SUITE = "bookworm"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "embedspace"
# Two daemons would fight over the docker0 bridge and the iptables chains: one at a time.
LOCK = Path(tempfile.gettempdir()) / "embedspace-dockerd.lock"
SERVER_PORT = 50051


class EngineError(RuntimeError):
    """The engine, the base image, the wheelhouse or the build failed; says how."""


def missing_tools() -> list[str]:
    """What this machine lacks to build and run the image (empty when nothing)."""
    missing = [p for p in (DOCKERD, DOCKER, DEBOOTSTRAP) if not os.access(p, os.X_OK)]
    if missing:
        missing.append("(install: scripts/container/install-engine.sh)")
    if os.geteuid() != 0:
        missing.append("root (dockerd and debootstrap run as root)")
    return missing


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion within `timeout`; raises EngineError with its output."""
    try:
        out = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )
    except subprocess.TimeoutExpired as e:
        raise EngineError(f"{what}: no answer within {timeout:.0f}s") from e
    if log is not None:
        log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise EngineError(f"{what} failed ({out.returncode}):\n{_tail(out.stdout + out.stderr)}")
    return out


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    prefix = str(path)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Unmounts what is mounted below `path` (never descend into a live /proc), then rm -r."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
    if _mounts_under(path):
        raise EngineError(f"could not unmount everything below {path}; left it in place")
    shutil.rmtree(path, ignore_errors=True)


# --- the base image -------------------------------------------------------------------------


def base_rootfs(
    cache: Path = CACHE, suite: str = BASE_SUITE, work: Path | None = None, timeout: float = 900
) -> Path:
    """A tarball of a minimal Debian `suite` root filesystem (debootstrap, about 30 s the first
    time), cached so that later runs only import it. The root filesystem itself is made in a
    temporary folder under `work` (best on a tmpfs) and removed."""
    tarball = cache / f"debian-{suite}-minbase.tar.gz"
    if tarball.exists():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"debootstrap-{suite}-", dir=work or cache))
    try:
        rootfs = work / "rootfs"
        _run(
            [DEBOOTSTRAP, "--variant=minbase", suite, rootfs],
            timeout=timeout,
            what=f"debootstrap {suite}",
        )
        # As the official slim image: no package lists or downloaded packages.
        for leftover in [
            *(rootfs / "var/cache/apt/archives").glob("*.deb"),
            *(rootfs / "var/cache/apt").glob("*.bin"),
            *(rootfs / "var/lib/apt/lists").glob("*_*"),
        ]:
            leftover.unlink()
        partial = cache / f".{tarball.name}.{os.getpid()}"
        try:
            _run(
                ["tar", "--numeric-owner", "-czf", partial, "-C", rootfs, "."],
                timeout=300,
                what="tar of the base root filesystem",
            )
            os.replace(partial, tarball)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        _remove_tree(work)
    return tarball


# --- the wheelhouse -------------------------------------------------------------------------


def build_wheelhouse(
    repo: Path = REPO, python: str = sys.executable, timeout: float = 1800
) -> Path:
    """Wheels for `.[server,ray]` and the build backend in repo/wheelhouse/, made with this
    machine's pip (which takes the pinned CPU torch from the local disk). The image installs
    from it with --no-index. embedspace itself is left out: the image builds it from source."""
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    if version != ["3", "11"]:
        raise EngineError(
            f"{python} is Python {'.'.join(version)}; the image's python3 (Debian bookworm) "
            "is 3.11, and the wheelhouse's compiled wheels must match it"
        )
    backend = tomllib.loads((repo / "pyproject.toml").read_text())["build-system"]["requires"]
    wheelhouse = repo / "wheelhouse"
    wheelhouse.mkdir(exist_ok=True)
    _run(
        [python, "-m", "pip", "wheel", "--quiet", "--wheel-dir", wheelhouse,
         f"{repo}[server,ray]", *backend],
        timeout=timeout,
        what="pip wheel of .[server,ray]",
        cwd=repo,
    )  # fmt: skip
    for own in wheelhouse.glob("embedspace-*.whl"):
        own.unlink()
    names = sorted(p.name for p in wheelhouse.glob("*.whl"))
    torch = [n for n in names if n.startswith("torch-")]
    cuda = [n for n in names if n.startswith(("nvidia_", "nvidia-", "triton-"))]
    if cuda or not torch or not all("+cpu" in n for n in torch):
        raise EngineError(
            f"the wheelhouse must hold the CPU build of torch and no CUDA wheels; got torch "
            f"{torch} and {cuda[:5]}: pip took torch from the index, not from this machine's "
            "disk (see the Dockerfile's header for fetching torch==X+cpu elsewhere)"
        )
    return wheelhouse


# --- the daemon -----------------------------------------------------------------------------


class Engine:
    """One private dockerd; `with Engine() as engine:` starts it and always stops it."""

    def __init__(
        self, start_timeout: float = 90, lock_timeout: float = 1200, tmpfs_size: str = "16g"
    ) -> None:
        self.start_timeout = start_timeout
        self.lock_timeout = lock_timeout
        self.tmpfs_size = tmpfs_size  # a cap; only what is written takes memory
        self.root: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._log: IO[bytes] | None = None
        self._network: dict[str, Any] = {}

    # lifecycle

    def __enter__(self) -> Engine:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        assert self.root is not None, "the engine is not started"
        return f"unix://{self.root}/docker.sock"

    def start(self) -> None:
        self._take_lock()
        self._network = _network_state()
        # Short: a unix socket path must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="es-docker-", dir="/tmp"))
        _run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.tmpfs_size},mode=0700", "es-docker",
             self.root],
            timeout=30,
            what="mount of the engine's tmpfs",
        )  # fmt: skip
        (self.root / "client").mkdir()
        self._log = open(self.root / "dockerd.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                DOCKERD,
                "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"),
                "--host", self.host,
                "--pidfile", str(self.root / "dockerd.pid"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError(f"dockerd exited with {self.proc.returncode}:\n{self.log()}")
            probe = self.docker("version", "--format", "{{.Server.Version}}", check=False)
            if probe.returncode == 0:
                return
            time.sleep(0.5)
        raise EngineError(f"dockerd did not answer in {self.start_timeout:.0f}s:\n{self.log()}")

    def stop(self, timeout: float = 30) -> None:
        """Removes every container, stops the daemon, deletes its data root (and with it every
        image and volume), and restores the network state it changed. Safe to call twice."""
        root = self.root
        try:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(EngineError):
                    ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
                    if ids:
                        self.docker("rm", "-f", "-v", *ids, check=False, timeout=120)
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
            if root is not None:
                # containerd and its shims leave the daemon's session; end the ones serving
                # this engine (their command lines name its folder).
                for pid in _pids_naming(root):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.2 if _pids_naming(root) else 0)
                _remove_tree(root)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._network:
                _restore_network(self._network)
                self._network = {}
            self.proc = None
            self.root = None
            if self._lock is not None:
                self._lock.close()  # releases the flock
                self._lock = None

    def _take_lock(self) -> None:
        self._lock = open(LOCK, "a")  # noqa: SIM115 (closed in stop)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineError(
                        f"another embedspace docker engine held {LOCK} for {self.lock_timeout:.0f}s"
                    ) from None
                time.sleep(1)

    def log(self, lines: int = 40) -> str:
        if self.root is None or not (self.root / "dockerd.log").exists():
            return ""
        return _tail((self.root / "dockerd.log").read_text(errors="replace"), lines)

    # the client

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True, log: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Runs Debian's docker client against this engine."""
        assert self.root is not None, "the engine is not started"
        env = {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_BUILDKIT": "1",
            "DOCKER_CONFIG": str(self.root / "client"),
        }
        if check:
            return _run([DOCKER, *args], timeout=timeout, what=f"docker {args[0]}", env=env,
                        log=log)  # fmt: skip
        try:
            return subprocess.run(
                [DOCKER, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            raise EngineError(f"docker {args[0]}: no answer within {timeout:.0f}s") from e

    def inspect(self, thing: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.docker("inspect", thing).stdout)
        return data[0]

    # images

    def ensure_base_image(self, tag: str = BASE_IMAGE) -> None:
        """Imports the debootstrap stand-in as `tag` unless the engine already has it."""
        if self.docker("image", "inspect", tag, check=False).returncode == 0:
            return
        assert self.root is not None
        tarball = base_rootfs(work=self.root)
        self.docker("import", "--change", 'CMD ["bash"]', str(tarball), tag, timeout=300)

    def build_image(
        self, tag: str, context: Path = REPO, timeout: float = 1800, ca: Path | None = None
    ) -> float:
        """`docker build` of the context's Dockerfile; returns the seconds it took. The log
        is kept in the engine's folder (build-TAG.log)."""
        assert self.root is not None
        args = ["build", "--progress=plain", "--tag", tag]
        if ca is not None:
            args += ["--secret", f"id=ca,src={ca}"]
        log = self.root / f"build-{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)}.log"
        start = time.monotonic()
        self.docker(*args, str(context), timeout=timeout, log=log)
        return time.monotonic() - start

    def image_size(self, tag: str) -> int:
        return int(self.inspect(tag)["Size"])

    # containers

    def published_port(self, container: str, port: int = SERVER_PORT) -> int:
        """The host port that `-p 127.0.0.1::PORT` picked."""
        out = self.docker("port", container, f"{port}/tcp").stdout
        return int(out.split()[0].rsplit(":", 1)[1])

    def server_memory(self, container: str) -> dict[str, int]:
        """The server process's resident memory now and at its peak, in bytes (the child of
        the image's init, read from /proc on the host)."""
        init = int(self.inspect(container)["State"]["Pid"])
        children = [pid for pid in _all_pids() if _parent(pid) == init]
        pid = children[0] if children else init
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
        return {"rss": int(fields["VmRSS"]) * 1024, "peak_rss": int(fields["VmHWM"]) * 1024}


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _pids_naming(root: Path) -> list[int]:
    """Processes whose command line names `root` (this one aside)."""
    pids = []
    needle = str(root).encode()
    for pid in _all_pids():
        if pid != os.getpid():
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(pid)
    return pids


# --- the host's network state ---------------------------------------------------------------

# What an iptables table holds before anyone adds to it; put back where the daemon made it.
_EMPTY_TABLES = {
    "filter": ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
    "nat": ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":POSTROUTING ACCEPT [0:0]\n",
}


def _network_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "bridge": Path("/sys/class/net/docker0").exists(),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
    }
    if shutil.which("iptables-save"):
        saved = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=30)
        if saved.returncode == 0:
            state["iptables"] = saved.stdout
    return state


def _restore_network(state: dict[str, Any]) -> None:
    if not state["bridge"] and Path("/sys/class/net/docker0").exists():
        subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True, timeout=30)
    saved = state.get("iptables")
    if saved is not None:
        present = set(re.findall(r"^\*(\w+)$", saved, re.M))
        empty = "".join(
            f"*{table}\n{chains}COMMIT\n"
            for table, chains in _EMPTY_TABLES.items()
            if table not in present
        )
        subprocess.run(
            ["iptables-restore"], input=saved + empty, capture_output=True, text=True, timeout=30
        )
    Path("/proc/sys/net/ipv4/ip_forward").write_text(state["ip_forward"] + "\n")


# --- from a shell ---------------------------------------------------------------------------


def prepare(engine: Engine, tag: str, repo: Path = REPO) -> dict[str, float]:
    """Base image, wheelhouse and image build; returns the seconds each took and the size."""
    figures: dict[str, float] = {}
    start = time.monotonic()
    engine.ensure_base_image()
    figures["base_image_s"] = time.monotonic() - start
    start = time.monotonic()
    build_wheelhouse(repo)
    figures["wheelhouse_s"] = time.monotonic() - start
    figures["build_s"] = engine.build_image(tag, repo)
    figures["image_bytes"] = engine.image_size(tag)
    return figures


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so the engine is stopped on either."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the image, print build time and size, clean up")
    serve = sub.add_parser("serve", help="build, then run it on 127.0.0.1:PORT until Ctrl-C")
    serve.add_argument("--port", type=int, default=SERVER_PORT)
    args = parser.parse_args(argv)
    if missing := missing_tools():
        print(f"engine: missing {', '.join(missing)}", file=sys.stderr)
        return 1
    tag = "embedspace:dev"
    with _interruptible(), Engine() as engine:
        figures = prepare(engine, tag)
        print(json.dumps(figures, indent=2))
        if args.command == "serve":
            volume = engine.docker("volume", "create").stdout.strip()
            engine.docker(
                "run", "-d", "--name", "embedspace", "-p", f"127.0.0.1:{args.port}:{SERVER_PORT}",
                "-v", f"{volume}:/data", tag,
            )  # fmt: skip
            print(f"serving on 127.0.0.1:{args.port}; Ctrl-C stops and removes everything")
            with contextlib.suppress(KeyboardInterrupt):
                subprocess.run(
                    [DOCKER, "logs", "-f", "embedspace"],
                    env={**os.environ, "DOCKER_HOST": engine.host},
                    check=False,
                )
            engine.docker("stop", "--time", "30", "embedspace", timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())

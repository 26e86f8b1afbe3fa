"""Lifecycle: bind, load and warm encoders, report SERVING, snapshot on a timer, drain on
SIGTERM/SIGINT, save, exit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import signal
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from . import convert
from .auth import TokenInterceptor, server_credentials, tokens_of
from .batching import BATCHED_KINDS, BatchedEncoder, batch_encoders
from .calls import Calls
from .config import Settings
from .encoders import Encoder, EncoderRegistry, build_encoder
from .engine import Engine
from .errors import EmbedspaceServerError, FailedPrecondition, InvalidInput
from .index import CollectionStore
from .index.base import Backend
from .index.disk import write_atomic
from .index.factory import faiss_module
from .observe import metrics, tracing
from .observe.calls import Observer
from .seeding import ensure_builtin_collections
from .servicer import EmbedspaceServicer, add_to_server
from .threads import thread_initializer

log = logging.getLogger(__name__)

SERVICE_NAME = convert.SERVICE_NAME
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def collection_health_name(name: str) -> str:
    """The health service's name for one collection: NOT_SERVING when it is quarantined."""
    return f"{SERVICE_NAME}/collections/{name}"


def raise_open_files_limit() -> None:
    """Lifts the soft limit on open files to the hard one: every connection and every
    file being written takes a descriptor, and the usual soft limit (1024) is low for a
    server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load_encoders(settings: Settings) -> list[Encoder]:
    """Builds and warms every configured encoder (blocking)."""
    if settings.encoder_threads > 0:
        import torch

        torch.set_num_threads(settings.encoder_threads)
    encoders = []
    for config in settings.encoders:
        log.info("loading encoder %r (%s)", config.name, config.kind)
        encoder = build_encoder(
            config, threads=settings.encoder_threads, cache_dir=settings.data_dir / "cache"
        )
        if settings.encoder_actors and config.kind in BATCHED_KINDS:
            from .cluster.encoders import PooledEncoder  # the `ray` extra

            encoder = PooledEncoder(
                encoder, config, settings.encoder_actors, settings.encoder_threads
            )
        encoder.warmup()
        encoders.append(encoder)
    return encoders


def faiss_level() -> tuple[str, str]:
    """FAISS's version, and the SIMD level it picked on this CPU."""
    faiss = faiss_module()
    return faiss.__version__, faiss.SIMDConfig.get_level_name()


def method_kinds() -> dict[str, str]:
    """Every method the server serves ("/package.Service/Method") and its gRPC type."""
    kinds = {
        f"/{SERVICE_NAME}/{name}": "client_stream" if codec.client_streaming else "unary"
        for name, codec in convert.rpc_codecs().items()
    }
    kinds[f"/{health.SERVICE_NAME}/Check"] = "unary"
    kinds[f"/{health.SERVICE_NAME}/Watch"] = "server_stream"
    kinds[f"/{reflection.SERVICE_NAME}/ServerReflectionInfo"] = "bidi_stream"
    return kinds


def make_backend(s: Settings) -> Backend:
    """The data directory, or with `ray_address` the Ray cluster's shard replicas."""
    if s.ray_address:
        try:
            from .cluster.backend import RayBackend  # the `ray` extra, only when asked for
        except ImportError as e:
            raise FailedPrecondition(
                f"ray_address is {s.ray_address!r} but Ray cannot be imported ({e}): install "
                "the extra, pip install 'embedspace[server,ray]'"
            ) from None
        return RayBackend(s)
    return CollectionStore(s.data_dir)


class EmbedspaceServer:
    """The gRPC server. `start()` returns once it is SERVING; `stop()` drains and saves.

    `encoders` lets a caller pass encoders it already built (tests share one model this
    way); by default they are built from the settings after the port is bound, so health
    answers NOT_SERVING while they load. `backend` keeps the collections: by default the
    data directory (`CollectionStore`), taken before the port is bound.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        encoders: Sequence[Encoder] | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings
        self._given = encoders
        self._given_backend = backend
        self.pool = ThreadPoolExecutor(
            settings.workers,
            thread_name_prefix="embedspace",
            initializer=thread_initializer(settings),
        )
        self.health = health_aio.HealthServicer()
        self.servicer = EmbedspaceServicer()
        self.backend: Backend | None = None
        self.engine: Engine | None = None
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._snapshots: asyncio.Task[None] | None = None
        self._batched: list[BatchedEncoder] = []
        self._probe_server: grpc.aio.Server | None = None
        self.health_port = -1
        self.observer = Observer(method_kinds())
        self._metrics: metrics.MetricsEndpoint | None = None
        self.metrics_port = -1

    async def start(self) -> int:
        """Binds, loads the encoders and reports SERVING; returns the port.

        A start that fails or is cancelled stops what it had started (the gRPC servers, the
        pool, the batch threads) and releases the data directory before it raises: left
        running, grpc.aio would shut its server down from the garbage collector after the
        event loop has closed, and print `Event loop is closed`.
        """
        try:
            return await self._start()
        except BaseException:
            try:
                await self.stop(0)
            except Exception as e:  # the first error is the one worth reporting
                log.warning("while cleaning up after a failed start: %s", e)
            raise

    async def _start(self) -> int:
        s = self.settings
        loop = asyncio.get_running_loop()
        raise_open_files_limit()
        # Take the data directory first: a second server on it fails before binding.
        backend = self._given_backend
        if backend is None:
            backend = await loop.run_in_executor(self.pool, make_backend, s)
        self.backend = backend
        limit = s.max_message_bytes
        tokens = tokens_of(s)
        interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = [self.observer]
        if tokens:
            interceptors.append(TokenInterceptor(tokens, public_reflection=s.public_reflection))
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        add_to_server(self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if s.reflection:
            names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
            reflection.enable_server_reflection(names, server)
        await self._set_health(NOT_SERVING)
        try:
            credentials = server_credentials(s)
            address = f"{s.host}:{s.port}"
            if credentials is None:
                self.port = server.add_insecure_port(address)
            else:
                self.port = server.add_secure_port(address, credentials)
        except (RuntimeError, InvalidInput) as e:
            reason = _bind_error(s.host, s.port) if isinstance(e, RuntimeError) else None
            raise FailedPrecondition(f"cannot listen on {s.host}:{s.port}: {reason or e}") from None
        self._server = server
        await server.start()
        if s.health_port >= 0:
            probe = grpc.aio.server(interceptors=[self.observer])
            health_pb2_grpc.add_HealthServicer_to_server(self.health, probe)
            try:
                self.health_port = probe.add_insecure_port(f"{s.host}:{s.health_port}")
            except RuntimeError as e:
                why = _bind_error(s.host, s.health_port) or e
                raise FailedPrecondition(
                    f"cannot listen on {s.host}:{s.health_port} (health_port): {why}"
                ) from None
            await probe.start()
            self._probe_server = probe
            log.info("health only, plaintext, on %s:%d", s.host, self.health_port)
        build = metrics.build_labels(*await loop.run_in_executor(self.pool, faiss_level))
        collector = metrics.ServerCollector(s.max_pending, build)
        if s.metrics_port >= 0:
            try:
                self._metrics = metrics.MetricsEndpoint(s.host, s.metrics_port, collector)
            except OSError as e:
                raise FailedPrecondition(
                    f"cannot listen on {s.host}:{s.metrics_port} (metrics_port): {e.strerror or e}"
                ) from None
            self.metrics_port = self._metrics.port
            log.info("Prometheus metrics on http://%s:%d/metrics", s.host, self.metrics_port)
        if s.port_file:
            ports = {"port": self.port, "health_port": self.health_port,
                     "metrics_port": self.metrics_port}  # fmt: skip
            await asyncio.to_thread(write_port_file, Path(s.port_file), ports)
        log.info("listening on %s:%d (NOT_SERVING until encoders are loaded)", s.host, self.port)
        log.info(
            "security: TLS %s; %s",
            ("with client certificates" if s.tls_client_ca else "on") if s.tls_cert else "off",
            f"bearer tokens required ({len(tokens)} configured)" if tokens else "no authentication",
        )
        encoders = self._given
        if encoders is None:
            encoders = await loop.run_in_executor(self.pool, load_encoders, s)
        encoders = batch_encoders(encoders, s, thread_initializer(s))
        self._batched = [e for e in encoders if isinstance(e, BatchedEncoder)]
        self.engine = await loop.run_in_executor(
            self.pool, lambda: Engine(EncoderRegistry(encoders), backend, s)
        )
        log.info("FAISS %s, running at SIMD level %s", build["faiss_version"],
                 build["faiss_simd"])  # fmt: skip
        metrics.encoder_label.names = frozenset(e.info.name for e in encoders)
        metrics.collection_label.reset(s.metrics_max_collections, self.engine.catalogue.holds)
        collector.engine = self.engine
        if s.builtin_collections:
            engine = self.engine
            await loop.run_in_executor(self.pool, lambda: ensure_builtin_collections(engine))
        self.servicer.calls = Calls(self.engine, self.pool, s.max_pending)
        for name in self.engine.quarantined:
            await self.health.set(collection_health_name(name), NOT_SERVING)
        await self._set_health(SERVING)
        self._snapshots = asyncio.create_task(self._snapshot_loop())
        log.info("SERVING on %s:%d with encoders %s", s.host, self.port,
                 [e.info.name for e in encoders])  # fmt: skip
        return self.port

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def _snapshot_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.snapshot_interval_s)
            if self.engine is not None:
                try:
                    saved = await loop.run_in_executor(self.pool, self.engine.snapshot)
                    if saved:
                        log.info("saved %d collection(s)", saved)
                except Exception:
                    log.exception("periodic snapshot failed; will retry")

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, refuse new calls, finish those in flight, save, release the data dir."""
        grace = self.settings.grace_period_s if grace is None else grace
        await self._set_health(NOT_SERVING)
        if self._snapshots is not None:
            self._snapshots.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshots
        if self._server is not None:
            await self._server.stop(grace)
        if self._probe_server is not None:
            await self._probe_server.stop(0)
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.close)
        # Let every job already in the pool (a call past its grace period, a periodic
        # snapshot) finish before the last save, so nothing changes after it.
        await asyncio.to_thread(self.pool.shutdown, wait=True)
        if self.engine is not None:
            self.engine.close()
            saved = await asyncio.to_thread(self.engine.snapshot)
            log.info("saved %d collection(s) on shutdown", saved)
        for encoder in self._batched:
            encoder.batcher.close()
        if self.backend is not None:
            self.backend.close()


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully.

    A start that is refused raises an EmbedspaceServerError that says what is wrong, for a
    file-system or unexpected error too (an unexpected one's traceback goes to DEBUG), after
    start() has released what it took.
    """
    provider = tracing.configure_from_environment()
    try:
        await _serve(settings)
    finally:
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)  # exports the spans still queued


async def _serve(settings: Settings) -> None:
    server = EmbedspaceServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(server.start())
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    try:
        if starting not in done:
            starting.cancel()  # start() stops what it had started
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            log.info("signal received while starting: stopped")
            return
        starting.result()
    except EmbedspaceServerError:
        raise
    except OSError as e:
        where = f"{e.filename}: " if e.filename is not None else ""
        raise FailedPrecondition(f"{where}{e.strerror or e}") from e
    except Exception as e:
        log.debug("start failed", exc_info=True)
        raise FailedPrecondition(f"{type(e).__name__}: {e}") from e
    await stopping
    log.info("signal received: draining (grace %.1fs)", settings.grace_period_s)
    await server.stop()
    log.info("stopped")


def write_port_file(path: Path, ports: dict[str, int]) -> None:
    """Writes `{"port": N, "health_port": M, "metrics_port": P}` to `path` atomically: a
    reader sees the whole file or none."""
    try:
        write_atomic(path, [json.dumps(ports).encode()])
    except OSError as e:
        raise FailedPrecondition(f"cannot write the port file {path}: {e.strerror or e}") from None


def _bind_error(host: str, port: int) -> str | None:
    """Why host:port cannot be bound, in the system's words ("Address already in use"),
    which gRPC's error leaves out; None if a plain socket binds it."""
    address = host.strip("[]")
    try:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
    except OSError as e:
        return e.strerror or str(e)
    return None

"""What `Client` and `AsyncClient` share: settings, the no-timeout-given sentinel, and running
one call (a `_convert.Op`), or a bulk upsert (`_ingest`), over a blocking or an asyncio channel.

The channel opens on the first call. UNAVAILABLE is retried with exponential backoff by
gRPC's own retry policy (service config); every other status raises at once.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Self, TypeVar

import grpc
import grpc.aio

from . import _convert as ops
from . import _ingest
from ._tracing import Metadata, trace_metadata
from ._types import IngestSummary, Point
from .errors import ClientClosed, from_rpc_error

R = TypeVar("R")

DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_TARGET: Final = "127.0.0.1:50051"
TARGET_VARIABLE: Final = "EMBEDSPACE_TARGET"


class _UseClientDefault:
    """The type of USE_CLIENT_DEFAULT: 'no timeout given here', as opposed to None (no limit)."""

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = _UseClientDefault()
Timeout = float | None | _UseClientDefault


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


def _service_config(retries: int) -> str:
    name = [{"service": ops.SERVICE_NAME}]
    if retries <= 0:
        return json.dumps({"methodConfig": [{"name": name}]})
    policy = {
        "maxAttempts": min(retries + 1, 5),  # gRPC caps attempts at 5
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps({"methodConfig": [{"name": name, "retryPolicy": policy}]})


def _pem(value: bytes | str | os.PathLike[str] | None) -> bytes | None:
    """PEM bytes as given, or read from a path."""
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


class _Base:
    """Settings shared by both clients.

    `target`: the server's host:port; None means the EMBEDSPACE_TARGET environment variable,
    or 127.0.0.1:50051 when it is unset or empty. `timeout`: seconds a call may take (None:
    no limit), unless a call says otherwise. `retries`: how often UNAVAILABLE is retried.

    TLS: pass `tls=True` (system roots), or `root_certificates` (the server's CA), and for
    mutual TLS `private_key` and `certificate_chain`; each is PEM bytes or a file path.
    `credentials` takes any grpc.ChannelCredentials instead. `token` is sent as
    `authorization: Bearer <token>` on every call. When the `opentelemetry` package is
    installed and a span is current, every call also carries its trace context (`traceparent`).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | str | os.PathLike[str] | None = None,
        private_key: bytes | str | os.PathLike[str] | None = None,
        certificate_chain: bytes | str | os.PathLike[str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        retries: int = 4,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target or os.environ.get(TARGET_VARIABLE) or DEFAULT_TARGET
        self.timeout = timeout
        self.retries = retries
        pems = (root_certificates, private_key, certificate_chain)
        if credentials is None and (tls or any(p is not None for p in pems)):
            credentials = grpc.ssl_channel_credentials(*(_pem(p) for p in pems))
        self._credentials = credentials
        self._metadata: Metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._options = [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _service_config(retries)),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            *options,
        ]
        self._state = _State.UNOPENED

    def _timeout(self, timeout: Timeout) -> float | None:
        return self.timeout if isinstance(timeout, _UseClientDefault) else timeout

    def _call_metadata(self) -> Metadata | None:
        """The metadata of a call made now: the bearer token and the current trace context.
        Read in the caller's thread: upsert_many's streams run in threads of their own."""
        return (self._metadata + trace_metadata()) or None

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClientClosed(f"this client for {self.target} is closed; create a new one")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r}, state={self._state.name.lower()})"


class BlockingBase(_Base):
    """The blocking channel of `Client`. Use it as a context manager, or call `close()`."""

    _channel: grpc.Channel
    _stub: Any

    def _open(self) -> Any:
        """The stub, over a channel opened on first use."""
        self._check_open()
        if self._state is _State.UNOPENED:
            if self._credentials is None:
                self._channel = grpc.insecure_channel(self.target, options=self._options)
            else:
                self._channel = grpc.secure_channel(
                    self.target, self._credentials, options=self._options
                )
            self._stub = ops.stub(self._channel)
            self._state = _State.OPENED
        return self._stub

    def _run(self, op: ops.Op[R], timeout: Timeout) -> R:
        try:
            call = getattr(self._open(), op.method)
            response = call(
                op.request, timeout=self._timeout(timeout), metadata=self._call_metadata()
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return op.parse(response)

    def _ingest(
        self, collection: str, points: Iterable[Point], options: _ingest.Options, timeout: Timeout
    ) -> IngestSummary:
        call = self._open().UpsertStream
        return _ingest.run_blocking(call, collection, points, options, self._timeout(timeout),
                                    self._call_metadata())  # fmt: skip

    def close(self) -> None:
        if self._state is _State.OPENED:
            self._channel.close()
        self._state = _State.CLOSED

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncBase(_Base):
    """The asyncio channel of `AsyncClient`. Use `async with`, or `await close()`."""

    _channel: grpc.aio.Channel
    _stub: Any

    def _open(self) -> Any:
        """The stub, over a channel opened on first use."""
        self._check_open()
        if self._state is _State.UNOPENED:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._credentials, options=self._options
                )
            self._stub = ops.stub(self._channel)
            self._state = _State.OPENED
        return self._stub

    async def _run(self, op: ops.Op[R], timeout: Timeout) -> R:
        try:
            call = getattr(self._open(), op.method)
            response = await call(
                op.request, timeout=self._timeout(timeout), metadata=self._call_metadata()
            )
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None
        return op.parse(response)

    async def _ingest(
        self, collection: str, points: Iterable[Point], options: _ingest.Options, timeout: Timeout
    ) -> IngestSummary:
        call = self._open().UpsertStream
        return await _ingest.run_async(call, collection, points, options, self._timeout(timeout),
                                       self._call_metadata())  # fmt: skip

    async def close(self) -> None:
        if self._state is _State.OPENED:
            await self._channel.close(None)
        self._state = _State.CLOSED

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

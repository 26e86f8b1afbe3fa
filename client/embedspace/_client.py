"""`Client` and `AsyncClient`: the same methods, blocking and asyncio.

The channel opens on the first call. UNAVAILABLE is retried with exponential backoff by
gRPC's own retry policy (service config); every other status raises at once.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
import grpc.aio
import numpy.typing as npt

from . import _convert as ops
from ._types import (
    Analogy,
    BackupInfo,
    CollectionInfo,
    Comparison,
    EncoderInfo,
    Item,
    Neighbor,
    Query,
    StoredItem,
    UpsertResult,
)
from ._wire import FloatArray, Scalar
from .errors import ClientClosed, from_rpc_error
from .v1 import embedspace_pb2_grpc as pb_grpc

R = TypeVar("R")

SERVICE = "embedspace.v1.Embedspace"
DEFAULT_TIMEOUT: Final = 30.0


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
    if retries <= 0:
        return json.dumps({"methodConfig": [{"name": [{"service": SERVICE}]}]})
    policy = {
        "maxAttempts": min(retries + 1, 5),  # gRPC caps attempts at 5
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps({"methodConfig": [{"name": [{"service": SERVICE}], "retryPolicy": policy}]})


def _pem(value: bytes | str | os.PathLike[str] | None) -> bytes | None:
    """PEM bytes as given, or read from a path."""
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


class _Base:
    """Settings shared by both clients.

    TLS: pass `tls=True` (system roots), or `root_certificates` (the server's CA), and for
    mutual TLS `private_key` and `certificate_chain`; each is PEM bytes or a file path.
    `credentials` takes any grpc.ChannelCredentials instead. `token` is sent as
    `authorization: Bearer <token>` on every call.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
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
        self.target = target
        self.timeout = timeout
        pems = (root_certificates, private_key, certificate_chain)
        if credentials is None and (tls or any(p is not None for p in pems)):
            credentials = grpc.ssl_channel_credentials(*(_pem(p) for p in pems))
        self._credentials = credentials
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
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

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClientClosed(f"this client for {self.target} is closed; create a new one")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r}, state={self._state.name.lower()})"


class Client(_Base):
    """A blocking client. Use it as a context manager, or call `close()`."""

    _channel: grpc.Channel
    _stub: pb_grpc.EmbedspaceStub

    def _run(self, op: ops.Op[R], timeout: Timeout) -> R:
        self._check_open()
        if self._state is _State.UNOPENED:
            if self._credentials is None:
                self._channel = grpc.insecure_channel(self.target, options=self._options)
            else:
                self._channel = grpc.secure_channel(
                    self.target, self._credentials, options=self._options
                )
            self._stub = pb_grpc.EmbedspaceStub(self._channel)
            self._state = _State.OPENED
        try:
            call = getattr(self._stub, op.method)
            response = call(op.request, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        return op.parse(response)

    def close(self) -> None:
        if self._state is _State.OPENED:
            self._channel.close()
        self._state = _State.CLOSED

    def __enter__(self) -> Client:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The public calls. AsyncClient has the same ones; a test keeps them in step.

    def encoders(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> list[EncoderInfo]:
        """The encoders the server loaded, with their provenance."""
        return self._run(ops.encoders(), timeout)

    def embed(
        self, encoder: str, items: Sequence[Item], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> FloatArray:
        """Embeds items with one encoder: a (len(items), dim) float32 array."""
        return self._run(ops.embed(encoder, items), timeout)

    def create_collection(
        self,
        name: str,
        encoder: str,
        *,
        index: str = "Flat",
        metric: str | None = None,
        search_params: Mapping[str, float] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> CollectionInfo:
        """Creates a collection; `index` is a FAISS factory string, `metric` cosine/dot/l2,
        `search_params` the defaults of an approximate index ("efSearch", "nprobe")."""
        return self._run(
            ops.create_collection(name, encoder, index, metric, search_params), timeout
        )

    def collections(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> list[CollectionInfo]:
        return self._run(ops.collections(), timeout)

    def describe(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> CollectionInfo:
        return self._run(ops.describe(name), timeout)

    def drop_collection(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> None:
        return self._run(ops.drop_collection(name), timeout)

    def backup(
        self, collection: str, name: str | None = None, *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> BackupInfo:
        """Writes a consistent snapshot of a collection into the server's backup folder."""
        return self._run(ops.backup(collection, name), timeout)

    def restore(
        self, name: str, collection: str, *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> CollectionInfo:
        """Creates `collection` from the backup `name`."""
        return self._run(ops.restore(name, collection), timeout)

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        *,
        items: Sequence[Item] | None = None,
        vectors: npt.ArrayLike | None = None,
        metadata: Sequence[Mapping[str, Scalar]] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> UpsertResult:
        """Inserts or replaces items by id: give `items` to embed server-side, or `vectors`."""
        return self._run(ops.upsert(collection, ids, items, vectors, metadata), timeout)

    def get(
        self, collection: str, ids: Sequence[str], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> list[StoredItem]:
        return self._run(ops.get(collection, ids), timeout)

    def scan(
        self,
        collection: str,
        offset: int = 0,
        limit: int = 0,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> tuple[list[StoredItem], int]:
        """A page of the collection's items in insertion order, and how many it holds
        (`limit` 0: as many as the server allows in one call)."""
        return self._run(ops.scan(collection, offset, limit), timeout)

    def delete(
        self, collection: str, ids: Sequence[str], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> int:
        """Deletes ids; returns how many were stored (unknown ids are ignored)."""
        return self._run(ops.delete(collection, ids), timeout)

    def search(
        self,
        collection: str,
        query: Query,
        k: int = 10,
        *,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        where: Mapping[str, Scalar] | None = None,
        search_params: Mapping[str, float] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> list[Neighbor]:
        """The k nearest neighbours of a query, best first."""
        return self._run(
            ops.search(collection, query, k, min_score, exclude, where, search_params), timeout
        )

    def distance(
        self,
        space: str,
        a: Query | Sequence[Query],
        b: Query | Sequence[Query],
        *,
        metric: str | None = None,
        matrix: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Any:
        """Distance between two queries (a float), between pairs of two lists (an array),
        or the matrix between two lists (`matrix=True`)."""
        return self._run(ops.distance(space, a, b, metric, matrix), timeout)

    def analogy(
        self,
        collection: str,
        positive: Sequence[Query | tuple[Query, float]],
        negative: Sequence[Query | tuple[Query, float]] = (),
        k: int = 10,
        *,
        method: str = "add",
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Analogy:
        """gensim most_similar (method "add") or most_similar_cosmul ("mul")."""
        return self._run(ops.analogy(collection, positive, negative, k, method), timeout)

    def compare(
        self,
        collections: Sequence[str],
        query: Query,
        k: int = 10,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Comparison:
        """The same query over several collections (the same items under different
        encoders): each one's neighbours and their Jaccard@k overlap."""
        return self._run(ops.compare(collections, query, k), timeout)

    def doesnt_match(
        self, collection: str, items: Sequence[Query], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> Query:
        """gensim doesnt_match: the one of `items` furthest from their mean."""
        return self._run(ops.doesnt_match(collection, items), timeout)

    def mean_vector(
        self,
        space: str,
        items: Sequence[Query],
        *,
        weights: Sequence[float] | None = None,
        pre_normalize: bool = True,
        post_normalize: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> FloatArray:
        """gensim get_mean_vector over items, stored ids and vectors."""
        op = ops.mean_vector(space, items, weights, pre_normalize, post_normalize)
        return self._run(op, timeout)


class AsyncClient(_Base):
    """An asyncio client with the same methods as `Client`. Use `async with`, or `await
    close()`."""

    _channel: grpc.aio.Channel
    _stub: pb_grpc.EmbedspaceStub

    async def _run(self, op: ops.Op[R], timeout: Timeout) -> R:
        self._check_open()
        if self._state is _State.UNOPENED:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._credentials, options=self._options
                )
            self._stub = pb_grpc.EmbedspaceStub(self._channel)  # type: ignore[arg-type]
            self._state = _State.OPENED
        try:
            call = getattr(self._stub, op.method)
            response = await call(
                op.request, timeout=self._timeout(timeout), metadata=self._metadata
            )
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None
        return op.parse(response)

    async def close(self) -> None:
        if self._state is _State.OPENED:
            await self._channel.close(None)
        self._state = _State.CLOSED

    async def __aenter__(self) -> AsyncClient:
        self._check_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def encoders(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> list[EncoderInfo]:
        """The encoders the server loaded, with their provenance."""
        return await self._run(ops.encoders(), timeout)

    async def embed(
        self, encoder: str, items: Sequence[Item], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> FloatArray:
        """Embeds items with one encoder: a (len(items), dim) float32 array."""
        return await self._run(ops.embed(encoder, items), timeout)

    async def create_collection(
        self,
        name: str,
        encoder: str,
        *,
        index: str = "Flat",
        metric: str | None = None,
        search_params: Mapping[str, float] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> CollectionInfo:
        """Creates a collection; `index` is a FAISS factory string, `metric` cosine/dot/l2,
        `search_params` the defaults of an approximate index ("efSearch", "nprobe")."""
        return await self._run(
            ops.create_collection(name, encoder, index, metric, search_params), timeout
        )

    async def collections(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> list[CollectionInfo]:
        return await self._run(ops.collections(), timeout)

    async def describe(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> CollectionInfo:
        return await self._run(ops.describe(name), timeout)

    async def drop_collection(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> None:
        return await self._run(ops.drop_collection(name), timeout)

    async def backup(
        self, collection: str, name: str | None = None, *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> BackupInfo:
        """Writes a consistent snapshot of a collection into the server's backup folder."""
        return await self._run(ops.backup(collection, name), timeout)

    async def restore(
        self, name: str, collection: str, *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> CollectionInfo:
        """Creates `collection` from the backup `name`."""
        return await self._run(ops.restore(name, collection), timeout)

    async def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        *,
        items: Sequence[Item] | None = None,
        vectors: npt.ArrayLike | None = None,
        metadata: Sequence[Mapping[str, Scalar]] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> UpsertResult:
        """Inserts or replaces items by id: give `items` to embed server-side, or `vectors`."""
        return await self._run(ops.upsert(collection, ids, items, vectors, metadata), timeout)

    async def get(
        self, collection: str, ids: Sequence[str], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> list[StoredItem]:
        return await self._run(ops.get(collection, ids), timeout)

    async def scan(
        self,
        collection: str,
        offset: int = 0,
        limit: int = 0,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> tuple[list[StoredItem], int]:
        """A page of the collection's items in insertion order, and how many it holds
        (`limit` 0: as many as the server allows in one call)."""
        return await self._run(ops.scan(collection, offset, limit), timeout)

    async def delete(
        self, collection: str, ids: Sequence[str], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> int:
        """Deletes ids; returns how many were stored (unknown ids are ignored)."""
        return await self._run(ops.delete(collection, ids), timeout)

    async def search(
        self,
        collection: str,
        query: Query,
        k: int = 10,
        *,
        min_score: float | None = None,
        exclude: Sequence[str] = (),
        where: Mapping[str, Scalar] | None = None,
        search_params: Mapping[str, float] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> list[Neighbor]:
        """The k nearest neighbours of a query, best first."""
        return await self._run(
            ops.search(collection, query, k, min_score, exclude, where, search_params), timeout
        )

    async def distance(
        self,
        space: str,
        a: Query | Sequence[Query],
        b: Query | Sequence[Query],
        *,
        metric: str | None = None,
        matrix: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Any:
        """Distance between two queries (a float), between pairs of two lists (an array),
        or the matrix between two lists (`matrix=True`)."""
        return await self._run(ops.distance(space, a, b, metric, matrix), timeout)

    async def analogy(
        self,
        collection: str,
        positive: Sequence[Query | tuple[Query, float]],
        negative: Sequence[Query | tuple[Query, float]] = (),
        k: int = 10,
        *,
        method: str = "add",
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Analogy:
        """gensim most_similar (method "add") or most_similar_cosmul ("mul")."""
        return await self._run(ops.analogy(collection, positive, negative, k, method), timeout)

    async def compare(
        self,
        collections: Sequence[str],
        query: Query,
        k: int = 10,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Comparison:
        """The same query over several collections (the same items under different
        encoders): each one's neighbours and their Jaccard@k overlap."""
        return await self._run(ops.compare(collections, query, k), timeout)

    async def doesnt_match(
        self, collection: str, items: Sequence[Query], *, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> Query:
        """gensim doesnt_match: the one of `items` furthest from their mean."""
        return await self._run(ops.doesnt_match(collection, items), timeout)

    async def mean_vector(
        self,
        space: str,
        items: Sequence[Query],
        *,
        weights: Sequence[float] | None = None,
        pre_normalize: bool = True,
        post_normalize: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> FloatArray:
        """gensim get_mean_vector over items, stored ids and vectors."""
        op = ops.mean_vector(space, items, weights, pre_normalize, post_normalize)
        return await self._run(op, timeout)

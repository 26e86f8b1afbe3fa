"""Bearer-token authentication and TLS credentials for the server.

Every call needs `authorization: Bearer <token>` with one of the configured tokens
(compared in constant time), except the health service, so that probes work, and server
reflection when `public_reflection` is set. Tokens are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from .config import Settings
from .errors import InvalidInput

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/",
                       "/grpc.reflection.v1.ServerReflection/")  # fmt: skip
MISSING = "missing or wrong bearer token: send 'authorization: Bearer <token>' metadata"


def tokens_of(settings: Settings) -> list[bytes]:
    return [t.strip().encode() for t in settings.tokens.split(",") if t.strip()]


class TokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, tokens: list[bytes], *, public_reflection: bool) -> None:
        self._tokens = tokens
        self._public = (HEALTH_PREFIX, *(REFLECTION_PREFIXES if public_reflection else ()))

    def _allowed(self, metadata: Any) -> bool:
        header = dict(metadata or ()).get("authorization", "")
        scheme, _, token = header.partition(" ")
        given = token.strip().encode()
        if scheme.lower() != "bearer" or not given:
            return False
        # Compare with every token, in constant time, whatever matches first.
        return any([hmac.compare_digest(given, t) for t in self._tokens])

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        method: str = details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(self._public):
            return handler
        if self._allowed(details.invocation_metadata):  # type: ignore[attr-defined]
            return handler
        return _refusing(handler)


def _refusing(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape that answers UNAUTHENTICATED."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, MISSING)

    async def streaming(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, MISSING)

    ser = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(unary, **ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(streaming, **ser)
    return grpc.stream_stream_rpc_method_handler(streaming, **ser)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from tls_cert and tls_key; with tls_client_ca, clients must present a
    certificate signed by that CA (mutual TLS). None when TLS is off."""
    if not settings.tls_cert and not settings.tls_key:
        if settings.tls_client_ca:
            raise InvalidInput("tls_client_ca needs tls_cert and tls_key too")
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise InvalidInput("TLS needs both tls_cert and tls_key")
    try:
        key, cert = Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes()
        ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    except OSError as e:
        raise InvalidInput(f"cannot read a TLS file: {e}") from None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )

"""Bearer-token authentication and TLS credentials for the server.

Every call needs `authorization: Bearer <token>` with one of the configured tokens
(compared in constant time), except the health service, so that probes work, and server
reflection when `public_reflection` is set. Tokens are never logged.
"""

from __future__ import annotations

import hmac
import ssl
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
    """A handler that answers UNAUTHENTICATED without reading the request.

    It takes the request as a stream whatever the real method's shape (the wire is the same),
    because gRPC receives and parses a unary request in full before calling its handler: up
    to max_message_bytes for anyone without a token. A request stream is read only when the
    handler iterates it, and this one never does. The response keeps the method's shape.
    """

    async def refuse(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, MISSING)

    if handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    return grpc.stream_unary_rpc_method_handler(refuse)


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
    _check_pem(settings.tls_cert, settings.tls_key, key, settings.tls_client_ca)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def _check_pem(cert: str, key: str, key_pem: bytes, ca: str) -> None:
    """Parses the PEM files with the ssl module before grpc gets them: grpc reports a bad
    one only as an address it failed to bind."""
    if err := _load(lambda c: c.load_verify_locations(cafile=cert)):
        raise InvalidInput(f"tls_cert {cert!r} is not a PEM certificate: {_why(err)}")
    if ca and (err := _load(lambda c: c.load_verify_locations(cafile=ca))):
        raise InvalidInput(f"tls_client_ca {ca!r} is not a PEM certificate: {_why(err)}")

    def encrypted() -> bytes:  # without a callback, OpenSSL would prompt on the terminal
        raise InvalidInput(f"tls_key {key!r} is encrypted; give it without a passphrase")

    err = _load(lambda c: c.load_cert_chain(cert, key, password=encrypted))
    if err is None:
        return
    if err.reason == "KEY_VALUES_MISMATCH":
        raise InvalidInput(f"tls_key {key!r} does not match tls_cert {cert!r}: "
                           "it is not the private key of that certificate")  # fmt: skip
    if b"PRIVATE KEY-----" not in key_pem:
        raise InvalidInput(f"tls_key {key!r} is not a PEM private key: "
                           "no '-----BEGIN ... PRIVATE KEY-----' block found")  # fmt: skip
    raise InvalidInput(f"tls_cert {cert!r} with tls_key {key!r} cannot be used: {_why(err)}")


def _load(step: Callable[[ssl.SSLContext], object]) -> ssl.SSLError | None:
    try:
        step(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    except ssl.SSLError as e:
        return e
    return None


def _why(e: ssl.SSLError) -> str:
    if e.reason == "NO_CERTIFICATE_OR_CRL_FOUND":
        return "no '-----BEGIN CERTIFICATE-----' block found"
    if e.reason is None:  # OpenSSL's bare "PEM lib"
        return "a PEM block does not decode (truncated, or not base64)"
    return str(e.reason).replace("_", " ").lower()

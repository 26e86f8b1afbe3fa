"""The SDK's exception tree: one class per gRPC status an embedspace call can end with.

EmbedspaceError
├── InvalidArgument        bad input (wrong kind, dimension, k, ...)
├── NotFound               unknown encoder, collection or id
├── AlreadyExists          the collection exists
├── FailedPrecondition     well formed, but not possible in the current state
├── ResourceExhausted      over a limit or overloaded
├── Unauthenticated / PermissionDenied
├── DeadlineExceeded / Cancelled
├── Unavailable            server down, starting or draining (retried first)
├── Internal / Unknown     a server bug; the server log has details
└── ClientClosed           the client was closed (raised before any call)
"""

from __future__ import annotations

import grpc


class EmbedspaceError(Exception):
    """Base of every SDK error. `code` is the gRPC status, when one was received."""

    code: grpc.StatusCode | None = None

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(EmbedspaceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(EmbedspaceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(EmbedspaceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(EmbedspaceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(EmbedspaceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(EmbedspaceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(EmbedspaceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class DeadlineExceeded(EmbedspaceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(EmbedspaceError):
    code = grpc.StatusCode.CANCELLED


class Unavailable(EmbedspaceError):
    code = grpc.StatusCode.UNAVAILABLE


class Internal(EmbedspaceError):
    code = grpc.StatusCode.INTERNAL


class Unknown(EmbedspaceError):
    code = grpc.StatusCode.UNKNOWN


class ClientClosed(EmbedspaceError):
    """The client was closed; make a new one."""


_BY_CODE: dict[grpc.StatusCode, type[EmbedspaceError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, ResourceExhausted,
        Unauthenticated, PermissionDenied, DeadlineExceeded, Cancelled, Unavailable,
        Internal, Unknown,
    )
    if cls.code is not None
}  # fmt: skip


def from_rpc_error(error: grpc.RpcError) -> EmbedspaceError:
    """The SDK exception for a failed call."""
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    details: str = error.details() or code.name  # type: ignore[attr-defined]
    cls = _BY_CODE.get(code, EmbedspaceError)
    return cls(details, code)

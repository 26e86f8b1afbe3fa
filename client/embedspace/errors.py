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
├── ClientClosed           the client was closed (raised before any call)
└── PointsRejected         upsert_many(stop_on_reject=True) met a point the server refused

An error from a status carries the status's field violations (`field_violations`): which
request field was wrong and why, as the server names them (`points[3].vector`, `k`), read
from the google.rpc.BadRequest in the `grpc-status-details-bin` trailer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from ._types import IngestSummary

DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One wrong request field: its path (`points[3].vector`) and what was wrong with it."""

    field: str
    description: str


class EmbedspaceError(Exception):
    """Base of every SDK error. `code` is the gRPC status, when one was received."""

    code: grpc.StatusCode | None = None

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        field_violations: Iterable[FieldViolation] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field_violations: list[FieldViolation] = list(field_violations)


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


class PointsRejected(EmbedspaceError):
    """`upsert_many(..., stop_on_reject=True)` stopped at a point the server refused;
    `summary` holds what was acknowledged so far, its `rejected` the refused points."""

    def __init__(self, summary: IngestSummary) -> None:
        first = summary.rejected[0]
        super().__init__(
            f"point {first.index} (id {first.id!r}) was rejected: {first.reason}"
            + (f" [{first.field}]" if first.field else "")
        )
        self.summary = summary


_BY_CODE: dict[grpc.StatusCode, type[EmbedspaceError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, ResourceExhausted,
        Unauthenticated, PermissionDenied, DeadlineExceeded, Cancelled, Unavailable,
        Internal, Unknown,
    )
    if cls.code is not None
}  # fmt: skip


def field_violations(trailing_metadata: Iterable[tuple[str, Any]] | None) -> list[FieldViolation]:
    """The BadRequest field violations in a status's details trailer; none when it has no
    such trailer or the trailer does not parse."""
    for key, value in trailing_metadata or ():
        if key != DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
            found = []
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    request = error_details_pb2.BadRequest()
                    detail.Unpack(request)
                    found += [FieldViolation(v.field, v.description)
                              for v in request.field_violations]  # fmt: skip
            return found
        except DecodeError:
            return []
    return []


def from_rpc_error(error: grpc.RpcError) -> EmbedspaceError:
    """The SDK exception for a failed call."""
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    details: str = error.details() or code.name  # type: ignore[attr-defined]
    cls = _BY_CODE.get(code, EmbedspaceError)
    trailers = getattr(error, "trailing_metadata", None)
    return cls(details, code, field_violations(trailers() if trailers else None))

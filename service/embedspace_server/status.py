"""The one table from domain errors to gRPC status codes."""

from __future__ import annotations

import grpc

from . import errors

_TABLE: tuple[tuple[type[errors.EmbedspaceServerError], grpc.StatusCode], ...] = (
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Cancelled, grpc.StatusCode.CANCELLED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
)

INTERNAL_MESSAGE = "internal error; the server log has the details"


def status_of(error: BaseException) -> grpc.StatusCode:
    """The status code for an error; anything not in the table is INTERNAL."""
    for kind, code in _TABLE:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL
